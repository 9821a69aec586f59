"""Rewards: a function of one sampled answer -> float, named in the config.

    rl.reward = "shapes"                       # the built-in scorer, below
    rl.reward = "my_project.rewards:score"     # your own: def score(sample: Sample) -> float

`shapes`: the benchmark's scorer. Of an image: the share of the asked objects
present with their asked attributes, plus `bonus` when the whole prompt holds
(every count, attribute and relation). The written plan is scored the same way
as a scene graph (`eval.plan_scoring.plan_scene`, no pixels); a plan that could
not be parsed scores 0. With rendered answers (`rl.render`) the reward is the
image's score plus half the plan's.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
from collections.abc import Callable, Sequence

import numpy as np

from unified_mm.config.loading import ConfigError
from unified_mm.data.shapes.scorer import score
from unified_mm.data.shapes.spec import PromptSpec
from unified_mm.eval.plan_scoring import plan_scene


@dataclasses.dataclass
class Sample:
  prompt: str
  spec: PromptSpec | None        # the prompt's meaning, when it came from the shapes grammar
  tokens: np.ndarray             # the answer's ids (a plan: BOL ... EOL)
  plan: Sequence | None          # parsed LayoutObjects; None when malformed
  image: np.ndarray | None = None  # uint8 [H, W, 3] when the stage renders its answers
  bins: int = 64
  resolution: int = 64

  # The scorer's verdicts, computed once: the reward and the logged flags share them
  # (reading an image back is the analyzer's whole pass).
  @functools.cached_property
  def plan_verdict(self) -> tuple[float, bool]:
    if self.plan is None or self.spec is None:
      return 0.0, False
    return verdict(self.spec, plan_scene(self.plan, self.bins, self.resolution))

  @functools.cached_property
  def image_verdict(self) -> tuple[float, bool] | None:
    if self.image is None or self.spec is None:
      return None
    return verdict(self.spec, self.image)


RewardFn = Callable[[Sample], float]


def verdict(spec: PromptSpec, scene_or_image) -> tuple[float, bool]:
  """(share of the asked objects present, whole prompt holds) of a scene or an image."""
  v = score(spec, scene_or_image)
  return float(v["binding_accuracy"]), bool(v["correct"])


def shapes_reward(sample: Sample, bonus: float = 1.0, plan_weight: float = 0.5) -> float:
  """share + bonus * all-correct, of the image when the stage renders (plus
  `plan_weight` times the plan's: a right plan drawn wrong still beats a wrong
  one), else of the plan alone."""
  share, ok = sample.plan_verdict
  plan = share + bonus * ok
  if sample.image_verdict is None:
    return plan
  share, ok = sample.image_verdict
  return share + bonus * ok + plan_weight * plan


BUILT_IN = {"shapes": shapes_reward}


def resolve_reward(name: str) -> RewardFn:
  """`shapes` or `module:function`; a bad name is a ConfigError naming `rl.reward`."""
  if name in BUILT_IN:
    return BUILT_IN[name]
  module, _, attr = name.partition(":")
  if not attr:
    raise ConfigError(f"rl.reward={name!r}: expected one of {sorted(BUILT_IN)} or 'module:function'")
  try:
    fn = getattr(importlib.import_module(module), attr)
  except (ImportError, AttributeError) as e:
    raise ConfigError(f"rl.reward={name!r}: {e}") from None
  if not callable(fn):
    raise ConfigError(f"rl.reward={name!r}: not callable")
  return fn
