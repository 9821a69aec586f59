"""Multi-process faults on one machine, with real processes and JAX's own
coordination service:

- the coordinator's port already taken: process 0 fails at once with one
  DistributedError line naming the address and the port (process 0 probes the
  port before JAX binds it: JAX itself sometimes segfaults on a taken port);
- one process stopped (SIGSTOP: a hang, not a death): the other fails within
  the heartbeat timeout (UMM_HEARTBEAT_TIMEOUT, here 10 s) instead of waiting
  forever, saying which process stopped sending heartbeats.
"""

import pathlib
import signal
import socket
import subprocess
import sys
import time

import pytest
from fault_procs import start, wait_for

WORKER = str(pathlib.Path(__file__).resolve().parent / "mp_worker.py")
REPO = pathlib.Path(__file__).resolve().parents[2]
HEARTBEAT = 10
MARGIN = 60  # a loaded 2-core machine: the survivor must still notice within this


def _env(runner_env, port, process_id, **extra):
  env = dict(runner_env, UMM_COORDINATOR=f"127.0.0.1:{port}", UMM_NUM_PROCESSES="2",
             UMM_PROCESS_ID=str(process_id), **extra)
  env.pop("JAX_COMPILATION_CACHE_DIR", None)
  return env


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def test_coordinator_port_taken_is_one_clear_error(runner_env):
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
    taken.bind(("0.0.0.0", 0))
    taken.listen()
    port = taken.getsockname()[1]
    done = subprocess.run([sys.executable, WORKER], env=_env(runner_env, port, 0, UMM_INIT_TIMEOUT="30"),
                          capture_output=True, text=True, timeout=600)
  assert done.returncode == 1, done.stderr[-3000:]
  want = (f"DistributedError: UMM_COORDINATOR=127.0.0.1:{port}: process 0 cannot serve the "
          f"coordinator, port {port} is already in use on this host")
  assert any(line.startswith(want) for line in done.stderr.splitlines()), done.stderr[-3000:]


def test_umm_train_reports_a_taken_port_in_one_line(runner_env, tmp_path):
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
    taken.bind(("0.0.0.0", 0))
    taken.listen()
    port = taken.getsockname()[1]
    done = subprocess.run([sys.executable, "-m", "unified_mm.cli.main", "train", "--config",
                           "experiments/lm.py:tiny", "--workdir", str(tmp_path / "run")],
                          env=_env(runner_env, port, 0, UMM_INIT_TIMEOUT="30"), cwd=REPO,
                          capture_output=True, text=True, timeout=600)
  assert done.returncode == 1, done.stderr[-3000:]
  assert "Traceback" not in done.stderr, done.stderr[-3000:]
  assert f"umm train: distributed setup failed: UMM_COORDINATOR=127.0.0.1:{port}" in done.stderr
  assert not (tmp_path / "run").exists()  # nothing written


# The coordinator stopped is the same fault seen from the other side: slow only.
@pytest.mark.parametrize("stopped", [1, pytest.param(0, marks=pytest.mark.slow)])
def test_a_stopped_process_fails_the_job_within_the_heartbeat_timeout(runner_env, tmp_path, stopped):
  port = _free_port()
  logs = [tmp_path / f"process_{i}.log" for i in range(2)]
  procs = [start([sys.executable, "-u", WORKER],
                 _env(runner_env, port, i, UMM_HEARTBEAT_TIMEOUT=str(HEARTBEAT)), logs[i])
           for i in range(2)]
  try:
    assert wait_for(lambda: "step 20" in logs[0].read_text(), procs[0], timeout=600), \
        logs[0].read_text()[-3000:]
    procs[stopped].send_signal(signal.SIGSTOP)
    t0 = time.monotonic()
    other = procs[1 - stopped]
    code = other.wait(timeout=HEARTBEAT + MARGIN)
    waited = time.monotonic() - t0
  finally:
    for p in procs:
      p.send_signal(signal.SIGCONT)
      p.kill()
      p.wait(timeout=60)
  assert code != 0 and waited < HEARTBEAT + MARGIN
  text = logs[1 - stopped].read_text()
  assert "Terminating process because the JAX distributed service detected fatal errors" in text
  if stopped == 1:  # the coordinator's own process names the silent one
    assert "unhealthy (stopped sending heartbeats):\n1" in text, text[-3000:]
