"""`--target gke`: a JobSet manifest for TPU slices or a GPU node pool."""

from __future__ import annotations

import json
import os
import shlex

from unified_mm.launch import templates
from unified_mm.launch.spec import LaunchSpec, Rendered
from unified_mm.launch.tpu_pod import launch_dir
from unified_mm.plan.hardware import Topology, parse_topology

GPU_COORDINATOR_PORT = 8476
_ENV_INDENT = " " * 20


def _megascale_env(spec: LaunchSpec) -> str:
  """Multi-slice wiring: JAX reads MEGASCALE_* to number processes across slices."""
  if spec.num_slices <= 1:
    return ""
  entries = [
      ("MEGASCALE_COORDINATOR_ADDRESS", f'value: "{spec.name}-slice-0-0.{spec.name}"'),
      ("MEGASCALE_NUM_SLICES", f'value: "{spec.num_slices}"'),
      ("MEGASCALE_SLICE_ID", "valueFrom:\n" + _ENV_INDENT + "    fieldRef:\n" + _ENV_INDENT
       + "      fieldPath: metadata.annotations['jobset.sigs.k8s.io/job-index']"),
      ("MEGASCALE_PORT", 'value: "8080"'),
  ]
  return "\n".join(f"{_ENV_INDENT}- name: {k}\n{_ENV_INDENT}  {v}" for k, v in entries)


def _command(spec: LaunchSpec) -> str:
  exports = "".join(f"export {k}={shlex.quote(v)}; " for k, v in sorted(spec.env.items()))
  # JSON strings are valid YAML scalars, and need no escaping thought.
  return json.dumps(exports + spec.umm_shell(("python3", "-m", "unified_mm.cli.main")))


def _tpu_manifest(spec: LaunchSpec, topo: Topology) -> str:
  return templates.render(
      "gke_tpu.yaml", name=spec.name, max_restarts=0, num_slices=spec.num_slices,
      hosts_per_slice=topo.hosts_per_slice, gke_accelerator=topo.chip.gke_accelerator,
      tpu_topology=topo.shape_str, image=spec.image, command=_command(spec),
      megascale_env=_megascale_env(spec), chips_per_host=topo.chips_per_host)


def _gpu_manifest(spec: LaunchSpec, topo: Topology) -> str:
  if spec.num_slices != 1:
    raise ValueError("--num-slices is for TPU slices; GPU jobs scale with the GPU count")
  nodes = topo.hosts_per_slice
  return templates.render(
      "gke_gpu.yaml", name=spec.name, max_restarts=0, nodes=nodes,
      gke_accelerator=topo.chip.gke_accelerator, image=spec.image, command=_command(spec),
      port=GPU_COORDINATOR_PORT, gpus_per_node=topo.chips_per_host)


def render(spec: LaunchSpec) -> Rendered:
  topo = parse_topology(spec.accelerator_type)
  if topo.num_slices != 1:
    raise ValueError(f"--accelerator-type={spec.accelerator_type}: name one slice, "
                     "and use --num-slices for several")
  manifest = (_tpu_manifest if topo.is_tpu else _gpu_manifest)(spec, topo)
  path = os.path.join(launch_dir(spec), "jobset.yaml")
  hosts = topo.hosts_per_slice * spec.num_slices
  return Rendered("gke", files={path: manifest}, commands=[["kubectl", "apply", "-f", path]],
                  notes=[f"{spec.num_slices} x {topo.accelerator_type}: {hosts} pod(s), "
                         f"{topo.chips_per_host} {topo.chip.name} per pod"])
