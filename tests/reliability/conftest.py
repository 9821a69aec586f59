"""Fixtures of the fault suite: the toy trainer in a process of its own
(`toy_runner.py`) so tests can kill it, fill its disk or start two of it."""

import pathlib
import sys

import pytest

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "train"))  # train_toy_task, train_metrics_reader


@pytest.fixture(scope="session")
def runner_env(subprocess_env, tmp_path_factory):
  """One device per process; runs share compiled executables through JAX's cache."""
  env = subprocess_env(1)
  env["JAX_COMPILATION_CACHE_DIR"] = str(tmp_path_factory.mktemp("jax_cache"))
  env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
  return env
