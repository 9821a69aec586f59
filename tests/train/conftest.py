"""Fixtures of the trainer tests: toy-task runs shared by a whole module."""

import json
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent))  # train_toy_task


def read_metrics(workdir) -> dict[int, list[dict]]:
  """step -> every row logged for it (a resumed run may log a step twice)."""
  rows: dict[int, list[dict]] = {}
  for line in (pathlib.Path(workdir) / "metrics.jsonl").read_text().splitlines():
    row = json.loads(line)
    rows.setdefault(row["step"], []).append(row)
  return rows


def train_losses(workdir) -> dict[int, list[float]]:
  return {s: [r["train/loss"] for r in rs if "train/loss" in r]
          for s, rs in read_metrics(workdir).items()
          if any("train/loss" in r for r in rs)}


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
  """An uninterrupted 12-step toy run (saves at 4, 8, 12; eval every 4)."""
  from train_toy_task import ToyTask, toy_config

  from unified_mm.train import train_and_evaluate
  config = toy_config(eval_every_steps=4)
  workdir = tmp_path_factory.mktemp("toy_a")
  state = train_and_evaluate(config, workdir, task=ToyTask(config))
  return config, workdir, state
