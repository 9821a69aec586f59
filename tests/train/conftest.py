"""Fixtures of the trainer tests: toy-task runs shared by a whole module."""

import json
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent))  # train_toy_task


from train_metrics_reader import read_metrics, train_losses  # noqa: E402,F401


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
  """An uninterrupted 12-step toy run (saves at 4, 8, 12; eval every 4)."""
  from train_toy_task import ToyTask, toy_config

  from unified_mm.train import train_and_evaluate
  config = toy_config(eval_every_steps=4)
  workdir = tmp_path_factory.mktemp("toy_a")
  state = train_and_evaluate(config, workdir, task=ToyTask(config))
  return config, workdir, state
