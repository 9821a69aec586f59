"""`--target slurm`: an sbatch script that runs `umm train` in every task."""

from __future__ import annotations

import os
import shlex

from unified_mm.launch import templates
from unified_mm.launch.spec import LaunchSpec, Rendered
from unified_mm.parallel import distributed


def tasks_per_node(spec: LaunchSpec) -> int:
  # JAX's SLURM detection gives each task one GPU (SLURM_LOCALID), so GPU
  # nodes run one task per GPU; CPU nodes split the processes evenly.
  if spec.gpus_per_node:
    return spec.gpus_per_node
  if spec.num_processes % spec.nodes:
    raise ValueError(f"--num-processes={spec.num_processes} does not split over "
                     f"--nodes={spec.nodes}")
  return spec.num_processes // spec.nodes


def render(spec: LaunchSpec) -> Rendered:
  log_dir = os.path.join(spec.workdir, "logs")
  options = []
  if spec.gpus_per_node:
    options.append(f"#SBATCH --gpus-per-node={spec.gpus_per_node}")
  if spec.partition:
    options.append(f"#SBATCH --partition={spec.partition}")
  if spec.time:
    options.append(f"#SBATCH --time={spec.time}")
  env = dict(spec.env)
  if spec.devices_per_process:
    env[distributed.ENV_CPU_DEVICES] = str(spec.devices_per_process)
  script = templates.render(
      "slurm.sbatch", name=spec.name, nodes=spec.nodes, tasks_per_node=tasks_per_node(spec),
      log_dir=shlex.quote(log_dir), sbatch_options="\n".join(options),
      cwd=shlex.quote(spec.run_dir),
      activate=f"source {shlex.quote(os.path.join(spec.venv, 'bin', 'activate'))}" if spec.venv else "",
      exports="\n".join(f"export {k}={shlex.quote(v)}" for k, v in sorted(env.items())),
      command=spec.umm_shell())
  path = os.path.join(spec.workdir, "launch", "job.sbatch")
  # slurmd opens --output files before the script runs, so their directory must exist.
  sbatch = ["sbatch", "--wait", path] if spec.wait else ["sbatch", path]
  job = Rendered("slurm", files={path: script}, commands=[["mkdir", "-p", log_dir], sbatch],
                 notes=[f"{spec.nodes} node(s) x {tasks_per_node(spec)} task(s); "
                        f"logs in {log_dir}/process_<i>.log"])
  return job
