"""`umm launch --target slurm` on a real one-node SLURM cluster on this machine.

Needs Debian's slurmctld, slurmd and slurm-client (`apt-get install -y
--no-install-recommends slurmctld slurmd slurm-client`) and root (SlurmUser);
skipped otherwise. The cluster lives in a scratch directory with its own
ports and is shut down after the test.
"""

import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import time

import pytest

from unified_mm.launch.ports import free_port
from unified_mm.launch.spec import REPO_ROOT

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not all(shutil.which(b) for b in ("slurmctld", "slurmd", "sbatch", "sinfo")),
                       reason="SLURM is not installed (apt-get install slurmctld slurmd slurm-client)"),
    pytest.mark.skipif(os.geteuid() != 0, reason="the scratch cluster runs its daemons as root"),
]

CONF = """\
ClusterName=umm-test
SlurmctldHost={host}
SlurmUser=root
SlurmdUser=root
AuthType=auth/none
CredType=cred/none
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
StateSaveLocation={dir}/state
SlurmdSpoolDir={dir}/spool
SlurmctldPidFile={dir}/slurmctld.pid
SlurmdPidFile={dir}/slurmd.pid
SlurmctldLogFile={dir}/slurmctld.log
SlurmdLogFile={dir}/slurmd.log
NodeName={host} CPUs={cpus} RealMemory=4000 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


@pytest.fixture(scope="module")
def slurm_env(tmp_path_factory, subprocess_env):
  d = tmp_path_factory.mktemp("slurm")
  (d / "state").mkdir()
  (d / "spool").mkdir()
  conf = d / "slurm.conf"
  conf.write_text(CONF.format(host=socket.gethostname(), ctld_port=free_port(),
                              d_port=free_port(), dir=d, cpus=os.cpu_count()))
  env = dict(subprocess_env(8), SLURM_CONF=str(conf))
  subprocess.run(["slurmctld", "-i"], env=env, check=True, timeout=30)
  subprocess.run(["slurmd"], env=env, check=True, timeout=30)
  try:
    deadline = time.monotonic() + 30
    while subprocess.run(["sinfo", "-h", "-o", "%T"], env=env, capture_output=True,
                         text=True).stdout.strip() != "idle":
      assert time.monotonic() < deadline, (d / "slurmctld.log").read_text()[-2000:]
      time.sleep(0.5)
    yield env
  finally:
    subprocess.run(["scontrol", "shutdown"], env=env, timeout=30)


def test_slurm_job_trains_on_two_tasks(slurm_env, tmp_path):
  workdir = tmp_path / "run"
  cmd = [sys.executable, "-m", "unified_mm.cli.main", "launch", "--target", "slurm",
         "--config", "experiments/lm.py:tiny", "--workdir", str(workdir),
         "--num-processes", "2", "--devices-per-process", "2", "--wait",
         "--venv", str(pathlib.Path(sys.executable).parents[1]), "--env", "JAX_PLATFORMS=cpu",
         "--timeout", "600", "--config.train.steps=2", "--config.train.log_every_steps=1",
         "--config.train.eval_every_steps=0", "--config.train.progress=false"]
  r = subprocess.run(cmd, cwd=REPO_ROOT, env=slurm_env, capture_output=True, text=True,
                     timeout=700)
  logs = {p.name: p.read_text() for p in (workdir / "logs").glob("*")}
  assert r.returncode == 0, r.stderr[-2000:] + "".join(v[-1500:] for v in logs.values())
  assert {"process_0.log", "process_1.log"} <= set(logs)
  # Both tasks joined one 4-device mesh through JAX's SLURM auto-detection.
  assert "over 4 devices (2 processes)" in logs["process_0.log"]
  rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  assert [row["step"] for row in rows] == [1, 2]
