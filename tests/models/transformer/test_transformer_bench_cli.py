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


def test_bench_decode_times_equal_work_on_both_paths(repo_root, subprocess_env):
  """Both decoders produce the same greedy tokens (so the timings compare equal
  work), and the ratios are the ones the JSON's own times give."""
  out = subprocess.run(
      [sys.executable, "-m", "unified_mm.cli.main", "bench", "decode",
       "--config", str(repo_root / "experiments/lm.py:tiny"), "--image-tokens", "24",
       "--prompt-len", "8", "--batch-size", "2", "--repeats", "1",
       "--config.model.num_layers=1"],
      env=subprocess_env(1), capture_output=True, text=True, timeout=600, cwd=repo_root)
  assert out.returncode == 0, out.stderr[-2000:]
  result = json.loads(out.stdout.strip().splitlines()[-1])
  assert result["tokens_agree"] == 1.0
  assert result["speedup_vs_recompute"] == pytest.approx(
      result["recompute_ms"] / result["cached_ms"], rel=0.02)
  assert result["speedup"] == pytest.approx(min(
      result["recompute_ms"], result["prefix_recompute_ms_estimate"]) / result["cached_ms"],
      rel=0.02)
  assert sorted(result["forward_ms_at_lengths"], key=int)[0] == "8"


def test_bench_decode_refuses_a_non_transformer_config(repo_root, subprocess_env):
  out = subprocess.run(
      [sys.executable, "-m", "unified_mm.cli.main", "bench", "decode",
       "--config", str(repo_root / "experiments/shapes.py:renderer")],
      env=subprocess_env(1), capture_output=True, text=True, timeout=600, cwd=repo_root)
  assert out.returncode != 0 and "stage='renderer'" in out.stderr
