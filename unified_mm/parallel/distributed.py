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

Faults, and what a job does about them:
  a process that stops (SIGSTOP, a hung host) or dies: JAX's coordination
      service misses its heartbeats and ends every other process after
      UMM_HEARTBEAT_TIMEOUT seconds (default 100, JAX's), with "tasks are
      unhealthy (stopped sending heartbeats)" (or, when the stopped one is
      process 0, the others' "DEADLINE_EXCEEDED") and exit signal SIGABRT;
      nobody waits forever;
  the coordinator's port already in use: process 0 fails at once with a
      DistributedError naming the address;
  process 0 never comes up: the others fail with a DistributedError after
      UMM_INIT_TIMEOUT seconds (default 300, JAX's).
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import os
import sys
from collections.abc import Mapping

ENV_COORDINATOR = "UMM_COORDINATOR"
ENV_NUM_PROCESSES = "UMM_NUM_PROCESSES"
ENV_PROCESS_ID = "UMM_PROCESS_ID"
ENV_CPU_DEVICES = "UMM_CPU_DEVICES"
ENV_MODE = "UMM_DISTRIBUTED"            # auto | off | (unset: detect)
ENV_HEARTBEAT = "UMM_HEARTBEAT_TIMEOUT"  # seconds before a dead peer fails the job
ENV_INIT_TIMEOUT = "UMM_INIT_TIMEOUT"    # seconds to wait for all processes to join

DEFAULT_HEARTBEAT_TIMEOUT = 100  # seconds; JAX's own defaults, stated here
DEFAULT_INIT_TIMEOUT = 300

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
  kwargs = dict(heartbeat_timeout_seconds=p.heartbeat_timeout or DEFAULT_HEARTBEAT_TIMEOUT,
                initialization_timeout=p.init_timeout or DEFAULT_INIT_TIMEOUT)
  if p.mode == "explicit":
    kwargs.update(coordinator_address=p.coordinator, num_processes=p.num_processes,
                  process_id=p.process_id)
  log.info("jax.distributed.initialize (%s): %s; a process silent for %d s fails the job (%s)",
           p.reason, kwargs, kwargs["heartbeat_timeout_seconds"], ENV_HEARTBEAT)
  try:
    if p.process_id == 0 and p.coordinator:
      _check_port(p)  # JAX can crash (SIGSEGV) on a taken port before it raises anything
    jax.distributed.initialize(**kwargs)
  except DistributedError as e:
    error = e
  except Exception as e:  # noqa: BLE001 -- JAX's errors name neither the port nor the variable
    error = _join_error(p, kwargs["initialization_timeout"], e)
  else:
    return p
  # Said before raising: a half-started JAX runtime can crash the interpreter as the
  # exception unwinds or at exit (SIGSEGV), which would swallow the message.
  print(f"{type(error).__name__}: {error}", file=sys.stderr, flush=True)
  raise error


def port_in_use(port: int) -> bool:
  """True if something on this host already listens on `port` (any address)."""
  import socket  # noqa: PLC0415
  for family, address in ((socket.AF_INET6, "::"), (socket.AF_INET, "0.0.0.0")):
    try:
      with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gRPC does
        sock.bind((address, port))
      return False
    except OSError as e:
      if e.errno == errno.EADDRINUSE:
        return True
  return False


def _check_port(p: Plan, detail: str = "") -> None:
  port = p.coordinator.rsplit(":", 1)[-1]
  if port.isdigit() and port_in_use(int(port)):
    raise DistributedError(
        f"{ENV_COORDINATOR}={p.coordinator}: process 0 cannot serve the coordinator, port {port} "
        f"is already in use on this host (another job?); pick a free port{detail}")


def _join_error(p: Plan, init_timeout: int, error: Exception) -> DistributedError:
  first = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
  where = f"{ENV_COORDINATOR}={p.coordinator}" if p.coordinator else f"auto-detected ({p.reason})"
  if p.process_id == 0 and p.coordinator:
    try:
      _check_port(p, f" ({first})")  # taken between the check and JAX's bind
    except DistributedError as e:
      return e
  return DistributedError(
      f"{where}: process {p.process_id if p.process_id is not None else '?'} could not join the "
      f"job within {init_timeout} s (is process 0 up and the address reachable? "
      f"{ENV_INIT_TIMEOUT} sets the wait) ({first})")

