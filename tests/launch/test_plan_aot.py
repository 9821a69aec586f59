"""`umm plan`: AOT compile of the real train step for a TPU topology, from this CPU.

Needs libtpu (`pip install '.[tpu]'`); the AOT tests skip without it.
"""

import json

import numpy as np
import pytest

from unified_mm.cli.main import main
from unified_mm.config.loading import load_config
from unified_mm.config.validation import validate
from unified_mm.launch.spec import REPO_ROOT
from unified_mm.plan import aot, memory
from unified_mm.plan.hardware import parse_topology
from unified_mm.plan.planner import make_plan
from unified_mm.plan.report import format_report
from unified_mm.tasks import make_task

needs_libtpu = pytest.mark.skipif(not aot.libtpu_available(),
                                  reason="libtpu not installed (pip install '.[tpu]')")


def _plan_json(args, capsys, monkeypatch):
  monkeypatch.chdir(REPO_ROOT)
  code = main(["plan", *args, "--json"])
  return code, json.loads(capsys.readouterr().out)


def test_analytic_plan_without_compiling(capsys, monkeypatch):
  code, plan = _plan_json(["--config", "experiments/pods.py:chameleon_7b@v5p-256", "--no-aot"],
                          capsys, monkeypatch)
  assert code == 0 and plan["fits"] and plan["aot_skipped"] == "--no-aot"
  assert plan["devices"] == 128 and plan["mesh"]["fsdp"] == 128
  assert abs(plan["params"] / 7.0e9 - 1) < 0.02
  # 6N per token plus attention: 7B params, 4096 tokens of context.
  assert 6 * plan["params"] < plan["flops_per_token"] < 8 * plan["params"]
  expected = plan["flops_per_step"] / (128 * 459e12 * 0.4)
  assert plan["step_seconds"] == pytest.approx(expected)


def test_gpu_topologies_get_the_analytic_estimate(capsys, monkeypatch):
  code, plan = _plan_json(["--config", "experiments/pods.py:llamagen_gpt_b@h100-16"],
                          capsys, monkeypatch)
  assert code == 0 and "not a TPU" in plan["aot_skipped"]
  assert plan["mesh"] == {"data": 2, "fsdp": 8, "sequence": 1, "tensor": 1}


@needs_libtpu
def test_aot_compile_of_the_real_step_on_v5p_16():
  config = load_config("experiments/lm.py:tiny")
  topo = parse_topology("v5p-16")
  task = make_task(config)
  report = make_plan(config, "experiments/lm.py:tiny", topo, task=task)
  c = report.compiled
  assert c is not None and c.fits and 0 < c.peak_bytes < topo.chip.hbm_bytes
  # XLA's arguments are the donated train state plus this device's share of the batch.
  sizes = validate(config, 8)
  params, opt, _, _ = memory.state_bytes(config, task, sizes)
  batch = aot.abstract_batch(task, int(config.train.batch_size))
  batch_bytes = sum(np.prod(s) * np.dtype(d).itemsize for s, d in batch.values()) // 8
  # (TPU layouts pad small arrays such as norm scales and scalars: within 1%.)
  assert c.argument_bytes == pytest.approx(params + opt + batch_bytes, rel=0.01)
  assert c.alias_bytes >= params + opt  # the state is updated in place
  # Executed FLOPs per device vs the benchmark's matmul counter: same work, plus elementwise.
  ratio = c.flops / (report.flops_per_step / 8)
  assert 1.0 <= ratio < 1.3, ratio
  text = format_report(report)
  assert "XLA (AOT)" in text and "fits: needs" in text


@needs_libtpu
def test_oversized_config_does_not_fit(capsys, monkeypatch):
  # 16384 rows of 128 tokens per v5e chip (16 GiB): the activations alone are ~70 GiB.
  monkeypatch.chdir(REPO_ROOT)
  code = main(["plan", "--config", "experiments/lm.py:tiny", "--topology", "v5e-8",
               "--config.train.batch_size=131072"])
  out = capsys.readouterr().out
  assert code == 1
  assert "DOES NOT FIT" in out and "exceeds available HBM" in out
  assert "of 16 GiB per device" in out


@needs_libtpu
@pytest.mark.slow
@pytest.mark.parametrize("remat,fits", [("full", True), ("none", False)])
def test_chameleon_7b_on_v5p_256(remat, fits, capsys, monkeypatch):
  code, plan = _plan_json(["--config", "experiments/pods.py:chameleon_7b@v5p-256",
                           f"--config.model.remat={remat}"], capsys, monkeypatch)
  assert plan["fits"] is fits and code == (0 if fits else 1)
  assert plan["compile_seconds"] > 0
  if fits:
    assert plan["xla_bytes"]["peak"] < 95 * 2**30
  else:
    assert "RESOURCE_EXHAUSTED" in plan["out_of_memory"]
    assert plan["needed_bytes"] > 95 * 2**30
