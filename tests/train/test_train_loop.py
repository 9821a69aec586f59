"""The trainer in-process on the toy task: resume, preemption, NaN stop,
damaged checkpoints, init_from, keep-best, metrics files."""

import logging
import os
import shutil
import signal

import jax
import numpy as np
import pytest
from train_metrics_reader import read_metrics, train_losses
from train_toy_task import ToyData, ToyTask, toy_config

from unified_mm.config.loading import ConfigError
from unified_mm.train import TrainingDiverged, train_and_evaluate
from unified_mm.train.checkpoint import Checkpoints, checkpoint_dir


def _saved_steps(workdir, config) -> list[int]:
  ckpts = Checkpoints(checkpoint_dir(workdir), config.ckpt, read_only=True)
  try:
    return ckpts.steps()
  finally:
    ckpts.close()


def _params(state):
  return {k: np.asarray(jax.device_get(v)) for k, v in state.params.items()}


def _assert_bitwise(a, b):
  assert a.keys() == b.keys()
  for k in a:
    np.testing.assert_array_equal(a[k], b[k], err_msg=k)


class _SigtermData(ToyData):
  """Sends this process SIGTERM while fetching batch `at` (as a preemption would)."""

  def __init__(self, *args, at: int, **kwargs):
    super().__init__(*args, **kwargs)
    self.at = at

  def __next__(self):
    if self.served + 1 == self.at:
      os.kill(os.getpid(), signal.SIGTERM)
    return super().__next__()


class _SigtermTask(ToyTask):
  def make_data(self, process_index, process_count, local_batch_size):
    return _SigtermData(self.config.seed, process_index, local_batch_size, at=6)


def test_sigterm_saves_current_step_and_resume_is_exact(toy_run, tmp_path, caplog):
  config, workdir_a, state_a = toy_run
  caplog.set_level(logging.INFO, "unified_mm.train")
  stopped = train_and_evaluate(config, tmp_path, task=_SigtermTask(config))
  assert int(stopped.step) == 6
  assert 6 in _saved_steps(tmp_path, config)
  assert "preempted: saved a checkpoint for step 6" in caplog.text

  resumed = train_and_evaluate(config, tmp_path, task=ToyTask(config))
  assert "resumed from checkpoint step 6" in caplog.text
  assert int(resumed.step) == config.train.steps
  _assert_bitwise(_params(resumed), _params(state_a))
  _assert_bitwise(jax.device_get(resumed.ema), jax.device_get(state_a.ema))
  assert not np.array_equal(resumed.ema["out.kernel"], resumed.params["out.kernel"])
  losses_a, losses_b = train_losses(workdir_a), train_losses(tmp_path)
  assert sorted(losses_b) == list(range(1, config.train.steps + 1))
  for step, values in losses_b.items():
    assert values == [losses_a[step][0]] * len(values), step


def test_nan_loss_stops_without_saving(tmp_path):
  config = toy_config()
  with config.unlocked():
    config.data.nan_at_step = 7
  with pytest.raises(TrainingDiverged, match=r"at step 7;.*\(step 4\)"):
    train_and_evaluate(config, tmp_path, task=ToyTask(config))
  assert _saved_steps(tmp_path, config) == [4]


