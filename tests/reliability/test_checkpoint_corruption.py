"""Silent corruption: damaged checkpoint files are never restored. The trainer
names the bad step, sets it aside and resumes from the last good one.

Orbax itself refuses a truncated file, a deleted shard or a deleted manifest;
it restores happily a flipped byte inside a tensor's chunk (zstd frames carry no
content checksum), a checkpoint that lost its tree metadata, and an edited data
iterator state. The checksums saved with every checkpoint catch those.
"""

import json
import logging
import shutil

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
from train_toy_task import ToyTask, toy_config

from unified_mm.parallel.mesh import make_mesh
from unified_mm.parallel.sharding import rules_from_config
from unified_mm.train import train_and_evaluate
from unified_mm.train.checkpoint import ChecksumMismatch, Checkpoints, checkpoint_dir, checksums
from unified_mm.train.trainer import plan_state


def _config():
  config = toy_config(steps=12)
  with config.unlocked():
    config.model.width = 64  # kernels big enough to live in chunk files, not inline
  return config


def _params(state):
  return {k: np.asarray(jax.device_get(v)) for k, v in state.params.items()}


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
  config = _config()
  workdir = tmp_path_factory.mktemp("straight") / "w"
  params = _params(train_and_evaluate(config, workdir, task=ToyTask(config)))
  return config, workdir, params, _chunk_file(config, workdir, params,
                                              tmp_path_factory.mktemp("probe"))


def _chunk_file(config, workdir, params, scratch):
  """Step 12's params data file (relative to the step) whose middle byte a restore
  reads: compressed chunks of the kernels. Orbax's writers split the chunks over
  several files, and which one is largest changes from run to run (one CI run
  wrote a largest file whose middle no restore reads), so the file is found by
  flipping a byte in each, largest first, and restoring without checks."""
  probe = scratch / "w"
  shutil.copytree(workdir, probe)
  step_dir = checkpoint_dir(probe) / "12"
  for path in sorted(step_dir.glob("params/ocdbt.process_*/d/*"), key=lambda p: -p.stat().st_size):
    chunk = path.relative_to(step_dir)
    _flip_byte(step_dir, chunk)
    try:
      got, _ = _restore_without_checks(probe, config, 12)
    except Exception:  # noqa: BLE001 -- a file Orbax checks: not the silent case
      got = params
    finally:
      _flip_byte(step_dir, chunk)  # flipped back: the probe is whole again
    if any(not np.array_equal(got[k], params[k]) for k in got):
      return chunk
  raise AssertionError("no params data file of step 12 changes the restore when a byte flips")


