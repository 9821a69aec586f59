"""How `distributed.initialize` decides to join a run (pure: no JAX backend is touched)."""

import pytest

from unified_mm.parallel import distributed as D

SLURM_2 = {"SLURM_JOB_ID": "7", "SLURM_STEP_NODELIST": "node[1-2]", "SLURM_NTASKS": "2",
           "SLURM_PROCID": "1", "SLURM_LOCALID": "0"}


def test_single_process_skips_initialize():
  p = D.plan(env={})
  assert p.mode == "off"
  assert D.plan(env={**SLURM_2, "SLURM_NTASKS": "1"}).mode == "off"  # salloc shell, one task


def test_explicit_coordinator_from_env():
  p = D.plan(env={"UMM_COORDINATOR": "127.0.0.1:1234", "UMM_NUM_PROCESSES": "2",
                  "UMM_PROCESS_ID": "1", "UMM_CPU_DEVICES": "4", "UMM_HEARTBEAT_TIMEOUT": "30"})
  assert (p.mode, p.coordinator, p.num_processes, p.process_id) == ("explicit", "127.0.0.1:1234", 2, 1)
  assert (p.cpu_devices, p.heartbeat_timeout) == (4, 30)


def test_arguments_override_env():
  env = {"UMM_COORDINATOR": "a:1", "UMM_NUM_PROCESSES": "4", "UMM_PROCESS_ID": "3"}
  p = D.plan("b:2", 2, 0, env=env)
  assert (p.coordinator, p.num_processes, p.process_id) == ("b:2", 2, 0)


def test_one_explicit_process_is_a_single_process_run():
  assert D.plan("h:1", 1, 0, env={}).mode == "off"


@pytest.mark.parametrize("env,fragment", [
    ({"UMM_COORDINATOR": "h:1", "UMM_NUM_PROCESSES": "2"}, "UMM_PROCESS_ID"),
    ({"UMM_COORDINATOR": "h:1", "UMM_NUM_PROCESSES": "2", "UMM_PROCESS_ID": "2"}, "not in [0, 2)"),
    ({"UMM_COORDINATOR": "h:1", "UMM_NUM_PROCESSES": "two", "UMM_PROCESS_ID": "0"}, "expected an integer"),
    ({"UMM_DISTRIBUTED": "yes"}, "UMM_DISTRIBUTED"),
])
def test_bad_settings_name_the_variable(env, fragment):
  with pytest.raises(D.DistributedError, match=fragment.replace("[", r"\[").replace(")", r"\)")):
    D.plan(env=env)


def test_clusters_are_auto_detected():
  assert D.plan(env=SLURM_2).mode == "auto"
  gke = {"TPU_WORKER_HOSTNAMES": "h0,h1,h2,h3", "TPU_WORKER_ID": "2"}
  assert D.plan(env=gke).mode == "auto"
  assert D.plan(env={"TPU_WORKER_HOSTNAMES": "h0", "TPU_WORKER_ID": "0"}).mode == "off"
  assert D.plan(env={"UMM_DISTRIBUTED": "auto"}).mode == "auto"


def test_off_wins_over_detection():
  assert D.plan(env={**SLURM_2, "UMM_DISTRIBUTED": "off"}).mode == "off"
