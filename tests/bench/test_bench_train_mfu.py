"""`umm bench train` on 8 fake devices: the matmul reference runs on all 8, so
MFU is against the 8-device peak and stays <= 1 (it read 4.74 against a
one-device probe, issue #19)."""

import jax
import pytest

from unified_mm.bench.matmul import MatmulProbe
from unified_mm.bench.train import bench_train
from unified_mm.config.loading import load_config


def test_probe_counts_every_device():
  devices = jax.devices()[:8]
  one, eight = MatmulProbe(256, chain=1), MatmulProbe(256, chain=1, devices=devices)
  assert (one.num_devices, eight.num_devices) == (1, 8)
  assert eight.flops == 8 * one.flops
  assert {s.device for s in eight.a.addressable_shards} == set(devices)
  assert eight.sample() > 0


@pytest.mark.slow  # ~10 s of CPU, 25-30 s wall on the shared 2 cores
def test_bench_train_mfu_on_8_devices_is_against_8_devices():
  assert jax.device_count() == 8
  config = load_config("experiments/lm.py:tiny", [
      "--config.model.num_layers=1", "--config.train.batch_size=8",
      "--config.mesh.data=1", "--config.mesh.fsdp=8"])
  result = bench_train(config, steps=1, warmup=0, probe_size=512, log=lambda *_: None)
  assert result["devices"] == 8 and result["matmul_devices"] == 8
  assert 0 < result["mfu"] <= 1
  assert result["mfu"] == pytest.approx(
      result["model_tflops_per_s"] / result["matmul_peak_tflops_per_s"], rel=0.05)  # rounded figures


def test_bench_train_against_xla_defaults_times_both_compiles():
  config = load_config("experiments/lm.py:tiny", [
      "--config.model.num_layers=1", "--config.train.batch_size=8"])
  lines = []
  result = bench_train(config, steps=2, warmup=0, probe_size=128, against_xla_defaults=True,
                       log=lines.append)
  assert result["xla_defaults_step_ms"] > 0
  assert result["step_ratio_vs_xla_defaults"] == pytest.approx(
      result["step_ms"] / result["xla_defaults_step_ms"], rel=0.01)
  assert sum("XLA defaults" in line for line in lines) == 2
