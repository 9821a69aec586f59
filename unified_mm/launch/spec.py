"""What to launch (`LaunchSpec`) and what a target renders it into (`Rendered`)."""

from __future__ import annotations

import dataclasses
import os
import pathlib
import shlex
from collections.abc import Sequence

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]


@dataclasses.dataclass
class LaunchSpec:
  """One training job, independent of where it runs.

  The same `umm train --config ... --workdir ...` runs in every process; only
  the environment around it (how processes find each other) differs by target.
  """
  config: str
  workdir: str
  overrides: Sequence[str] = ()
  command: str = "train"                 # the umm subcommand every process runs
  num_processes: int = 2                 # local: processes; slurm: tasks in all
  devices_per_process: int | None = None  # fake CPU devices per process (UMM_CPU_DEVICES)
  env: dict[str, str] = dataclasses.field(default_factory=dict)  # extra exports
  name: str = "umm"                      # job / TPU / JobSet name
  # SLURM
  nodes: int = 1
  gpus_per_node: int = 0
  partition: str = ""
  time: str = ""
  venv: str = ""                         # activated before srun ("" = none)
  cwd: str = ""                          # directory the job runs in ("" = repo root)
  wait: bool = False                     # sbatch --wait: return when the job ends
  # TPU pods and GKE
  accelerator_type: str = "v5p-8"        # one slice, e.g. v5p-256 (or h100-8 on GKE)
  num_slices: int = 1
  zone: str = "us-east5-a"
  project: str = ""
  runtime_version: str = "v2-alpha-tpuv5"
  create: bool = False                   # also create the TPU (queued resource)
  image: str = "us-docker.pkg.dev/PROJECT/umm/umm:latest"
  source_dir: str = ""                   # tree copied to TPU workers ("" = repo root)

  def umm_argv(self, umm: Sequence[str] = ("umm",)) -> list[str]:
    """The command every process runs."""
    return [*umm, self.command, "--config", self.config, "--workdir", self.workdir,
            *[o if o.startswith("--") else f"--config.{o}" for o in self.overrides]]

  def umm_shell(self, umm: Sequence[str] = ("umm",)) -> str:
    return shlex.join(self.umm_argv(umm))

  @property
  def run_dir(self) -> str:
    return self.cwd or str(REPO_ROOT)

  @property
  def source(self) -> str:
    return self.source_dir or str(REPO_ROOT)


@dataclasses.dataclass
class Rendered:
  """A job ready to run: files to write first, then commands in order.

  `commands` are argv lists; `describe()` is the dry run's text, which is
  also what golden tests compare.
  """
  target: str
  files: dict[str, str] = dataclasses.field(default_factory=dict)   # path -> content
  commands: list[list[str]] = dataclasses.field(default_factory=list)
  envs: list[dict[str, str]] = dataclasses.field(default_factory=list)  # per command, extra env
  notes: list[str] = dataclasses.field(default_factory=list)

  def describe(self) -> str:
    lines = [f"# umm launch --target {self.target} (dry run)"]
    lines += [f"# {n}" for n in self.notes]
    for path, content in self.files.items():
      lines += [f"# --- file: {path}", content.rstrip("\n"), "# --- end of file"]
    for i, argv in enumerate(self.commands):
      env = self.envs[i] if i < len(self.envs) else {}
      prefix = " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(env.items()))
      lines.append((prefix + " " if prefix else "") + shlex.join(argv))
    return "\n".join(lines) + "\n"

  def write_files(self) -> None:
    for path, content in self.files.items():
      os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
      with open(path, "w") as f:
        f.write(content)
      if content.startswith("#!"):
        os.chmod(path, 0o755)
