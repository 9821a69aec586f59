"""Pod presets: an `experiments/lm.py` model (or an `experiments/images.py`
tokenizer or renderer) on a named topology, with its mesh.

    umm plan   --config experiments/pods.py:chameleon_7b@v5p-256
    umm plan   --config experiments/pods.py:renderer_dit_xl2@v5p-64
    umm launch --config experiments/pods.py:chameleon_7b@v5p-256 --target tpu-pod \\
        --name my-v5p --zone us-east5-a --workdir gs://my-bucket/runs/chameleon_7b
    umm launch --config experiments/pods.py:llamagen_gpt_xl@2xv5p-256 --target gke ...
    umm launch --config experiments/pods.py:llamagen_gpt_3b@h100-16 --target slurm \\
        --nodes 2 --gpus-per-node 8 ...

`get_config("<model>@<topology>")`: <model> is any lm.py variant; <topology>
one slice (`v5p-256`, `v5e-16`, `v6e-256`, `v4-8`), several slices over DCN
(`2xv5p-256`: mesh.dcn_data=2, the data axis spans slices), or GPU hosts of 8
(`h100-16`: FSDP inside a host over NVLink, data parallel across hosts).
The delta on the model preset is small: the mesh, `topology` (read by
`umm plan` and `umm launch`), a scanned layer stack (`model.scan_layers`:
the AOT compile no longer grows with depth), full remat for models of 1B
parameters and up, and a global batch of at least one row per device. Expected: `umm plan`
reports that each preset below fits (see docs/launch.md for the figures).

The image stages have their own meshes (`image_pod_mesh`): the tokenizer is
data-parallel (its conv weights, 72M, are replicated: no axis of theirs is
FSDP-sharded by the rules), the renderer shards its weights FSDP over 8 chips
(DiT-XL/2's 675M f32 params + AdamW + EMA are 13.5 GB) and is data-parallel
beyond. `renderer_dit_xl2@v5p-64`, `renderer_pixart_xl2@v5p-64`,
`tokenizer_vq16@v5p-64` are the documented ones (32 chips; global batch 256
images for the renderers, 128 for the tokenizer, as the papers trained).
"""

from __future__ import annotations

import os

import ml_collections

from unified_mm.config.base import mesh_config
from unified_mm.config.loading import load_config
from unified_mm.plan.hardware import parse_topology

_LM = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lm.py")
_IMAGES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "images.py")
IMAGE_MODELS = ("tokenizer_vq16", "renderer_dit_b2", "renderer_dit_l2", "renderer_dit_xl2",
                "renderer_pixart_xl2")

# Models whose activations need full remat to fit HBM at their preset batch.
_REMAT_FULL = ("llamagen_gpt_xl", "llamagen_gpt_xxl", "llamagen_gpt_3b", "chameleon_7b",
               "chameleon_34b", "unified_70b")


def pod_mesh(topology: str) -> ml_collections.ConfigDict:
  """FSDP over the fast interconnect (a slice's ICI, a host's NVLink), data beyond it."""
  topo = parse_topology(topology)
  if topo.is_tpu:
    return mesh_config(data=1, fsdp=-1, tensor=1, dcn_data=topo.num_slices)
  return mesh_config(data=-1, fsdp=topo.chips_per_host, tensor=1)


def image_pod_mesh(stage: str, topology: str) -> ml_collections.ConfigDict:
  """Tokenizer: data-parallel. Renderer: FSDP over (at most) 8 chips, data beyond."""
  topo = parse_topology(topology)
  dcn = topo.num_slices
  if stage == "tokenizer":
    return mesh_config(data=-1, fsdp=1, tensor=1, dcn_data=dcn)
  per_slice = topo.num_devices // dcn
  return mesh_config(data=-1, fsdp=min(8, per_slice), tensor=1, dcn_data=dcn)


def image_pod_config(model: str, topology: str) -> ml_collections.ConfigDict:
  config = load_config(f"{_IMAGES}:{model}")
  config.unlock()
  topo = parse_topology(topology)
  config.mesh = image_pod_mesh(config.stage, topology)
  config.topology = topology
  config.train.batch_size = max(int(config.train.batch_size), topo.num_devices)
  return config


def pod_config(model: str, topology: str) -> ml_collections.ConfigDict:
  if model in IMAGE_MODELS:
    return image_pod_config(model, topology)
  config = load_config(f"{_LM}:{model}")
  config.unlock()
  topo = parse_topology(topology)
  config.mesh = pod_mesh(topology)
  config.topology = topology
  config.model.scan_layers = True
  if model in _REMAT_FULL:
    config.model.remat = "full"
  config.train.batch_size = max(int(config.train.batch_size), topo.num_devices)
  return config


def get_config(arg: str = "chameleon_7b@v5p-256") -> ml_collections.ConfigDict:
  model, sep, topology = arg.partition("@")
  if not sep:
    raise KeyError(f"{arg}: expected <lm.py or images.py variant>@<topology>, "
                   "e.g. chameleon_7b@v5p-256")
  return pod_config(model, topology)