def test_damaged_and_partial_checkpoints_are_never_restored(toy_run, tmp_path, caplog):
  config, workdir_a, state_a = toy_run
  workdir = tmp_path / "w"
  shutil.copytree(workdir_a, workdir)
  ckpt = checkpoint_dir(workdir)
  # A save cut short by SIGKILL leaves a tmp dir; damage the newest complete step too.
  shutil.copytree(ckpt / "12", ckpt / "16.orbax-checkpoint-tmp-1234")
  # (Small arrays live inline in OCDBT's b-tree files, so cut every data file.)
  for blob in (ckpt / "12" / "params").glob("**/d/*"):
    with open(blob, "r+b") as f:
      f.truncate(blob.stat().st_size // 2)
  caplog.set_level(logging.INFO, "unified_mm.train")
  state = train_and_evaluate(config, workdir, task=ToyTask(config))
  assert "ignoring checkpoint step 16" in caplog.text
  assert "checkpoint step 12 is unreadable" in caplog.text
  assert "falling back to step 8" in caplog.text
  assert "resumed from checkpoint step 8" in caplog.text
  # Retrained 8 -> 12 from the good step: the same params as the straight run.
  _assert_bitwise(_params(state), _params(state_a))


def test_init_from_loads_params_only(toy_run, tmp_path):
  config_a, workdir_a, state_a = toy_run
  config = toy_config(steps=0)
  with config.unlocked():
    config.ckpt.init_from = str(workdir_a)
  state = train_and_evaluate(config, tmp_path, task=ToyTask(config))
  assert int(state.step) == 0
  _assert_bitwise(_params(state), _params(state_a))
  adam = state.opt_state[1][0]  # chain(clip, adamw) -> adamw's ScaleByAdamState
  assert int(adam.count) == 0
  for moment in jax.tree.leaves((adam.mu, adam.nu)):
    assert not np.any(np.asarray(moment))
  assert np.any(np.asarray(jax.tree.leaves(state_a.opt_state[1][0].mu)[0]))


def test_init_partial_loads_what_the_source_has_and_inits_the_rest(toy_run, tmp_path):
  _, workdir_a, state_a = toy_run
  config = toy_config(steps=0)
  with config.unlocked():
    config.model.extra_head = True
    config.ckpt.init_from = str(workdir_a)
  with pytest.raises(ConfigError, match=r"init_from.*do not fit.*extra_head"):
    train_and_evaluate(config, tmp_path / "strict", task=ToyTask(config))
  with config.unlocked():
    config.ckpt.init_partial = True
  state = train_and_evaluate(config, tmp_path / "partial", task=ToyTask(config))
  params, loaded = _params(state), _params(state_a)
  assert set(params) - set(loaded) == {"extra.kernel", "extra.bias"}
  _assert_bitwise({k: params[k] for k in loaded}, loaded)
  assert np.any(params["extra.kernel"])  # its fresh init, not zeros
  # A param of another shape there (a wider head) starts fresh too; the rest load.
  with config.unlocked():
    config.model.width = 32
  state = train_and_evaluate(config, tmp_path / "wider", task=ToyTask(config))
  params = _params(state)
  assert params["embed.embedding"].shape == (loaded["embed.embedding"].shape[0], 32)
  _assert_bitwise({"out.bias": params["out.bias"]}, {"out.bias": loaded["out.bias"]})


def test_refuses_a_workdir_of_another_model(toy_run, tmp_path):
  _, workdir_a, _ = toy_run
  workdir = tmp_path / "w"
  shutil.copytree(workdir_a, workdir)
  config = toy_config(eval_every_steps=4)
  with config.unlocked():
    config.model.width = 32
  with pytest.raises(ConfigError, match=r"model\.width: 16 -> 32.*init_from"):
    train_and_evaluate(config, workdir, task=ToyTask(config))


def test_keep_best_keeps_the_best_and_the_last(tmp_path):
  config = toy_config(eval_every_steps=4)
  with config.unlocked():
    config.ckpt.update(dict(max_to_keep=1, keep_best_metric="eval/toy/loss",
                            keep_best_mode="max"))  # "best" = the worst loss: step 4
  train_and_evaluate(config, tmp_path, task=ToyTask(config))
  evals = {s: r["eval/toy/loss"] for s, rs in read_metrics(tmp_path).items()
           for r in rs if "eval/toy/loss" in r}
  best = max(evals, key=evals.get)
  steps = _saved_steps(tmp_path, config)
  assert steps == sorted({best, config.train.steps})
  assert best != config.train.steps


def test_metrics_jsonl_rows(toy_run):
  config, workdir, _ = toy_run
  rows = read_metrics(workdir)
  assert sorted(rows) == list(range(1, config.train.steps + 1))
  for step, rs in rows.items():
    train = next(r for r in rs if "train/loss" in r)
    for key in ("train/loss", "train/toy_loss", "train/lr", "train/grad_norm"):
      assert np.isfinite(train[key]), (step, key)
    if step > 1:  # step 1 holds compilation; throughput starts after it
      assert train["train/tokens_per_s"] > 0 and train["train/step_ms"] > 0
  assert {s for s, rs in rows.items() if any("eval/toy/loss" in r for r in rs)} == {4, 8, 12}


def test_tensorboard_reader_finds_the_scalars(toy_run):
  from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
  config, workdir, _ = toy_run
  ea = EventAccumulator(str(workdir / "tb"))
  ea.Reload()
  assert {"train/loss", "train/lr", "train/grad_norm", "eval/toy/loss"} <= set(ea.Tags()["scalars"])
  events = ea.Scalars("train/loss")
  assert [e.step for e in events] == list(range(1, config.train.steps + 1))
  losses = train_losses(workdir)
  np.testing.assert_allclose([e.value for e in events],
                             [losses[e.step][0] for e in events], rtol=1e-6)


def test_grad_accumulation_matches_one_big_batch(toy_run, tmp_path):
  _, workdir_a, _ = toy_run
  config = toy_config(steps=1, grad_accum_steps=2)
  train_and_evaluate(config, tmp_path, task=ToyTask(config))
  # Micro-batches of equal size: the mean of their losses is the batch loss.
  np.testing.assert_allclose(train_losses(tmp_path)[1][0], train_losses(workdir_a)[1][0],
                             rtol=1e-6)


def test_init_from_another_model_names_the_difference(toy_run, tmp_path):
  _, workdir_a, _ = toy_run
  config = toy_config(steps=0)
  with config.unlocked():
    config.ckpt.init_from = str(workdir_a)
    config.model.width = 32
  with pytest.raises(ConfigError, match=r"init_from=.*do not fit this model \(model\.width: 16 -> 32\)"):
    train_and_evaluate(config, tmp_path, task=ToyTask(config))
