"""The image tokenizer: one encoder, two outputs.

  images [B, H, W, 3] ──► Encoder ──► stage `latent_stage` ──► z [B, H/4, W/4, Cz] ──► latent decoder ──► pixels
                                  └─► stage `code_stage`   ──► FSQ ids [B, H/8, W/8]  ──► preview decoder ──► pixels

With `cell_code_channels`, the codes come instead from a `CellEncoder` that
reads each code cell's own pixels only (cell_encoder.py says why); the
shared encoder then serves the latent alone.

Images go in as uint8 [0, 255] *or* float in [-1, 1] (integer dtypes are
converted); pixels come out as float in [-1, 1] (`layers.to_uint8` converts).
Every method is batched and jit-friendly: `nnx.jit(TokenizerAutoencoder.encode_codes)(model, images)`.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from unified_mm.models.image_tokenizer.cell_encoder import CellEncoder
from unified_mm.models.image_tokenizer.decoder import Decoder
from unified_mm.models.image_tokenizer.encoder import Encoder
from unified_mm.models.image_tokenizer.fsq import DEFAULT_LEVELS, FSQ
from unified_mm.models.image_tokenizer.layers import as_signed_unit, conv, group_norm


class TokenizerAutoencoder(nnx.Module):

  def __init__(self, *, image_size: int = 64, channels: Sequence[int] = (32, 64, 128),
               num_res_blocks: int = 1, stem_patch: int = 2, latent_stage: int = 1,
               latent_channels: int = 8, code_stage: int = 2,
               fsq_levels: Sequence[int] = DEFAULT_LEVELS,
               latent_decoder_channels: Sequence[int] = (64, 32),
               preview_decoder_channels: Sequence[int] = (128, 64, 32),
               decoder_res_blocks: int = 1, norm_groups: int = 8,
               cell_code_channels: Sequence[int] = (), semantic_classes: int = 0,
               dtype: str = "float32", param_dtype: str = "float32", rngs: nnx.Rngs):
    if not 0 <= latent_stage <= code_stage < len(channels):
      raise ValueError(f"need 0 <= latent_stage={latent_stage} <= code_stage={code_stage} "
                       f"< len(channels)={len(channels)}")
    dtype, param_dtype = jnp.dtype(dtype), jnp.dtype(param_dtype)
    kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    self.image_size = image_size
    self.dtype = dtype
    self.latent_stage, self.code_stage = latent_stage, code_stage
    self.latent_downsample = stem_patch * 2**latent_stage
    self.code_downsample = stem_patch * 2**code_stage
    self.latent_channels = latent_channels
    self.fsq = FSQ(fsq_levels)
    # Cell codes leave the shared encoder only the stages up to the latent's.
    encoder_channels = channels[:latent_stage + 1] if cell_code_channels else channels
    self.encoder = Encoder(channels=encoder_channels, num_res_blocks=num_res_blocks,
                           stem_patch=stem_patch, norm_groups=norm_groups, **kw)
    self.latent_norm = group_norm(channels[latent_stage], norm_groups, **kw)
    self.latent_proj = conv(channels[latent_stage], latent_channels, 3, **kw)
    self.cell_encoder = CellEncoder(
        patch=self.code_downsample, channels=cell_code_channels, out_features=self.fsq.dim,
        **kw) if cell_code_channels else None
    if not cell_code_channels:
      self.code_norm = group_norm(channels[code_stage], norm_groups, **kw)
      self.code_proj = conv(channels[code_stage], self.fsq.dim, 1, **kw)
    # A small head reading each quantized code back as a class (the shapes world:
    # the kind drawn in its cell). Trained with loss.semantic_weight, it asks every
    # code that draws part of a shape to say which shape: a transformer then learns
    # the codes of a kind together instead of one fragment at a time.
    self.semantic_head = nnx.Sequential(
        nnx.Linear(self.fsq.dim, 64, **kw), jax.nn.gelu,
        nnx.Linear(64, semantic_classes, **kw)) if semantic_classes else None
    # Each decoder must undo its own downsampling: 2**(stages - 1) * out_patch.
    self.latent_decoder = Decoder(
        in_features=latent_channels, channels=latent_decoder_channels,
        num_res_blocks=decoder_res_blocks,
        out_patch=self.latent_downsample // 2**(len(latent_decoder_channels) - 1),
        norm_groups=norm_groups, **kw)
    self.preview_decoder = Decoder(
        in_features=self.fsq.dim, channels=preview_decoder_channels,
        num_res_blocks=decoder_res_blocks,
        out_patch=self.code_downsample // 2**(len(preview_decoder_channels) - 1),
        norm_groups=norm_groups, **kw)

  # ---- grids ----------------------------------------------------------------
  @property
  def latent_grid(self) -> tuple[int, int]:
    s = self.image_size // self.latent_downsample
    return (s, s)

  @property
  def code_grid(self) -> tuple[int, int]:
    s = self.image_size // self.code_downsample
    return (s, s)

  @property
  def codebook_size(self) -> int:
    return self.fsq.codebook_size

  # ---- heads ------------------------------------------------------------------
  def _latent_head(self, features: jax.Array) -> jax.Array:
    return self.latent_proj(jax.nn.silu(self.latent_norm(features)))  # [B, h, w, Cz]

  def _code_head(self, images: jax.Array, features: list[jax.Array] | None = None
                 ) -> tuple[jax.Array, jax.Array]:
    """Codes of signed-unit `images`; `features`: the shared encoder's, if already run."""
    if self.cell_encoder is not None:
      pre = self.cell_encoder(images)  # [B, h, w, d]
    else:
      if features is None:
        features = self.encoder(images, num_stages=self.code_stage + 1)
      pre = self.code_proj(jax.nn.silu(self.code_norm(features[self.code_stage])))
    return self.fsq(pre.astype(jnp.float32))  # codes [B, h, w, d], ids [B, h, w]

  # ---- public API -------------------------------------------------------------
  def encode_latent(self, images: jax.Array) -> jax.Array:
    """[B, H, W, 3] -> z [B, H/4, W/4, Cz] (unnormalised; see loader.latent_stats)."""
    features = self.encoder(as_signed_unit(images, self.dtype), num_stages=self.latent_stage + 1)
    return self._latent_head(features[self.latent_stage]).astype(jnp.float32)

  def decode_latent(self, z: jax.Array) -> jax.Array:
    """z [B, h, w, Cz] -> [B, H, W, 3] float in ~[-1, 1]."""
    return self.latent_decoder(z.astype(self.dtype)).astype(jnp.float32)

  def encode_codes(self, images: jax.Array) -> jax.Array:
    """[B, H, W, 3] -> int32 ids [B, H/8, W/8] in [0, codebook_size)."""
    return self._code_head(as_signed_unit(images, self.dtype))[1]

  def decode_codes(self, ids: jax.Array) -> jax.Array:
    """int ids [B, h, w] -> [B, H, W, 3] float in ~[-1, 1] (the preview decoder)."""
    codes = self.fsq.ids_to_codes(ids, self.dtype)
    return self.preview_decoder(codes).astype(jnp.float32)

  def __call__(self, images: jax.Array, latent_noise: float = 0.0,
               rng: jax.Array | None = None, freeze_encoder: bool = False
               ) -> dict[str, jax.Array]:
    """Both paths at once, for training: z, codes, ids and both reconstructions.

    With `latent_noise` > 0, the latent decoder reads z plus Gaussian noise of
    that fraction of z's per-channel std: a decoder that has only seen exact
    encodings can turn the renderer's small sampling errors into wrong shapes.
    `freeze_encoder` stops gradients at z and the codes (decoder fine-tuning:
    the other stages' latents and visual tokens stay exactly as they were).
    """
    images = as_signed_unit(images, self.dtype)
    features = self.encoder(images)
    z = self._latent_head(features[self.latent_stage])
    codes, ids = self._code_head(images, features)
    if freeze_encoder:
      z, codes = jax.lax.stop_gradient(z), jax.lax.stop_gradient(codes)
    z_in = z
    if latent_noise:
      scale = jax.lax.stop_gradient(z.std(axis=(0, 1, 2)))  # [Cz]
      z_in = z + latent_noise * scale * jax.random.normal(rng, z.shape, z.dtype)
    semantic = {} if self.semantic_head is None else {
        "semantic_logits": self.semantic_head(codes.astype(self.dtype)).astype(jnp.float32)}
    return semantic | {
        "z": z.astype(jnp.float32),
        "codes": codes,
        "ids": ids,
        "latent_recon": self.latent_decoder(z_in).astype(jnp.float32),
        "code_recon": self.preview_decoder(codes.astype(self.dtype)).astype(jnp.float32),
    }
