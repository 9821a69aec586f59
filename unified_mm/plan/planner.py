"""Puts a plan together: topology, mesh, exact sizes, analytic memory, AOT compile."""

from __future__ import annotations

import logging

from unified_mm.config.validation import validate
from unified_mm.plan import aot, memory
from unified_mm.plan.hardware import Topology, parse_topology
from unified_mm.plan.report import PlanReport, tokens_per_step, train_flops

log = logging.getLogger("unified_mm.plan")


def topology_for(config, topology: str | None) -> Topology:
  """`--topology` if given, else the pod preset's own `topology` key."""
  name = topology or str(config.get("topology", "") or "")
  if not name:
    from unified_mm.config.loading import ConfigError
    raise ConfigError("no topology: pass --topology (e.g. v5p-256) or use a pod preset "
                      "(experiments/pods.py:<model>@<topology>)")
  return parse_topology(name)


def make_plan(config, spec: str, topo: Topology, *, mfu: float = 0.4,
              compile_aot: bool = True, task=None) -> PlanReport:
  if task is None:
    from unified_mm.tasks import make_task
    task = make_task(config)
  sizes = validate(config, topo.num_devices)   # bad mesh / batch splits fail here, by key
  estimate = memory.estimate(config, task, sizes)
  report = PlanReport(
      config=spec, topology=topo, mesh=sizes, params=estimate.param_count,
      tokens_per_step=tokens_per_step(config), flops_per_step=train_flops(config),
      memory=estimate, mfu=mfu)
  if not compile_aot:
    report.aot_skipped = "--no-aot"
  elif not topo.is_tpu:
    report.aot_skipped = f"{topo.chip.name} is not a TPU (analytic estimate only)"
  elif not aot.libtpu_available():
    report.aot_skipped = "libtpu is not installed (pip install 'unified_mm[tpu]')"
  else:
    log.info("AOT-compiling the train step for %s ...", topo.name)
    report.compiled = aot.compile_train_step(config, aot.topology_devices(topo), task)
  return report
