"""`umm launch --dry-run` output, compared with golden files per target.

Regenerate after an intended change with UMM_UPDATE_GOLDEN=1 and review the diff.
"""

import os
import pathlib
import subprocess

import pytest

from unified_mm.cli.main import main
from unified_mm.launch.spec import REPO_ROOT

GOLDEN = pathlib.Path(__file__).parent / "golden"

CASES = {
    "slurm_gpu": [
        "--config", "experiments/pods.py:llamagen_gpt_b@h100-16", "--workdir", "/runs/gpt_b",
        "--target", "slurm", "--nodes", "2", "--gpus-per-node", "8", "--partition", "gpu",
        "--time", "04:00:00", "--venv", "/opt/umm/.venv", "--cwd", "/opt/umm", "--name", "gpt-b",
        "--config.train.steps=1000"],
    "slurm_cpu": [
        "--config", "experiments/lm.py:tiny", "--workdir", "/runs/tiny", "--target", "slurm",
        "--num-processes", "2", "--devices-per-process", "4", "--cwd", "/opt/umm",
        "--env", "JAX_PLATFORMS=cpu"],
    "tpu_pod": [
        "--config", "experiments/pods.py:chameleon_7b@v5p-256", "--workdir", "gs://bucket/c7b",
        "--target", "tpu-pod", "--name", "umm-v5p", "--zone", "us-east5-a",
        "--project", "my-project", "--source-dir", "/src/unified_mm"],
    "tpu_multislice": [
        "--config", "experiments/pods.py:llamagen_gpt_xl@2xv5p-256", "--workdir", "gs://bucket/xl",
        "--target", "tpu-pod", "--name", "umm-ms", "--zone", "us-east5-a",
        "--project", "my-project", "--source-dir", "/src/unified_mm", "--create"],
    "gke_tpu_multislice": [
        "--config", "experiments/pods.py:llamagen_gpt_xl@2xv5e-256", "--workdir", "gs://bucket/xl",
        "--target", "gke", "--name", "umm-xl", "--image", "us-docker.pkg.dev/p/umm/umm:1"],
    "gke_gpu": [
        "--config", "experiments/pods.py:llamagen_gpt_3b@h100-16", "--workdir", "gs://bucket/3b",
        "--target", "gke", "--name", "umm-3b", "--image", "us-docker.pkg.dev/p/umm/umm:1"],
}


def _dry_run(args, capsys, monkeypatch) -> str:
  monkeypatch.chdir(REPO_ROOT)
  assert main(["launch", *args, "--dry-run"]) == 0
  return capsys.readouterr().out.replace(str(REPO_ROOT), "<REPO>")


@pytest.mark.parametrize("case", sorted(CASES))
def test_launch_dry_run_matches_golden(case, capsys, monkeypatch):
  out = _dry_run(CASES[case], capsys, monkeypatch)
  path = GOLDEN / f"{case}.txt"
  if os.environ.get("UMM_UPDATE_GOLDEN"):
    path.write_text(out)
  assert path.exists(), f"no golden file {path}: run with UMM_UPDATE_GOLDEN=1"
  assert out == path.read_text()


def _file_body(out: str) -> str:
  start = out.index("# --- file: ")
  body = out[out.index("\n", start) + 1:]
  return body[:body.index("# --- end of file")]


@pytest.mark.parametrize("case", ["slurm_gpu", "tpu_pod", "tpu_multislice"])
def test_rendered_scripts_are_valid_bash(case, capsys, monkeypatch, tmp_path):
  script = tmp_path / "job.sh"
  script.write_text(_file_body(_dry_run(CASES[case], capsys, monkeypatch)))
  result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
  assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("case", ["gke_tpu_multislice", "gke_gpu"])
def test_rendered_jobset_is_valid_yaml(case, capsys, monkeypatch):
  yaml = pytest.importorskip("yaml")
  doc = yaml.safe_load(_file_body(_dry_run(CASES[case], capsys, monkeypatch)))
  assert doc["kind"] == "JobSet"
  job = doc["spec"]["replicatedJobs"][0]
  container = job["template"]["spec"]["template"]["spec"]["containers"][0]
  env = {e["name"]: e for e in container["env"]}
  if case == "gke_tpu_multislice":  # 2 slices of v5e-256: 64 hosts of 4 chips each
    assert job["replicas"] == 2 and job["template"]["spec"]["parallelism"] == 64
    assert container["resources"]["limits"]["google.com/tpu"] == 4
    assert env["MEGASCALE_NUM_SLICES"]["value"] == "2"
    assert "mesh" not in container["command"][2]  # dcn_data comes from the preset itself
  else:  # 16 H100 = 2 nodes of 8
    assert job["template"]["spec"]["parallelism"] == 2
    assert env["UMM_NUM_PROCESSES"]["value"] == "2"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 8


def test_num_slices_must_match_the_dcn_axis(capsys, monkeypatch):
  args = [*CASES["tpu_pod"], "--num-slices", "2"]
  monkeypatch.chdir(REPO_ROOT)
  assert main(["launch", *args, "--dry-run"]) == 2
  assert "mesh.dcn_data=1" in capsys.readouterr().err


def test_local_dry_run_gives_each_process_its_rank(capsys, monkeypatch):
  out = _dry_run(["--config", "experiments/lm.py:tiny", "--workdir", "/tmp/w", "--target", "local",
                  "--num-processes", "3", "--devices-per-process", "2"], capsys, monkeypatch)
  commands = [line for line in out.splitlines() if not line.startswith("#")]
  assert len(commands) == 3
  ports = {c.split("UMM_COORDINATOR=127.0.0.1:")[1].split()[0] for c in commands}
  assert len(ports) == 1  # one coordinator for all
  for i, c in enumerate(commands):
    assert f"UMM_PROCESS_ID={i} " in c and "UMM_NUM_PROCESSES=3 " in c
    assert "UMM_CPU_DEVICES=2 " in c and c.endswith("--workdir /tmp/w")
