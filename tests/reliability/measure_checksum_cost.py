"""Measures what the checkpoint checksums cost on save and on restore.

    JAX_PLATFORMS=cpu python tests/reliability/measure_checksum_cost.py [--repeats 3]

A train state of f32 params plus two Adam-moment copies (the lm tiny preset's
12.8 MiB, and a 198 MiB one like docs/training.md's "wide" model), saved
synchronously and restored on one CPU device, with and without checksums; the
checksum pass alone too. Prints one JSON line per size (median CPU seconds of
the process, all threads: robust to other jobs on the machine).
"""

import argparse
import json
import pathlib
import shutil
import statistics
import tempfile
import time

import jax
import numpy as np

from unified_mm.config.base import ckpt_config
from unified_mm.train import checkpoint as ckpt_module
from unified_mm.train.checkpoint import Checkpoints, checksums
from unified_mm.train.state import TrainState

SIZES = {"tiny": 12.8 * 2**20, "medium": 198 * 2**20}


def _state(total_bytes: float) -> TrainState:
  n = int(total_bytes / 4 / 3)  # params, mu, nu
  shapes = [(n // 8 // 512, 512)] * 8
  rng = np.random.default_rng(0)
  params = {f"layers.{i}.kernel": jax.device_put(rng.standard_normal(s, np.float32))
            for i, s in enumerate(shapes)}
  moments = tuple({k: v * 0.5 for k, v in params.items()} for _ in range(2))
  return TrainState(step=jax.numpy.asarray(7, jax.numpy.int32), params=params,
                    opt_state=moments, ema=None)


def _timed(fn):
  """(CPU seconds of all this process's threads, result): wall time means little on
  a shared machine; the CPU the work took does not depend on who else runs."""
  t0 = time.process_time()
  out = fn()
  jax.block_until_ready(out)
  return time.process_time() - t0, out


def measure(name: str, total: float, repeats: int) -> dict:
  state = _state(total)
  target = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=a.sharding), state)
  real_checksums, real_verify = ckpt_module.checksums, Checkpoints.verify
  rows = {k: [] for k in ("checksum_pass", "save_with", "save_without", "restore_with",
                          "restore_without")}
  t_compile, _ = _timed(lambda: checksums({"params": state.params}))
  for r in range(repeats):
    rows["checksum_pass"].append(_timed(lambda: checksums(
        {"params": state.params, "state": {"opt_state": state.opt_state}}))[0])
    for with_sums in (True, False):
      directory = pathlib.Path(tempfile.mkdtemp(prefix="ckcost_"))
      try:
        ckpt_module.checksums = real_checksums if with_sums else (lambda tree: {})
        Checkpoints.verify = real_verify if with_sums else (lambda *a, **k: None)
        ckpts = Checkpoints(directory, ckpt_config(async_save=False, save_every_steps=1))
        key = "with" if with_sums else "without"
        rows[f"save_{key}"].append(_timed(lambda: ckpts.save(1, state, {"served": 1}, {}, {}))[0])
        rows[f"restore_{key}"].append(_timed(lambda: ckpts.restore(1, target))[0])
        ckpts.close()
      finally:
        ckpt_module.checksums, Checkpoints.verify = real_checksums, real_verify
        shutil.rmtree(directory, ignore_errors=True)
  med = {k: round(statistics.median(v), 4) for k, v in rows.items()}
  return dict(size=name, state_mib=round(total / 2**20, 1), repeats=repeats,
              checksum_compile_s=round(t_compile, 3), **med,
              save_overhead=round(med["save_with"] / med["save_without"] - 1, 3),
              restore_overhead=round(med["restore_with"] / med["restore_without"] - 1, 3))


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--repeats", type=int, default=3)
  args = parser.parse_args()
  for name, total in SIZES.items():
    print(json.dumps(measure(name, total, args.repeats)), flush=True)


if __name__ == "__main__":
  main()
