"""FLOPs of the renderer: every matmul of the DiT and its context encoder.

Counted as executed, 2 FLOPs per multiply-accumulate: patch embedding, the
time MLP and the adaLN projections (for the three token states of every
image, see dit.py), self-attention (q/k/v/o and the [T, T] scores and
weighted sum), cross-attention against the S context tokens, the MLP, the
output projection; in the context encoder the visual-token digit and plan
projections, the text projection (`text_source="ar"`), the context layers
and the co-located visual path. Embedding gathers, norms, softmax and other
elementwise work are excluded (as in MFU conventions), and so are the
optional plan refiner, layout plan and layout encoder (small CPU-preset
modules). Training is forward + backward = 3x forward, one forward per
example (flow matching draws one time per example).

The DiT paper's "Gflops" are multiply-accumulates (fvcore's convention):
its 23.01 / 80.71 / 118.64 for DiT-B/2, L/2, XL/2 at 256 px are
`forward_flops_per_image / 2` of those shapes (tests check within 2%).
"""

from __future__ import annotations

from collections.abc import Mapping

_TIME_FREQ_DIM = 256   # dit._TIME_FREQ_DIM
_STATES = 3            # CLEAN, NOISY, FUTURE: the time and adaLN rows per image


def context_length(model: Mapping) -> int:
  """S: [null | visual grid | layout objects | text] tokens the context holds."""
  s = 1
  if model.get("visual_codes", 0) or model.get("layout_len", 0):
    s += int(model["visual_grid"]) ** 2
  s += int(model.get("layout_len", 0))
  if model.get("text_source", "own") != "none":
    s += int(model.get("text_len", 0))
  return s


def _attention(queries: int, keys: int, d: int, *, q_proj: int, kv_proj: int) -> int:
  """Projections of `q_proj` query rows (q, o) and `kv_proj` key rows (k, v), plus
  scores and weighted sum over queries x keys."""
  return 2 * d * d * (2 * q_proj + 2 * kv_proj) + 2 * 2 * queries * keys * d


def context_flops(model: Mapping) -> int:
  """Forward FLOPs of the context encoder and the co-located visual path, per image."""
  d, s = int(model["embed_dim"]), context_length(model)
  v2 = int(model["visual_grid"]) ** 2
  grid = int(model["latent_size"]) // int(model["patch_size"])
  flops = 0
  if model.get("visual_codes", 0):
    flops += 2 * v2 * len(model.get("visual_levels", ())) * d
    if model.get("plan_channels", 0):
      plan_patch = int(model["latent_size"]) // int(model["visual_grid"])
      flops += 2 * v2 * plan_patch ** 2 * int(model["plan_channels"]) * d
  if model.get("text_source", "own") == "ar":
    flops += 2 * int(model["text_len"]) * int(model["ar_dim"]) * d
  layer = _attention(s, s, d, q_proj=s, kv_proj=s) + 2 * 2 * s * d * 4 * d
  flops += int(model.get("context_depth", 1)) * layer
  visual_add = model.get("visual_add", True) and (model.get("visual_codes", 0)
                                                  or model.get("layout_len", 0))
  if visual_add:
    fold = max(int(model["visual_grid"]) // grid, 1) ** 2
    flops += 2 * grid * grid * fold * d * d
  return flops


def dit_flops(model: Mapping) -> int:
  """Forward FLOPs of the DiT (velocity field) per image, given its context length."""
  d, depth = int(model["embed_dim"]), int(model["depth"])
  f = int(d * float(model.get("mlp_ratio", 4.0)))
  t = (int(model["latent_size"]) // int(model["patch_size"])) ** 2
  p = int(model["patch_size"]) ** 2 * int(model["latent_channels"])
  s = context_length(model)
  single = model.get("adaln", "block") == "single"
  block = _attention(t, t, d, q_proj=t, kv_proj=t) + 2 * 2 * t * d * f
  if model.get("cross_attention", True):
    block += _attention(t, s, d, q_proj=t, kv_proj=s)
  if not single:
    block += _STATES * 2 * d * 6 * d
  flops = depth * block
  flops += 2 * t * p * d + 2 * t * d * p                            # patch embed, output
  flops += _STATES * 2 * (_TIME_FREQ_DIM * d + d * d)               # time MLP
  flops += _STATES * 2 * d * 6 * d if single else _STATES * 2 * d * 2 * d  # shared / final adaLN
  return flops


def forward_flops_per_image(model: Mapping) -> int:
  """One velocity evaluation of one image, context encoding included."""
  return dit_flops(model) + context_flops(model)


def train_flops_per_step(model: Mapping, *, batch_size: int) -> int:
  """Forward + backward FLOPs of one optimiser step over `batch_size` images."""
  return 3 * batch_size * forward_flops_per_image(model)


def tokens_per_image(model: Mapping) -> int:
  """Latent tokens (patches) the DiT runs on per image."""
  return (int(model["latent_size"]) // int(model["patch_size"])) ** 2
