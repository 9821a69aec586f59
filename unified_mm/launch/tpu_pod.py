"""`--target tpu-pod`: gcloud commands for one TPU slice or several (multi-slice)."""

from __future__ import annotations

import os
import shlex

from unified_mm.launch import templates
from unified_mm.launch.spec import LaunchSpec, Rendered
from unified_mm.parallel import distributed
from unified_mm.plan.hardware import parse_topology

REMOTE_DIR = "~/unified_mm"


def launch_dir(spec: LaunchSpec) -> str:
  """Where rendered scripts go: the workdir when it is local, else /tmp (gs:// workdirs)."""
  if "://" in spec.workdir:
    return os.path.join("/tmp", f"umm-launch-{spec.name}")
  return os.path.join(spec.workdir, "launch")


def remote_commands(spec: LaunchSpec) -> tuple[str, str]:
  """(install, run) as shell text for every worker."""
  install = (f"mkdir -p {REMOTE_DIR} && tar -xzf ~/umm_src.tgz -C {REMOTE_DIR} && "
             f"cd {REMOTE_DIR} && python3 -m pip install -q -e '.[tpu]'")
  env = {distributed.ENV_MODE: "auto", **spec.env}
  exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(env.items()))
  run = (f"cd {REMOTE_DIR} && {exports} "
         f"{spec.umm_shell(('python3', '-m', 'unified_mm.cli.main'))}")
  return install, run


def render(spec: LaunchSpec) -> Rendered:
  topo = parse_topology(spec.accelerator_type)
  if not topo.is_tpu or topo.num_slices != 1:
    raise ValueError(f"--accelerator-type={spec.accelerator_type}: expected one TPU slice "
                     "such as v5p-256 (use --num-slices for several)")
  install, run = remote_commands(spec)
  multi = spec.num_slices > 1
  values = dict(
      name=spec.name, zone=spec.zone, accelerator_type=topo.accelerator_type,
      runtime_version=spec.runtime_version, create=int(spec.create),
      project_flag=f"--project={spec.project}" if spec.project else "",
      bundle=f"/tmp/{spec.name}-src.tgz", source=shlex.quote(spec.source),
      install_command=shlex.quote(install), run_command=shlex.quote(run),
      umm_command=spec.command, hosts=topo.hosts_per_slice * spec.num_slices)
  if multi:
    values.update(num_slices=spec.num_slices, last_slice=spec.num_slices - 1)
  name = "tpu_multislice.sh" if multi else "tpu_pod.sh"
  path = os.path.join(launch_dir(spec), name)
  return Rendered("tpu-pod", files={path: templates.render(name, **values)},
                  commands=[["bash", path]],
                  notes=[f"{spec.num_slices} x {topo.accelerator_type} "
                         f"({topo.shape_str}, {topo.hosts_per_slice} host(s) per slice)"])
