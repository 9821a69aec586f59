"""Target name -> renderer, and running what a renderer produced."""

from __future__ import annotations

import subprocess
import sys

from unified_mm.launch import gke, local, slurm, supervisor, tpu_pod
from unified_mm.launch.spec import LaunchSpec, Rendered

RENDERERS = {
    "local": local.render,
    "slurm": slurm.render,
    "tpu-pod": tpu_pod.render,
    "gke": gke.render,
}


def render(target: str, spec: LaunchSpec) -> Rendered:
  if target not in RENDERERS:
    raise ValueError(f"--target={target}: expected one of {', '.join(RENDERERS)}")
  return RENDERERS[target](spec)


def execute(job: Rendered, spec: LaunchSpec, timeout: float | None = None) -> int:
  """Runs a rendered job: the local supervisor, or the commands one after another."""
  if job.target == "local":
    for note in job.notes:
      print(f"umm launch: {note}", file=sys.stderr)
    return supervisor.run(job.commands, job.envs, local.log_dir(spec), timeout=timeout)
  job.write_files()
  for argv in job.commands:
    print(f"umm launch: running {' '.join(argv)}", file=sys.stderr)
    code = subprocess.run(argv, timeout=timeout).returncode
    if code:
      print(f"umm launch: {argv[0]} exited with code {code}", file=sys.stderr)
      return code
  return 0
