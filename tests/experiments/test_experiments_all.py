"""Every experiment file and variant loads, locks and names a known stage."""

import importlib.util
import pathlib

import pytest

from unified_mm.config.loading import load_config
from unified_mm.config.validation import validate_rules
from unified_mm.tasks import STAGES

EXPERIMENTS = pathlib.Path(__file__).resolve().parents[2] / "experiments"


def _variants(path: pathlib.Path) -> list[str]:
  spec = importlib.util.spec_from_file_location(path.stem, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  if hasattr(module, "VARIANTS"):
    return sorted(module.VARIANTS)
  if path.stem == "pods":
    return ["chameleon_7b@v5p-256", "llamagen_gpt_xl@2xv5p-256", "llamagen_gpt_3b@h100-16"]
  return [None]


CASES = [(p, v) for p in sorted(EXPERIMENTS.glob("*.py")) for v in _variants(p)]


@pytest.mark.parametrize("path,variant", CASES, ids=[f"{p.stem}:{v}" for p, v in CASES])
def test_experiment_loads(path, variant):
  config = load_config(f"{path}:{variant}" if variant else str(path))
  assert config.stage in STAGES
  assert config.train.steps > 0 and config.train.batch_size > 0
  validate_rules(config.rules)
  assert (path.read_text().split('"""')[1].strip()), "the docstring gives the launch command"
