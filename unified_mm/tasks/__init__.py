"""Stages as tasks: each supplies its model, loss, data and evaluators; the
trainer in `unified_mm.train` supplies the loop."""

from __future__ import annotations

import importlib

# config.stage -> module defining `make_task(config) -> Task`.
STAGES = {
    "lm": "unified_mm.tasks.lm",
    "ar": "unified_mm.tasks.ar",
    "tokenizer": "unified_mm.tasks.tokenizer",
    "renderer": "unified_mm.tasks.renderer",
    "latent_decoder": "unified_mm.tasks.latent_decoder",
}


def make_task(config):
  from unified_mm.config.loading import ConfigError
  if config.stage not in STAGES:
    raise ConfigError(f"stage={config.stage!r}: unknown stage; expected one of {sorted(STAGES)}")
  return importlib.import_module(STAGES[config.stage]).make_task(config)
