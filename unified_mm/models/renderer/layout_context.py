"""The written plan as renderer context: one token per object, and a canvas.

The transformer's plan lists objects as (label, box). The renderer reads it
two ways:
- object tokens, appended to the cross-attention context: the label's words
  (the renderer's own text embedding, averaged) plus a projection of the box;
- a canvas on the visual-token grid: each cell gets, for every object whose
  box overlaps it, the object's embedding plus a projection of where the cell
  sits inside the box (its centre relative to the box corners, the cell's size
  relative to the box) weighted by the overlap, through a narrow nonlinearity
  (inside or outside a star's arm depends on both the kind and the offset). Added to the visual tokens, it
  reaches each latent token through the co-located path (`visual_add`): "draw
  the top-left part of a large red star here" is local, so a small renderer
  learns it in a CPU-sized budget, as it does for the codes.

Dimension letters: B batch, O objects, W label tokens, C grid cells, D width.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from unified_mm.models.renderer import layers


def cell_features(boxes: jax.Array, grid: int) -> tuple[jax.Array, jax.Array]:
  """boxes [B, O, 4] (x0, y0, x1, y1 in [0, 1]) -> (features [B, O, C, 6], overlap [B, O, C]).

  Features: the cell centre in box coordinates (0..1 inside), the cell side
  over the box side, both per axis, and the box's own width and height.
  """
  centres = (jnp.arange(grid, dtype=jnp.float32) + 0.5) / grid  # [G]
  cy, cx = jnp.meshgrid(centres, centres, indexing="ij")
  cx, cy = cx.reshape(-1), cy.reshape(-1)  # [C], row-major like the visual tokens
  x0, y0, x1, y1 = (boxes[..., i, None] for i in range(4))  # [B, O, 1]
  w = jnp.maximum(x1 - x0, 1e-3)
  h = jnp.maximum(y1 - y0, 1e-3)
  half = 0.5 / grid
  overlap_x = jnp.clip(jnp.minimum(cx + half, x1) - jnp.maximum(cx - half, x0), 0.0) * grid
  overlap_y = jnp.clip(jnp.minimum(cy + half, y1) - jnp.maximum(cy - half, y0), 0.0) * grid
  ones = jnp.ones_like(cx)
  feats = jnp.stack([(cx - x0) / w, (cy - y0) / h, (1 / grid) / w * ones, (1 / grid) / h * ones,
                     w * ones, h * ones], axis=-1)  # [B, O, C, 6]
  return feats, overlap_x * overlap_y


class LayoutEncoder(nnx.Module):
  """`cell_dim`: width of the per-(object, cell) features. Every object meets
  every cell, so this product is kept narrow; the sum over objects is then
  projected to the model width."""

  def __init__(self, embed_dim: int, *, cell_dim: int = 64, dtype, param_dtype, rngs: nnx.Rngs):
    kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)

    def lin(i, o, init=nnx.initializers.lecun_normal(), names=(None, "embed")):
      return nnx.Linear(i, o, kernel_init=layers.partitioned(init, *names),
                        bias_init=layers.partitioned(nnx.initializers.zeros, names[1]), **kw)

    self.box_embed = lin(4, embed_dim, nnx.initializers.normal(1.0))
    self.object_mlp = layers.Mlp(embed_dim, 2 * embed_dim, **kw)
    self.object_to_cell = lin(embed_dim, cell_dim, names=("embed", None))
    self.cell_embed = lin(6, cell_dim, nnx.initializers.normal(1.0), names=(None, None))
    self.cell_out = lin(cell_dim, embed_dim, names=(None, "embed"))

  def __call__(self, label_embeddings: jax.Array, label_mask: jax.Array, boxes: jax.Array,
               object_mask: jax.Array, grid: int) -> tuple[jax.Array, jax.Array]:
    """label_embeddings [B, O, W, D], label_mask [B, O, W], boxes [B, O, 4],
    object_mask [B, O] -> (object tokens [B, O, D], canvas [B, G * G, D])."""
    m = label_mask.astype(label_embeddings.dtype)[..., None]
    label = (label_embeddings * m).sum(axis=2) / jnp.maximum(m.sum(axis=2), 1.0)  # [B, O, D]
    obj = label + self.box_embed(boxes.astype(label.dtype) * 2.0 - 1.0)
    obj = obj + self.object_mlp(obj)  # [B, O, D]
    feats, overlap = cell_features(boxes.astype(jnp.float32), grid)
    per_cell = jax.nn.gelu(self.object_to_cell(obj)[:, :, None]
                           + self.cell_embed(feats.astype(obj.dtype)))  # [B, O, C, E]
    weight = (overlap * object_mask[..., None].astype(overlap.dtype)).astype(obj.dtype)  # [B, O, C]
    canvas = (self.cell_out(jnp.einsum("boc,boce->bce", weight, per_cell))
              + jnp.einsum("boc,bod->bcd", weight, obj))  # [B, C, D]
    return obj, canvas
