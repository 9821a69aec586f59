"""`umm launch`: run `umm train` as a multi-process job (local, SLURM, TPU pod, GKE).

  umm launch --config experiments/lm.py:tiny --workdir /tmp/run --target local \\
      --num-processes 2 --devices-per-process 4
  umm launch --config experiments/pods.py:chameleon_7b@v5p-256 --workdir gs://b/run \\
      --target tpu-pod --name my-tpu --zone us-east5-a --dry-run

`--dry-run` prints exactly what would be written and executed.
"""

from __future__ import annotations

import sys

from unified_mm.config.loading import ConfigError, load_config

HELP = "Launch `umm train` on several processes: --target {local,slurm,tpu-pod,gke}."


def add_arguments(parser) -> None:
  parser.add_argument("--config", required=True, help="experiments/<file>.py[:<arg>]")
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--target", required=True, choices=("local", "slurm", "tpu-pod", "gke"))
  parser.add_argument("--dry-run", action="store_true", help="print, do not run")
  parser.add_argument("--command", default="train", help="umm subcommand each process runs")
  parser.add_argument("--name", default="umm", help="job / TPU / JobSet name")
  parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                      help="extra environment for every process (repeatable)")
  parser.add_argument("--timeout", type=float, default=None, help="seconds before giving up")
  g = parser.add_argument_group("local and SLURM")
  g.add_argument("--num-processes", type=int, default=2)
  g.add_argument("--devices-per-process", type=int, default=None,
                 help="fake CPU devices per process (UMM_CPU_DEVICES)")
  g.add_argument("--nodes", type=int, default=1)
  g.add_argument("--gpus-per-node", type=int, default=0)
  g.add_argument("--partition", default="")
  g.add_argument("--time", default="", help="SLURM time limit, e.g. 04:00:00")
  g.add_argument("--venv", default="", help="virtualenv activated on SLURM nodes")
  g.add_argument("--cwd", default="", help="directory the job runs in (default: repo root)")
  g.add_argument("--wait", action="store_true", help="sbatch --wait")
  g = parser.add_argument_group("TPU pods and GKE")
  g.add_argument("--accelerator-type", default="",
                 help="one slice, e.g. v5p-256, v5e-16, v6e-256, h100-16 (default: config.topology)")
  g.add_argument("--num-slices", type=int, default=None, help="default: config.mesh.dcn_data")
  g.add_argument("--zone", default="us-east5-a")
  g.add_argument("--project", default="")
  g.add_argument("--runtime-version", default="v2-alpha-tpuv5")
  g.add_argument("--create", action="store_true", help="also create the TPU / queued resource")
  g.add_argument("--image", default="us-docker.pkg.dev/PROJECT/umm/umm:latest")
  g.add_argument("--source-dir", default="", help="tree copied to TPU workers (default: repo)")


def _env(pairs) -> dict[str, str]:
  out = {}
  for pair in pairs:
    key, sep, value = pair.partition("=")
    if not sep or not key:
      raise ConfigError(f"--env {pair}: expected KEY=VALUE")
    out[key] = value
  return out


def _slices_and_type(args, config) -> tuple[int, str]:
  """Multi-slice jobs need mesh.dcn_data == number of slices: take it from the config."""
  dcn = int(config.mesh.get("dcn_data", 1) or 1)
  slices = args.num_slices if args.num_slices is not None else dcn
  if slices != dcn:
    raise ConfigError(f"--num-slices={slices} but mesh.dcn_data={dcn}: pass "
                      f"--config.mesh.dcn_data={slices} (the DCN axis spans the slices)")
  accel = args.accelerator_type or str(config.get("topology", "") or "")
  if accel.split("x", 1)[0].isdigit():  # a pod preset's "2xv5p-256": one slice's name
    accel = accel.split("x", 1)[1]
  return slices, accel or "v5p-8"


def build_spec(args):
  from unified_mm.launch.spec import LaunchSpec

  config = load_config(args.config, args.overrides)  # fail here, not on 256 hosts
  slices, accel = _slices_and_type(args, config)
  return LaunchSpec(
      config=args.config, workdir=args.workdir, overrides=list(args.overrides),
      command=args.command, num_processes=args.num_processes,
      devices_per_process=args.devices_per_process, env=_env(args.env), name=args.name,
      nodes=args.nodes, gpus_per_node=args.gpus_per_node, partition=args.partition,
      time=args.time, venv=args.venv, cwd=args.cwd, wait=args.wait,
      accelerator_type=accel, num_slices=slices, zone=args.zone, project=args.project,
      runtime_version=args.runtime_version, create=args.create, image=args.image,
      source_dir=args.source_dir)


def run(args) -> int:
  from unified_mm.launch import targets

  spec = build_spec(args)
  try:
    job = targets.render(args.target, spec)
  except ValueError as e:
    print(f"umm launch: {e}", file=sys.stderr)
    return 2
  if args.dry_run:
    sys.stdout.write(job.describe())
    return 0
  return targets.execute(job, spec, timeout=args.timeout)
