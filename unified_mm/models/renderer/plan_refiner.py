"""A learned correction of the plan latent from the visual tokens.

The plan latent is the tokenizer's encoding of its preview decode of the
tokens. Encoding a decoded image compounds two reconstructions' errors: with
16 x 16 codes the preview image keeps 96.6% of scenes' (kind, colour)
multisets but the plan, decoded again, only ~85% (docs/renderer.md). The
refiner reads the tokens (own embedding + the FSQ digits) and the plan at the
latent grid and adds a correction,

    plan' = plan + refiner(codes, plan)     trained by MSE to the true latent,

so the renderer's flow starts from, and its residual is measured against, a
plan close to the latent the tokens came from. The last conv starts at zero,
so an untrained refiner is the identity (plan' = plan).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from unified_mm.models.image_tokenizer.fsq import FSQ
from unified_mm.models.image_tokenizer.layers import ResBlock, conv
from unified_mm.models.renderer import layers


class PlanRefiner(nnx.Module):

  def __init__(self, *, visual_codes: int, visual_grid: int, visual_levels: tuple[int, ...],
               latent_size: int, latent_channels: int, width: int, depth: int,
               dtype=jnp.float32, param_dtype=jnp.float32, rngs: nnx.Rngs):
    if latent_size % visual_grid:
      raise ValueError(f"plan refiner: latent_size={latent_size} is not a multiple of "
                       f"visual_grid={visual_grid}")
    kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    self.upsample = latent_size // visual_grid
    self.levels = tuple(int(l) for l in visual_levels)
    self.embed = nnx.Embed(visual_codes, width, embedding_init=layers.partitioned(
        nnx.initializers.normal(1.0), "vocab", "embed"), **kw)
    self.stem = conv(latent_channels + len(self.levels), width, 3, **kw)
    self.blocks = nnx.List([ResBlock(width, norm_groups=8, **kw) for _ in range(depth)])
    self.out = conv(width, latent_channels, 3, zero_init=True, out_axis=None, **kw)

  def __call__(self, codes: jax.Array, plan: jax.Array) -> jax.Array:
    """codes [B, h, w] int, plan [B, Hh, Ww, C] -> refined plan [B, Hh, Ww, C]."""
    # Each token covers upsample x upsample latent positions: read it at each of them.
    codes = jnp.repeat(jnp.repeat(codes, self.upsample, axis=1), self.upsample, axis=2)
    h = self.embed(codes)  # [B, Hh, Ww, W]
    features = [plan.astype(h.dtype)]
    if self.levels:
      features.append(FSQ(self.levels).unit_digits(codes))
    h = h + self.stem(jnp.concatenate([f.astype(h.dtype) for f in features], axis=-1))
    for block in self.blocks:
      h = block(h)
    return plan + self.out(jax.nn.silu(h)).astype(plan.dtype)
