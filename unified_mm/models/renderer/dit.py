"""DiT over patchified latents: adaLN-zero time conditioning, self-attention
over latent tokens, cross-attention to a conditioning context.

Every latent token carries one of three states (see chunked.py):

  CLEAN   (0)  already rendered; its input is x0 and its time is 0
  NOISY   (1)  being rendered; its input is x_t and its time is the step's t
  FUTURE  (2)  not rendered yet; its input is pure noise and its time is 1,
               and no token attends to it (so a stripe never depends on the
               noise that later stripes will start from)

so the adaLN modulation is per token. Because there are only three distinct
times per example, the modulation is computed for the three and gathered per
token: the per-token cost is a gather, not a [D, 6D] matmul.

Two shape knobs give the published variants (experiments/images.py):
`cross_attention=False` drops the blocks' cross-attention (DiT's own
class-conditional blocks; the context then reaches the tokens only through
the renderer's co-located `spatial` path), and `adaln="single"` is
PixArt-α's adaLN-single: one shared [D, 6D] projection of the time embedding
for all blocks plus a learned [6, D] table per block (and a [2, D] table in
place of the final layer's projection), instead of a [D, 6D] projection in
every block. Defaults (cross-attention, per-block adaLN) are the shapes
world's renderer, unchanged.

`scan_layers=True` holds the blocks as one stacked module (params
`layers.…` [depth, …] with a `layers` logical axis) applied with `jax.lax.scan`
(see models/layer_stack.py); False keeps the `blocks.<i>.…` list. `remat`
wraps each block (inside the scan when scanned).

Dimension letters: B batch, T latent tokens, S context tokens, D width,
P = patch * patch * channels (one patch's latent values).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from unified_mm.models.layer_stack import REMAT_POLICIES, check_remat, create_stack, scan_stack
from unified_mm.models.renderer import layers, positions
from unified_mm.parallel.sharding import constrain

CLEAN, NOISY, FUTURE = 0, 1, 2
_TIME_FREQ_DIM = 256
ADALN_MODES = ("block", "single")


def patchify(x: jax.Array, patch: int) -> jax.Array:
  """[B, Hh, Ww, C] -> [B, T, P] with T = (Hh/p)(Ww/p), row-major over patches."""
  b, hh, ww, c = x.shape
  x = x.reshape(b, hh // patch, patch, ww // patch, patch, c)
  x = x.transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(b, (hh // patch) * (ww // patch), patch * patch * c)


def unpatchify(x: jax.Array, patch: int, rows: int, cols: int) -> jax.Array:
  """[B, T, P] -> [B, rows * p, cols * p, C]."""
  b, _, pp = x.shape
  c = pp // (patch * patch)
  x = x.reshape(b, rows, cols, patch, patch, c).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(b, rows * patch, cols * patch, c)


def per_token(table: jax.Array, token_state: jax.Array) -> jax.Array:
  """table [B, 3, X] (one row per state), token_state [B, T] -> [B, T, X]."""
  return jnp.take_along_axis(table, token_state[..., None].astype(jnp.int32), axis=1)


def modulate(x: jax.Array, shift: jax.Array, scale: jax.Array) -> jax.Array:
  return x * (1 + scale) + shift


def _ada_linear(embed_dim: int, width: int, kw) -> nnx.Linear:
  """adaLN-zero: the modulation starts at 0, so every block starts as the identity."""
  return nnx.Linear(
      embed_dim, width,
      kernel_init=layers.partitioned(nnx.initializers.zeros, "embed", "mlp"),
      bias_init=layers.partitioned(nnx.initializers.zeros, "mlp"), **kw)


class DiTBlock(nnx.Module):
  """adaLN-zero self-attention and MLP, plain pre-LN cross-attention between
  (without it when `cross_attention=False`)."""

  def __init__(self, embed_dim: int, num_heads: int, mlp_dim: int, *,
               cross_attention: bool = True, adaln: str = "block", dtype=jnp.float32,
               param_dtype=jnp.float32, rngs: nnx.Rngs):
    kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    self.norm1 = layers.layer_norm(embed_dim, affine=False, **kw)
    self.self_attn = layers.Attention(embed_dim, num_heads, **kw)
    self.cross_attention = cross_attention
    if cross_attention:
      self.norm_cross = layers.layer_norm(embed_dim, affine=True, **kw)
      self.cross_attn = layers.Attention(embed_dim, num_heads, **kw)
    self.norm2 = layers.layer_norm(embed_dim, affine=False, **kw)
    self.mlp = layers.Mlp(embed_dim, mlp_dim, **kw)
    self.adaln = adaln
    if adaln == "single":  # PixArt-α: this block's learned offset of the shared modulation
      self.scale_shift = nnx.Param(jnp.zeros((6, embed_dim), param_dtype),
                                   out_sharding=(None, "embed"))
    else:
      self.ada = _ada_linear(embed_dim, 6 * embed_dim, kw)

  def __call__(self, x: jax.Array, cond: jax.Array, token_state: jax.Array,
               context: jax.Array, context_mask: jax.Array) -> jax.Array:
    """x [B, T, D], cond [B, 3, D] (per state; adaln="single": the shared
    modulation [B, 3, 6D]), token_state [B, T] -> [B, T, D]."""
    if self.adaln == "single":
      table = cond + self.scale_shift[...].reshape(-1).astype(cond.dtype)  # [B, 3, 6D]
    else:
      table = self.ada(jax.nn.silu(cond))  # [B, 3, 6D]
    mod = per_token(table, token_state)  # [B, T, 6D]
    shift1, scale1, gate1, shift2, scale2, gate2 = jnp.split(mod, 6, axis=-1)
    visible = token_state != FUTURE  # [B, T] keys; every row has its NOISY stripe
    x = x + gate1 * self.self_attn(modulate(self.norm1(x), shift1, scale1), None, visible)
    if self.cross_attention:
      x = x + self.cross_attn(self.norm_cross(x), context, context_mask)
    x = x + gate2 * self.mlp(modulate(self.norm2(x), shift2, scale2))
    return constrain(x, ("batch", "length", "embed"))


class DiT(nnx.Module):
  """Velocity field v(x_t, t | context) over a [B, Hh, Ww, C] latent."""

  def __init__(self, *, latent_size: int, latent_channels: int, patch_size: int,
               embed_dim: int, depth: int, num_heads: int, mlp_ratio: float = 4.0,
               cross_attention: bool = True, adaln: str = "block",
               scan_layers: bool = False, remat: str = "none", dtype=jnp.float32,
               param_dtype=jnp.float32, rngs: nnx.Rngs):
    if latent_size % patch_size:
      raise ValueError(f"latent_size={latent_size} is not a multiple of patch_size={patch_size}")
    if adaln not in ADALN_MODES:
      raise ValueError(f"adaln={adaln!r}: expected one of {ADALN_MODES}")
    check_remat(remat)
    self.adaln = adaln
    self.patch_size = patch_size
    self.scan_layers, self.remat = scan_layers, remat
    self.grid = latent_size // patch_size
    self.embed_dim = embed_dim
    kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    init = nnx.initializers.lecun_normal()
    p = patch_size * patch_size * latent_channels
    self.patch_embed = nnx.Linear(
        p, embed_dim, kernel_init=layers.partitioned(init, "patch", "embed"),
        bias_init=layers.partitioned(nnx.initializers.zeros, "embed"), **kw)
    self.time_in = nnx.Linear(
        _TIME_FREQ_DIM, embed_dim, kernel_init=layers.partitioned(init, None, "embed"),
        bias_init=layers.partitioned(nnx.initializers.zeros, "embed"), **kw)
    self.time_out = nnx.Linear(
        embed_dim, embed_dim, kernel_init=layers.partitioned(init, "mlp", "embed"),
        bias_init=layers.partitioned(nnx.initializers.zeros, "embed"), **kw)
    mlp_dim = int(embed_dim * mlp_ratio)
    make_block = lambda r: DiTBlock(embed_dim, num_heads, mlp_dim,
                                    cross_attention=cross_attention, adaln=adaln, dtype=dtype,
                                    param_dtype=param_dtype, rngs=r)
    if adaln == "single":  # PixArt-α's t_block, shared by every block
      self.ada_shared = _ada_linear(embed_dim, 6 * embed_dim, kw)
    if scan_layers:
      self.layers = create_stack(make_block, depth, rngs)
    else:
      self.blocks = nnx.List([make_block(rngs) for _ in range(depth)])
    self.norm_out = layers.layer_norm(embed_dim, affine=False, **kw)
    if adaln == "single":  # PixArt-α's final layer: a [2, D] table added to the time embedding
      self.scale_shift_out = nnx.Param(jnp.zeros((2, embed_dim), param_dtype),
                                       out_sharding=(None, "embed"))
    else:
      self.ada_out = _ada_linear(embed_dim, 2 * embed_dim, kw)
    self.proj_out = nnx.Linear(
        embed_dim, p, kernel_init=layers.partitioned(nnx.initializers.zeros, "embed", "patch"),
        bias_init=layers.partitioned(nnx.initializers.zeros, "patch"), **kw)

  def time_cond(self, t: jax.Array) -> jax.Array:
    """t [B] -> [B, 3, D]: the conditioning of CLEAN (t=0), NOISY (t) and FUTURE (t=1)."""
    times = jnp.stack([jnp.zeros_like(t), t, jnp.ones_like(t)], axis=1)  # [B, 3]
    h = self.time_in(positions.timestep_embedding(times, _TIME_FREQ_DIM))
    return self.time_out(jax.nn.silu(h))

  def __call__(self, x: jax.Array, t: jax.Array, context: jax.Array, context_mask: jax.Array,
               token_state: jax.Array | None = None, spatial: jax.Array | None = None
               ) -> jax.Array:
    """x [B, Hh, Ww, C], t [B], context [B, S, D], context_mask [B, S],
    token_state [B, T] (default: all NOISY), spatial [B, T, D] (added to the
    token inputs) -> velocity [B, Hh, Ww, C]."""
    b = x.shape[0]
    if token_state is None:
      token_state = jnp.full((b, self.grid * self.grid), NOISY, jnp.int32)
    pos = positions.sincos_2d(self.grid, self.grid, self.embed_dim)  # [T, D]
    h = self.patch_embed(patchify(x, self.patch_size)) + pos  # [B, T, D]
    if spatial is not None:
      h = h + spatial
    h = constrain(h, ("batch", "length", "embed"))
    context = constrain(context, ("batch", "context", "embed"))
    cond = self.time_cond(t)  # [B, 3, D]
    if self.adaln == "single":
      block_cond = self.ada_shared(jax.nn.silu(cond))  # [B, 3, 6D], shared by the blocks
      table = self.scale_shift_out[...].astype(cond.dtype)  # [2, D]
      final = jnp.concatenate([cond + table[0], cond + table[1]], axis=-1)  # [B, 3, 2D]
    else:
      block_cond = cond
      final = self.ada_out(jax.nn.silu(cond))  # [B, 3, 2D]
    h = self._blocks(h, block_cond, token_state, context, context_mask)
    shift, scale = jnp.split(per_token(final, token_state), 2, axis=-1)
    h = self.proj_out(modulate(self.norm_out(h), shift, scale))  # [B, T, P]
    return unpatchify(h, self.patch_size, self.grid, self.grid).astype(x.dtype)

  def _blocks(self, h, cond, token_state, context, context_mask):
    """The block stack, remat per block: [B, T, D] -> [B, T, D]."""
    if self.scan_layers:
      step = lambda block, x, _: (block(x, cond, token_state, context, context_mask), None)
      return scan_stack(self.layers, step, h, remat=self.remat)[0]
    forward = lambda block, x: block(x, cond, token_state, context, context_mask)
    if REMAT_POLICIES[self.remat] is not None:
      forward = jax.checkpoint(forward, policy=REMAT_POLICIES[self.remat])
    for block in self.blocks:
      h = forward(block, h)
    return h
