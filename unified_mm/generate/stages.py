"""Loads the three trained stages of a run root for generation.

    ROOT/tokenizer   image tokenizer (latent decoder, preview decoder, encoders)
    ROOT/ar          unified transformer (plans visual tokens, writes captions)
    ROOT/ar_rl       the same transformer post-trained with GRPO (optional)
    ROOT/renderer    latent diffusion renderer (EMA weights)

The transformer that draws is the post-trained one when the root has it
(`transformer_dir`): post-training only refines the pre-trained stage, and
`umm demo` runs it last.

Each stage's loader lives beside its model (`models/*/loader.py`); this module
puts them together. By default every model is restored replicated on one
local device: generation is latency-bound on small batches, and the renderer
has its own config anyway. `mesh=` (`--mesh`, parallel/placement.py) restores
each stage sharded as in training instead (its own saved mesh and rules, or
the given axis sizes over all devices), for models one chip cannot hold; the
transformer's KV cache is then sharded by the same logical rules.

A root missing a stage fails before anything loads, with a message naming the
stage directory and the command that trains it (`missing_stage`).
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import TYPE_CHECKING

# JAX and the loaders are imported where a stage loads: `missing_stage` is what
# `umm generate --workdir <typo>` runs first, and it should answer at once.
if TYPE_CHECKING:
  from flax import nnx

  from unified_mm.models.transformer.loader import ArStage


# The experiments/shapes.py variant that trains each stage directory (as `umm demo` does).
STAGE_VARIANTS = {"tokenizer": "tokenizer", "ar": "ar", "renderer": "renderer_layout",
                  "renderer_text_only": "renderer_text_only", "ar_rl": "ar_grpo_codes"}
POST_TRAINED = "ar_rl"  # the GRPO stage's workdir (experiments/shapes.py:ar_grpo_codes)


class MissingStageError(FileNotFoundError):
  """A run root without a stage it needs: the message says what trains it."""


def _has_checkpoint(workdir: pathlib.Path) -> bool:
  """A committed step: Orbax names it `<step>`; one in flight (or set aside) has a suffix."""
  ckpts = workdir / "checkpoints"
  return ckpts.is_dir() and any(p.name.isdigit() for p in ckpts.iterdir())


def missing_stage(root: str | pathlib.Path, names=("tokenizer", "ar", "renderer")) -> str | None:
  """What a run root lacks of the stages `names` (one line), or None.

  A look at the directories only, so a typo in --workdir fails at once rather
  than inside a checkpoint library; a remote root (`gs://...`) is left to the
  loaders."""
  if "://" in str(root):
    return None
  root = pathlib.Path(root)
  demo = f"`umm demo --workdir {root}` trains every stage"
  if not root.is_dir():
    what = "not a directory" if root.exists() else "no such directory"
    return (f"{root}: {what}; a run root holds the trained stages "
            f"{', '.join(d + '/' for d in names)} ({demo})")
  for name in names:
    stage = root / name
    if _has_checkpoint(stage):
      continue
    lack = (f"no {name}/ stage" if not stage.exists()
            else f"{name}/ has no complete checkpoint in {stage / 'checkpoints'}")
    # Every later stage reads the tokenizer's codes or latents.
    tokenizer = root / "tokenizer"
    reads = "" if name == "tokenizer" else f" --config.data.image_tokenizer_dir={tokenizer}"
    train = (f"`umm train --config experiments/shapes.py:{STAGE_VARIANTS.get(name, name)} "
             f"--workdir {stage}{reads}` this one")
    return f"{root}: {lack}; {demo}, {train}"
  return None


def transformer_dir(root: str | pathlib.Path, name: str = "") -> pathlib.Path:
  """ROOT/<name> when named; else ROOT/ar_rl when it holds a checkpoint (the
  post-trained transformer), else ROOT/ar."""
  root = pathlib.Path(root)
  if name:
    return root / name
  return root / POST_TRAINED if _has_checkpoint(root / POST_TRAINED) else root / "ar"


@dataclasses.dataclass
class Stages:
  frontend: object                # renderer.latents.TrainedFrontend
  ar: ArStage | None
  renderer: nnx.Module | None
  renderer_task: object | None    # tasks.renderer.RendererTask (text ids, context inputs)
  renderer_rules: tuple = ()      # a placed renderer's logical rules; () when replicated

  def renderer_placed(self):
    """The context the renderer's calls run in: its mesh and rules when placed, else
    its own device's mesh and no rules. Called from a training loop (GRPO draws its
    plans), the loop's mesh would otherwise be the context, over other devices."""
    from unified_mm.parallel.sharding import activate, on_mesh, params_mesh  # noqa: PLC0415
    mesh = params_mesh(self.renderer)
    return activate(mesh, self.renderer_rules) if self.renderer_rules else on_mesh(mesh)

  @property
  def renderer_reads_codes(self) -> bool:
    """False for a layout renderer (it draws from the written plan, not the codes)."""
    return self.renderer_task is not None and bool(self.renderer_task.config.model.visual_codes)


