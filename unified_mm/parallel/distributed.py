"""Joins this process to a multi-process JAX run: the one place that does it.

JAX's own multi-controller runtime is the engine; this module only decides
how to call `jax.distributed.initialize`, and must run before anything else
touches a JAX backend (the first `jax.devices()` freezes the device list):

  explicit   UMM_COORDINATOR=host:port, UMM_NUM_PROCESSES, UMM_PROCESS_ID
             (or the same as keyword arguments): local multi-process runs and
             generic clusters. `umm launch --target local` sets these.
  auto       SLURM with more than one task, a GKE TPU slice (TPU_WORKER_HOSTNAMES
             with several hosts), or UMM_DISTRIBUTED=auto (set by the tpu-pod and
             GKE launchers): `jax.distributed.initialize()` with no arguments,
             JAX's cluster detection fills everything in.
  off        anything else, or UMM_DISTRIBUTED=off: a single-process run,
             initialize is not called at all.

UMM_CPU_DEVICES=n gives each process n fake CPU devices (`jax_num_cpu_devices`),
which is how a laptop rehearses a 2-host x 4-device pod.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping

ENV_COORDINATOR = "UMM_COORDINATOR"
ENV_NUM_PROCESSES = "UMM_NUM_PROCESSES"
ENV_PROCESS_ID = "UMM_PROCESS_ID"
ENV_CPU_DEVICES = "UMM_CPU_DEVICES"
ENV_MODE = "UMM_DISTRIBUTED"            # auto | off | (unset: detect)
ENV_HEARTBEAT = "UMM_HEARTBEAT_TIMEOUT"  # seconds before a dead peer fails the job
ENV_INIT_TIMEOUT = "UMM_INIT_TIMEOUT"    # seconds to wait for all processes to join

log = logging.getLogger("unified_mm.distributed")

_SLURM_VARS = ("SLURM_JOB_ID", "SLURM_STEP_NODELIST", "SLURM_NTASKS", "SLURM_PROCID",
               "SLURM_LOCALID")


class DistributedError(RuntimeError):
  pass


@dataclasses.dataclass(frozen=True)
class Plan:
  """What `initialize` will do, decided from arguments and the environment alone."""
  mode: str                      # "explicit" | "auto" | "off"
  reason: str                    # one line for the log: why this mode
  coordinator: str | None = None
  num_processes: int | None = None
  process_id: int | None = None
  cpu_devices: int | None = None
  heartbeat_timeout: int | None = None
  init_timeout: int | None = None


def _int(env: Mapping[str, str], key: str) -> int | None:
  text = env.get(key, "").strip()
  if not text:
    return None
  try:
    return int(text)
  except ValueError:
    raise DistributedError(f"{key}={text!r}: expected an integer") from None


def _detected_cluster(env: Mapping[str, str]) -> str | None:
  if all(k in env for k in _SLURM_VARS) and (_int(env, "SLURM_NTASKS") or 1) > 1:
    return "SLURM with %s tasks" % env["SLURM_NTASKS"]
  hosts = env.get("TPU_PROCESS_ADDRESSES") or env.get("TPU_WORKER_HOSTNAMES") or ""
  if len([h for h in hosts.split(",") if h.strip()]) > 1 and "TPU_WORKER_ID" in env:
    return "a multi-host TPU slice (TPU_WORKER_HOSTNAMES)"
  if (_int(env, "MEGASCALE_NUM_SLICES") or 1) > 1:
    return "a multi-slice TPU job (MEGASCALE_NUM_SLICES)"
  return None


def plan(coordinator: str | None = None, num_processes: int | None = None,
         process_id: int | None = None, cpu_devices: int | None = None,
         env: Mapping[str, str] | None = None) -> Plan:
  """Decides how to join the run; pure, so it is testable without JAX."""
  env = os.environ if env is None else env
  coordinator = coordinator or env.get(ENV_COORDINATOR) or None
  num_processes = num_processes if num_processes is not None else _int(env, ENV_NUM_PROCESSES)
  process_id = process_id if process_id is not None else _int(env, ENV_PROCESS_ID)
  common = dict(cpu_devices=cpu_devices if cpu_devices is not None else _int(env, ENV_CPU_DEVICES),
                heartbeat_timeout=_int(env, ENV_HEARTBEAT), init_timeout=_int(env, ENV_INIT_TIMEOUT))
  mode = env.get(ENV_MODE, "").strip().lower()
  if mode not in ("", "auto", "off"):
    raise DistributedError(f"{ENV_MODE}={mode!r}: expected 'auto', 'off' or unset")
  if mode == "off":
    return Plan("off", f"{ENV_MODE}=off", **common)
  if coordinator:
    missing = [k for k, v in ((ENV_NUM_PROCESSES, num_processes), (ENV_PROCESS_ID, process_id))
               if v is None]
    if missing:
      raise DistributedError(f"{ENV_COORDINATOR}={coordinator} needs {' and '.join(missing)} too")
    if not 0 <= process_id < num_processes:
      raise DistributedError(f"{ENV_PROCESS_ID}={process_id}: not in [0, {num_processes})")
    if num_processes == 1:
      return Plan("off", "one process", **common)
    return Plan("explicit", f"coordinator {coordinator}", coordinator, num_processes,
                process_id, **common)
  if mode == "auto":
    return Plan("auto", f"{ENV_MODE}=auto", **common)
  cluster = _detected_cluster(env)
  if cluster:
    return Plan("auto", f"detected {cluster}", **common)
  return Plan("off", "no coordinator and no multi-process cluster detected", **common)


def initialize(coordinator: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, cpu_devices: int | None = None) -> Plan:
  """Joins the run as `plan(...)` decides. Call first thing, before any JAX computation.

  Returns the plan it followed. Safe to call twice (the second call is a no-op).
  """
  import jax  # imported here so `plan` stays usable without touching JAX

  p = plan(coordinator, num_processes, process_id, cpu_devices)
  if p.cpu_devices:
    jax.config.update("jax_num_cpu_devices", p.cpu_devices)
  if p.mode == "off" or jax.distributed.is_initialized():
    return p
  kwargs = {}
  if p.heartbeat_timeout:
    kwargs["heartbeat_timeout_seconds"] = p.heartbeat_timeout
  if p.init_timeout:
    kwargs["initialization_timeout"] = p.init_timeout
  if p.mode == "explicit":
    kwargs.update(coordinator_address=p.coordinator, num_processes=p.num_processes,
                  process_id=p.process_id)
  log.info("jax.distributed.initialize (%s): %s", p.reason, kwargs or "auto-detect")
  jax.distributed.initialize(**kwargs)
  return p

