"""The written plan drawn as a latent: the base a layout renderer's flow runs around.

A renderer that draws from the plan alone has no preview of visual tokens to
start from. In the shapes world, as in any layout with labelled boxes, most of
the image is fixed by the plan: which object covers a pixel, and where in its
box the pixel sits. So the plan is first decoded deterministically, at the
latent grid,

    plan latent = convs(canvas(labels, boxes))      trained by MSE to the true latent,

the canvas being the same per-(object, cell) features as the renderer's
context canvas (layout_context.py) at the latent's resolution. The flow then
runs on the residual from it (`plan_residual`), which is left with what the
boxes cannot say: placement finer than a bin, and the edges. With a bin per
pixel (64 bins at 64 px) the plan latent alone reads back nearly as well as
the flow's output (docs/quality.md).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from unified_mm.models.image_tokenizer.layers import ResBlock, conv
from unified_mm.models.renderer import layers
from unified_mm.models.renderer.layout_context import LayoutEncoder


class LayoutPlan(nnx.Module):

  def __init__(self, *, text_vocab: int, latent_size: int, latent_channels: int, width: int,
               depth: int, dtype=jnp.float32, param_dtype=jnp.float32, rngs: nnx.Rngs):
    kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    self.latent_size = latent_size
    self.label_embed = nnx.Embed(text_vocab, width, embedding_init=layers.partitioned(
        nnx.initializers.normal(1.0), "vocab", "embed"), **kw)
    self.layout = LayoutEncoder(width, **kw)
    self.blocks = nnx.List([ResBlock(width, norm_groups=8, **kw) for _ in range(depth)])
    self.out = conv(width, latent_channels, 3, out_axis=None, **kw)

  def __call__(self, layout_ids: jax.Array, layout_boxes: jax.Array,
               layout_mask: jax.Array) -> jax.Array:
    """layout_ids [B, O, W], layout_boxes [B, O, 4], layout_mask [B, O] -> [B, L, L, C]."""
    _, canvas = self.layout(self.label_embed(layout_ids), layout_ids > 0, layout_boxes,
                            layout_mask, self.latent_size)
    h = canvas.reshape(canvas.shape[0], self.latent_size, self.latent_size, -1)
    for block in self.blocks:
      h = block(h)
    return self.out(jax.nn.silu(h))
