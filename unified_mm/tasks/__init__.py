"""Stages as tasks: each supplies its model, loss and data; the trainer in
`unified_mm.train` supplies the loop.

A task owns its held-out loss; every other evaluator (reconstruction, rendering,
captioning) sits a layer above, in `unified_mm.eval`, and is handed to the task
as `make_evaluators(task) -> list` (`unified_mm.eval.stage_evaluators.make_task`
builds a task with its stage's).
"""

from __future__ import annotations

import importlib

# config.stage -> module defining `make_task(config, make_evaluators=None) -> Task`.
STAGES = {
    "lm": "unified_mm.tasks.lm",
    "ar": "unified_mm.tasks.ar",
    "tokenizer": "unified_mm.tasks.tokenizer",
    "renderer": "unified_mm.tasks.renderer",
    "latent_decoder": "unified_mm.tasks.latent_decoder",
    # Post-training samples with the generation pipeline and scores with the
    # benchmark's scorer, so it lives above both (unified_mm/rl/).
    "grpo": "unified_mm.rl.task",
}


def make_task(config, make_evaluators=None):
  """The task of `config.stage`; `make_evaluators(task)`, when given, builds the
  evaluators it runs besides its own held-out loss."""
  from unified_mm.config.loading import ConfigError
  if config.stage not in STAGES:
    raise ConfigError(f"stage={config.stage!r}: unknown stage; expected one of {sorted(STAGES)}")
  return importlib.import_module(STAGES[config.stage]).make_task(config, make_evaluators)
