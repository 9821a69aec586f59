"""`umm bench train` end to end on a 1-layer tiny config: the last line is the JSON."""

import json
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_bench_train_prints_json_last(repo_root, subprocess_env):
  out = subprocess.run(
      [sys.executable, "-m", "unified_mm.cli.main", "bench", "train",
       "--config", str(repo_root / "experiments/lm.py:tiny"), "--steps", "1", "--warmup", "0",
       "--config.model.num_layers=1", "--config.train.batch_size=4"],
      env=subprocess_env(1), capture_output=True, text=True, timeout=600, cwd=repo_root)
  assert out.returncode == 0, out.stderr[-2000:]
  result = json.loads(out.stdout.strip().splitlines()[-1])
  for key in ("tokens_per_s", "step_ms", "model_tflops_per_s", "matmul_peak_tflops_per_s", "mfu"):
    assert result[key] > 0, key
  assert result["tokens_per_step"] == 4 * 128
  assert result["mfu"] == pytest.approx(
      result["model_tflops_per_s"] / result["matmul_peak_tflops_per_s"], rel=0.01)
