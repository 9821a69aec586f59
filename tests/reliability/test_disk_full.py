"""Disk full during a save: the save is lost, the step before it is intact and
is the one a restart uses; the run stops saying the disk is full and which
step was lost.

The real thing runs on a small tmpfs mounted in a user+mount namespace
(`unshare -rm`: no privileges needed where user namespaces are enabled; the
test is skipped elsewhere). A second test, with no mount at all, makes the
save itself raise ENOSPC in-process; a third makes an async save report success
and write nothing (a background failure Orbax only logs).
"""

import errno
import logging
import shutil
import subprocess

import pytest
from fault_procs import runner_cmd
from train_metrics_reader import train_losses
from train_toy_task import ToyTask, toy_config

from unified_mm.train import CheckpointWriteError, train_and_evaluate
from unified_mm.train.checkpoint import Checkpoints, checkpoint_dir


def _can_mount_tmpfs(tmp_path) -> bool:
  if not shutil.which("unshare"):
    return False
  probe = tmp_path / "probe"
  probe.mkdir()
  done = subprocess.run(["unshare", "-rm", "sh", "-c", f"mount -t tmpfs -o size=1m tmpfs {probe}"],
                        capture_output=True, timeout=60)
  return done.returncode == 0


SCRIPT = """
set -u
mount -t tmpfs -o size=8m tmpfs {mnt}
{run1} > {out}/run1.log 2>&1; echo $? > {out}/run1.code
ls {mnt}/w/checkpoints > {out}/after_run1.ls
rm -f {mnt}/filler
{run2} > {out}/run2.log 2>&1; echo $? > {out}/run2.code
cp -r {mnt}/w {out}/w
"""


@pytest.mark.slow  # two real runs on a mounted tmpfs; the ENOSPC tests below are the fast ones
def test_disk_full_on_a_real_small_filesystem(tmp_path, runner_env):
  if not _can_mount_tmpfs(tmp_path):
    pytest.skip("cannot mount a tmpfs in a user namespace here (unshare -rm)")
  mnt, out = tmp_path / "mnt", tmp_path / "out"
  mnt.mkdir()
  out.mkdir()
  opts = dict(steps=12, save_every=4)
  # Run 1: once step 4 is on disk, the filesystem is filled to 40 KiB free (room
  # for metrics rows, not for a checkpoint): the async save of step 8 fails.
  run1 = " ".join(runner_cmd(mnt / "w", **opts, fill_at=6, fill_leave=40960))
  run2 = " ".join(runner_cmd(mnt / "w", **opts))  # space freed: the same command again
  script = tmp_path / "run.sh"
  script.write_text(SCRIPT.format(mnt=mnt, out=out, run1=run1, run2=run2))
  subprocess.run(["unshare", "-rm", "sh", str(script)], env=runner_env, check=True, timeout=1200)

  log1 = (out / "run1.log").read_text()
  assert (out / "run1.code").read_text().strip() == "1", log1[-3000:]
  said = [l for l in log1.splitlines() if l.startswith("toy_runner: ")]  # Orbax's threads log too
  assert len(said) == 1, log1[-3000:]
  assert said[0].startswith("toy_runner: disk full while writing checkpoint step 8"), said
  assert "step 8 was lost, step 4 is the last complete checkpoint" in said[0]
  assert (out / "after_run1.ls").read_text().split() == ["4", "8.orbax-checkpoint-tmp"]

  log2 = (out / "run2.log").read_text()
  assert (out / "run2.code").read_text().strip() == "0", log2[-3000:]
  assert "ignoring checkpoint step 8" in log2
  assert "resumed from checkpoint step 4" in log2
  losses = train_losses(out / "w")
  assert sorted(losses) == list(range(1, 13))
  for step, values in losses.items():  # steps 5.. were redone: the same losses
    assert values == [values[0]] * len(values), step
  ckpts = Checkpoints(checkpoint_dir(out / "w"), read_only=True)
  try:
    assert ckpts.steps()[-1] == 12
  finally:
    ckpts.close()


def test_enospc_from_the_save_stops_the_run_naming_the_lost_step(tmp_path, monkeypatch, caplog):
  config = toy_config(steps=12)
  with config.unlocked():
    config.ckpt.async_save = False
  real_save = Checkpoints.save

  def save(self, step, *args, **kwargs):
    if step == 8:  # what a full disk raises from the write
      real_manager_save = self.manager.save

      def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")
      monkeypatch.setattr(self.manager, "save", full)
      try:
        return real_save(self, step, *args, **kwargs)
      finally:
        monkeypatch.setattr(self.manager, "save", real_manager_save)
    return real_save(self, step, *args, **kwargs)

  monkeypatch.setattr(Checkpoints, "save", save)
  caplog.set_level(logging.INFO, "unified_mm.train")
  with pytest.raises(CheckpointWriteError,
                     match=r"disk full while writing checkpoint step 8 .*step 8 was lost, "
                           r"step 4 is the last complete checkpoint"):
    train_and_evaluate(config, tmp_path, task=ToyTask(config))
  assert "step 8 was lost" in caplog.text  # logged too (every process's log shows it)
  assert "resumed" not in caplog.text
  monkeypatch.setattr(Checkpoints, "save", real_save)
  caplog.clear()
  train_and_evaluate(config, tmp_path, task=ToyTask(config))
  assert "resumed from checkpoint step 4" in caplog.text


def test_an_async_save_that_never_reaches_the_disk_is_reported(tmp_path, monkeypatch):
  """Orbax may log a failed background write and carry on: a step that is not
  committed on disk once its save is waited for is reported as lost all the same."""
  config = toy_config(steps=12)
  with config.unlocked():
    config.ckpt.async_save = True
  real_save = Checkpoints.save

  def save(self, step, *args, **kwargs):
    if step != 8:
      return real_save(self, step, *args, **kwargs)
    real_manager_save = self.manager.save
    monkeypatch.setattr(self.manager, "save", lambda *a, **k: True)  # "started", never written
    try:
      return real_save(self, step, *args, **kwargs)
    finally:
      monkeypatch.setattr(self.manager, "save", real_manager_save)

  monkeypatch.setattr(Checkpoints, "save", save)
  with pytest.raises(CheckpointWriteError,
                     match=r"checkpoint not committed \(disk full\?\) while writing checkpoint "
                           r"step 8 .*step 8 was lost, step 4 is the last complete checkpoint"):
    train_and_evaluate(config, tmp_path, task=ToyTask(config))
  ckpts = Checkpoints(checkpoint_dir(tmp_path), read_only=True)
  try:
    assert ckpts.steps() == [4]  # the run stopped at the next save: nothing after the loss
  finally:
    ckpts.close()