def _flip_byte(step_dir, chunk):
  path = step_dir / chunk
  data = bytearray(path.read_bytes())
  data[len(data) // 2] ^= 0x10
  path.write_bytes(bytes(data))


def _truncate(step_dir, chunk):
  path = step_dir / chunk
  with open(path, "r+b") as f:
    f.truncate(path.stat().st_size // 2)


def _delete_shard(step_dir, chunk):
  (step_dir / chunk).unlink()


def _delete_metadata(step_dir, chunk):
  (step_dir / "params" / "_METADATA").unlink()


def _delete_manifest(step_dir, chunk):
  (step_dir / "params" / "manifest.ocdbt").unlink()


def _edit_data_state(step_dir, chunk):
  path = step_dir / "data" / "metadata"
  state = json.loads(path.read_text())
  path.write_text(json.dumps({**state, "served": state["served"] - 1}))


DAMAGE = {"flipped_byte": _flip_byte, "truncated": _truncate, "deleted_shard": _delete_shard,
          "deleted_metadata": _delete_metadata, "deleted_manifest": _delete_manifest,
          "edited_data_state": _edit_data_state}


# A failed restore leaves Orbax's other shard reads to be closed by the garbage
# collector, which pytest may report as an unraisable GeneratorExit: that is the
# damage working, not a fault of the code under test.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_step_is_named_set_aside_and_the_last_good_one_used(straight, tmp_path, caplog,
                                                                    damage):
  config, workdir_a, params_a, chunk = straight
  workdir = tmp_path / "w"
  shutil.copytree(workdir_a, workdir)
  DAMAGE[damage](checkpoint_dir(workdir) / "12", chunk)
  caplog.set_level(logging.INFO, "unified_mm.train")
  state = train_and_evaluate(config, workdir, task=ToyTask(config))
  assert "checkpoint step 12 is unreadable" in caplog.text
  assert "falling back to step 8" in caplog.text
  assert "resumed from checkpoint step 8" in caplog.text
  assert (checkpoint_dir(workdir) / "12.unreadable").is_dir()  # kept for inspection
  for k, v in _params(state).items():  # retrained 8 -> 12: the straight run's params
    np.testing.assert_array_equal(v, params_a[k], err_msg=k)


def _restore_without_checks(workdir, config, step):
  """What Orbax alone hands back (the target's shapes; no checksum, no metadata read)."""
  mesh = make_mesh(config.mesh, jax.devices())
  plan = plan_state(ToyTask(config), config, mesh, rules_from_config(config.rules))
  ckpts = Checkpoints(checkpoint_dir(workdir), read_only=True)
  try:
    got = ckpts.manager.restore(step, args=ocp.args.Composite(
        params=ocp.args.StandardRestore(plan.target.params), data=ocp.args.JsonRestore()))
  finally:
    ckpts.close()
  return {k: np.asarray(v) for k, v in got["params"].items()}, got["data"]


@pytest.mark.parametrize("damage", ["flipped_byte", "deleted_metadata", "edited_data_state"])
def test_orbax_alone_reads_these_damages_without_error(straight, tmp_path, damage):
  """Why the checksums exist: without them these checkpoints restore silently."""
  config, workdir_a, params_a, chunk = straight
  workdir = tmp_path / "w"
  shutil.copytree(workdir_a, workdir)
  DAMAGE[damage](checkpoint_dir(workdir) / "12", chunk)
  params, data = _restore_without_checks(workdir, config, 12)
  if damage == "flipped_byte":
    assert any(not np.array_equal(params[k], params_a[k]) for k in params)
  elif damage == "edited_data_state":
    assert data["served"] == 11
  mesh = make_mesh(config.mesh, jax.devices())
  plan = plan_state(ToyTask(config), config, mesh, rules_from_config(config.rules))
  ckpts = Checkpoints(checkpoint_dir(workdir), read_only=True)
  try:
    with pytest.raises(ChecksumMismatch):
      ckpts.restore(12, plan.target)
  finally:
    ckpts.close()


@pytest.mark.parametrize("dtype", [np.float32, jax.numpy.bfloat16, np.int32, np.uint8, np.bool_])
def test_checksum_is_mesh_independent_and_sees_every_single_byte_change(dtype):
  rng = np.random.default_rng(0)
  host = (rng.standard_normal((8, 24)) * 50).astype(dtype)
  devices = jax.devices()
  sharded = jax.device_put(host, jax.sharding.NamedSharding(
      jax.sharding.Mesh(np.asarray(devices).reshape(4, 2), ("a", "b")),
      jax.sharding.PartitionSpec("a", "b")))
  one = jax.device_put(host, devices[0])
  assert checksums({"x": sharded}) == checksums({"x": one})
  raw = host.view(np.uint8).reshape(-1)
  seen = {checksums({"x": one})["['x']"]}
  positions = range(0, raw.size, max(1, raw.size // 40)) if dtype != np.bool_ else range(raw.size)
  for pos in positions:
    changed = raw.copy()
    changed[pos] ^= 0x01
    value = changed.view(host.dtype).reshape(host.shape)
    seen.add(checksums({"x": jax.device_put(value, devices[0])})["['x']"])
  assert len(seen) == 1 + len(positions)  # every change gave a checksum of its own
