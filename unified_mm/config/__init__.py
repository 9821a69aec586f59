"""Experiment configs: loading `experiments/*.py`, overrides, validation."""

from unified_mm.config.loading import ConfigError, apply_overrides, load_config

__all__ = ["ConfigError", "apply_overrides", "load_config"]