def load_stages(root: str | pathlib.Path, *, need_ar: bool = True,
                need_renderer: bool = True, mesh=None) -> Stages:
  """The root's stages; `mesh` None (one device, replicated: the default, bit for
  bit what it always was), placement.CONFIG or {axis: size} (sharded)."""
  import jax  # noqa: PLC0415

  from unified_mm.models.renderer.latents import TrainedFrontend  # noqa: PLC0415
  from unified_mm.models.transformer.loader import load_ar  # noqa: PLC0415
  needed = ("tokenizer",) + ("ar",) * need_ar + ("renderer",) * need_renderer
  problem = missing_stage(root, needed)
  if problem:
    raise MissingStageError(problem)
  root = pathlib.Path(root)
  if mesh is not None:
    return _load_placed(root, need_ar, need_renderer, mesh)
  frontend = TrainedFrontend(root / "tokenizer", devices=jax.local_devices()[:1])
  ar = load_ar(transformer_dir(root), frontend.num_codes) if need_ar else None
  renderer = task = None
  if need_renderer:
    renderer, task = load_renderer_stage(root, "renderer", frontend, ar)
  return Stages(frontend, ar, renderer, task)


def _load_placed(root: pathlib.Path, need_ar: bool, need_renderer: bool, mesh) -> Stages:
  from unified_mm.models.renderer.latents import TrainedFrontend  # noqa: PLC0415
  from unified_mm.models.renderer.loader import load_renderer_placed  # noqa: PLC0415
  from unified_mm.models.transformer.loader import load_ar  # noqa: PLC0415
  frontend = TrainedFrontend(root / "tokenizer", mesh=mesh)
  ar = load_ar(transformer_dir(root), frontend.num_codes, mesh=mesh) if need_ar else None
  if not need_renderer:
    return Stages(frontend, ar, None, None)
  loaded = load_renderer_placed(root / "renderer", mesh)
  renderer, task = load_renderer_stage(root, "renderer", frontend, ar, loaded=loaded[:2])
  return Stages(frontend, ar, renderer, task, renderer_rules=loaded[2])


def load_renderer_stage(root: pathlib.Path, name: str, frontend, ar: ArStage | None = None,
                        loaded=None):
  """(renderer, its RendererTask) from ROOT/<name>, sharing the loaded tokenizer
  (and transformer, for a renderer reading its text states); `loaded`: a
  (renderer, config) already restored (placed on a mesh)."""
  from unified_mm.models.renderer.loader import load_renderer  # noqa: PLC0415
  from unified_mm.tasks.renderer import RendererTask  # noqa: PLC0415
  renderer, config = loaded if loaded is not None else load_renderer(root / name)
  config.data.image_tokenizer_dir = str(root / "tokenizer")
  if config.model.text_source == "ar":
    config.data.ar_dir = str(root / "ar")
  task = RendererTask(config)
  task.__dict__["frontend"] = frontend  # share the loaded stages (cached_properties)
  if ar is not None and config.model.text_source == "ar":
    from unified_mm.models.renderer.ar_text import ArTextEncoder  # noqa: PLC0415
    task.__dict__["ar_text"] = ArTextEncoder(ar, int(config.model.text_len))
  return renderer, task
