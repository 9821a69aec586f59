"""`--target local`: N processes of this machine joined through one coordinator.

Each process gets UMM_COORDINATOR / UMM_NUM_PROCESSES / UMM_PROCESS_ID (read
by `unified_mm.parallel.distributed.initialize`) and, for CPU rehearsals,
UMM_CPU_DEVICES fake devices. The supervisor runs them.
"""

from __future__ import annotations

import os
import sys

from unified_mm.launch.ports import free_port
from unified_mm.launch.spec import LaunchSpec, Rendered
from unified_mm.parallel import distributed

# A dead peer should fail the others quickly in a local run (JAX's default is 100 s);
# the supervisor normally stops them first.
LOCAL_HEARTBEAT_SECONDS = 30


def log_dir(spec: LaunchSpec) -> str:
  return os.path.join(spec.workdir, "logs")


def render(spec: LaunchSpec, port: int | None = None) -> Rendered:
  if spec.num_processes < 1:
    raise ValueError(f"--num-processes={spec.num_processes}: must be at least 1")
  port = port or free_port()
  argv = spec.umm_argv((sys.executable, "-m", "unified_mm.cli.main"))
  job = Rendered("local", notes=[
      f"{spec.num_processes} processes, coordinator 127.0.0.1:{port}, "
      f"logs in {log_dir(spec)}/process_<i>.log"])
  for i in range(spec.num_processes):
    env = dict(spec.env)
    env.update({
        distributed.ENV_COORDINATOR: f"127.0.0.1:{port}",
        distributed.ENV_NUM_PROCESSES: str(spec.num_processes),
        distributed.ENV_PROCESS_ID: str(i),
        distributed.ENV_HEARTBEAT: str(LOCAL_HEARTBEAT_SECONDS),
    })
    if spec.devices_per_process:
      env[distributed.ENV_CPU_DEVICES] = str(spec.devices_per_process)
    job.commands.append(list(argv))
    job.envs.append(env)
  return job
