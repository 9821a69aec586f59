"""The cross-attention context: [null | visual tokens | text], with a mask.

- index 0 is a learned *null* token that is always attended, so a context
  with everything else dropped (classifier-free guidance's unconditional
  branch) is still a valid attention target;
- visual tokens: the renderer's own embedding of the FSQ code ids, plus (with
  `visual_levels`, the tokenizer's FSQ levels) a projection of the code's FSQ
  digits scaled to [-1, 1] -- neighbouring codes share digits, so every code
  starts from a meaningful vector instead of a random row that is only
  trained when that code shows up -- plus the same 2-D sin-cos positions as the
  latent patches (positions.py); with `plan_channels`, each visual token also
  gets a projection of the *plan latent* patch it covers: the tokenizer's
  encoding of its own preview decode of the tokens, so the renderer refines a
  coarse latent instead of inventing one from ids;
- text, by `text_source`:
    "own"  the renderer's own learned embedding of SentencePiece ids + learned
           1-D positions;
    "ar"   the frozen unified transformer's hidden states over the prompt,
           computed outside the renderer's gradient and projected here;
    "none" no text.
  `visual_codes=0` gives a text-only renderer (the Stable-Diffusion-style
  baseline), or with `layout_len` one that draws from the written plan and
  the text alone (GLIGEN-style layout-to-image);
- the written plan (`layout_len` > 0, layout_context.py): one token per
  object (label + box) appended to the context, and a canvas of the objects'
  boxes added to the visual tokens; rows without a plan pass an empty
  `layout_mask` and get neither.
A few pre-LN self-attention layers then mix the context, so text words can
bind to each other before the latent tokens read them.

Dimension letters: B batch, S context tokens, L text tokens, D width.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from unified_mm.models.image_tokenizer.fsq import FSQ
from unified_mm.models.renderer import layers, positions
from unified_mm.parallel.sharding import constrain

TEXT_SOURCES = ("own", "ar", "none")


class ContextLayer(nnx.Module):
  def __init__(self, embed_dim: int, num_heads: int, *, dtype, param_dtype, rngs: nnx.Rngs):
    kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    self.norm1 = layers.layer_norm(embed_dim, affine=True, **kw)
    self.attn = layers.Attention(embed_dim, num_heads, **kw)
    self.norm2 = layers.layer_norm(embed_dim, affine=True, **kw)
    self.mlp = layers.Mlp(embed_dim, 4 * embed_dim, **kw)

  def __call__(self, x: jax.Array, mask: jax.Array) -> jax.Array:
    # A masked query row still attends to the always-valid null token, so no
    # row of the attention is empty.
    x = x + self.attn(self.norm1(x), None, mask)
    x = x + self.mlp(self.norm2(x))
    return constrain(x, ("batch", "context", "embed"))


class ContextEncoder(nnx.Module):

  def __init__(self, *, embed_dim: int, num_heads: int, visual_codes: int, visual_grid: int,
               text_source: str, text_vocab: int, text_len: int, ar_dim: int = 0,
               depth: int = 1, visual_levels: tuple[int, ...] = (), plan_channels: int = 0,
               plan_patch: int = 2, layout_len: int = 0, dtype=jnp.float32,
               param_dtype=jnp.float32, rngs: nnx.Rngs):
    if text_source not in TEXT_SOURCES:
      raise ValueError(f"text_source={text_source!r}; expected one of {TEXT_SOURCES}")
    if not visual_codes and text_source == "none":
      raise ValueError("the context needs visual tokens or text (visual_codes=0, text_source='none')")
    self.embed_dim = embed_dim
    self.visual_grid = visual_grid
    self.text_source = text_source
    self.uses_visual = visual_codes > 0
    kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    # Unit-scale embeddings: the sin-cos positions added to them are unit-scale
    # too, and a 0.02-scale token identity would take hundreds of steps to be heard.
    emb_init = nnx.initializers.normal(1.0)
    self.null = nnx.Param(emb_init(rngs.params(), (1, embed_dim), param_dtype),
                          out_sharding=(None, "embed"))
    self.visual_levels = tuple(int(l) for l in visual_levels)
    self.plan_patch = plan_patch
    self.uses_plan = bool(visual_codes and plan_channels)
    if self.uses_plan:
      self.plan_embed = nnx.Linear(
          plan_patch * plan_patch * plan_channels, embed_dim,
          kernel_init=layers.partitioned(nnx.initializers.lecun_normal(), "patch", "embed"),
          bias_init=layers.partitioned(nnx.initializers.zeros, "embed"), **kw)
    if self.uses_visual:
      self.code_embed = nnx.Embed(visual_codes, embed_dim,
                                  embedding_init=layers.partitioned(emb_init, "vocab", "embed"), **kw)
      if self.visual_levels:
        self.code_digits = nnx.Linear(
            len(self.visual_levels), embed_dim,
            kernel_init=layers.partitioned(nnx.initializers.normal(1.0), None, "embed"),
            bias_init=layers.partitioned(nnx.initializers.zeros, "embed"), **kw)
    if text_source == "own":
      self.text_embed = nnx.Embed(text_vocab, embed_dim,
                                  embedding_init=layers.partitioned(emb_init, "vocab", "embed"), **kw)
      self.text_pos = nnx.Param(emb_init(rngs.params(), (text_len, embed_dim), param_dtype),
                                out_sharding=(None, "embed"))
    elif text_source == "ar":
      self.ar_proj = nnx.Linear(ar_dim, embed_dim,
                                kernel_init=layers.partitioned(nnx.initializers.lecun_normal(),
                                                               None, "embed"),
                                bias_init=layers.partitioned(nnx.initializers.zeros, "embed"), **kw)
    self.uses_layout = bool(layout_len)
    if self.uses_layout:
      from unified_mm.models.renderer.layout_context import LayoutEncoder  # noqa: PLC0415
      self.label_embed = nnx.Embed(text_vocab, embed_dim,
                                   embedding_init=layers.partitioned(emb_init, "vocab", "embed"), **kw)
      self.layout = LayoutEncoder(embed_dim, **kw)
    self.layers = nnx.List([ContextLayer(embed_dim, num_heads, **kw) for _ in range(depth)])
    self.norm = layers.layer_norm(embed_dim, affine=True, **kw)

  def _digits(self, ids: jax.Array) -> jax.Array:
    """[B, S] FSQ ids -> [B, S, d] the tokenizer's digits, each scaled to [-1, 1]."""
    return FSQ(self.visual_levels).unit_digits(ids)

  def _text(self, text_ids, text_mask, text_states) -> tuple[jax.Array, jax.Array]:
    if self.text_source == "own":
      length = text_ids.shape[1]
      h = self.text_embed(text_ids) + self.text_pos[...][:length]  # [B, L, D]
    else:
      h = self.ar_proj(jax.lax.stop_gradient(text_states))  # [B, L, D]
    return h, text_mask.astype(bool)

  def __call__(self, *, codes: jax.Array | None = None, text_ids: jax.Array | None = None,
               text_mask: jax.Array | None = None, text_states: jax.Array | None = None,
               plan: jax.Array | None = None, layout_ids: jax.Array | None = None,
               layout_boxes: jax.Array | None = None, layout_mask: jax.Array | None = None,
               keep: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    """codes [B, Hv, Wv] int, text_ids [B, L], text_mask [B, L], text_states [B, L, Dar],
    plan [B, Hv * p, Wv * p, C] (the plan latent, with plan_channels),
    layout_ids [B, O, W] label text ids (0-padded), layout_boxes [B, O, 4] in [0, 1],
    layout_mask [B, O] (with layout_len),
    keep [B] bool (False: only the null token, CFG's unconditional branch)
    -> context [B, S, D], mask [B, S]."""
    ref = codes if self.uses_visual else (text_ids if self.text_source == "own" else text_states)
    b = ref.shape[0]
    parts = [jnp.broadcast_to(self.null[...][None], (b, 1, self.embed_dim))]
    masks = [jnp.ones((b, 1), bool)]
    if self.uses_visual or self.uses_layout:
      # The grid slot: visual tokens, and/or the plan's canvas on the same grid
      # (a renderer drawing from the written plan alone has only the canvas).
      hv, wv = codes.shape[1:] if self.uses_visual else (self.visual_grid, self.visual_grid)
      h = jnp.broadcast_to(positions.sincos_2d(hv, wv, self.embed_dim)[None],
                           (b, hv * wv, self.embed_dim)).astype(parts[0].dtype)
      if self.uses_visual:
        ids = codes.reshape(b, hv * wv)
        h = h + self.code_embed(ids)
        if self.visual_levels:
          h = h + self.code_digits(self._digits(ids))
      if self.uses_plan:
        from unified_mm.models.renderer.dit import patchify  # noqa: PLC0415
        h = h + self.plan_embed(patchify(plan.astype(h.dtype), self.plan_patch))
      objects = None
      if self.uses_layout:
        objects, canvas = self.layout(self.label_embed(layout_ids), layout_ids > 0,
                                      layout_boxes, layout_mask, hv)
        h = h + canvas.astype(h.dtype)
      parts.append(h)
      masks.append(jnp.ones((b, hv * wv), bool))
      if objects is not None:
        parts.append(objects.astype(h.dtype))
        masks.append(layout_mask.astype(bool))
    if self.text_source != "none":
      h, m = self._text(text_ids, text_mask, text_states)
      parts.append(h.astype(parts[0].dtype))
      masks.append(m)
    x = jnp.concatenate(parts, axis=1)  # [B, S, D]
    mask = jnp.concatenate(masks, axis=1)  # [B, S]
    if keep is not None:
      mask = mask & (keep[:, None] | (jnp.arange(mask.shape[1]) == 0)[None, :])
    x = constrain(x, ("batch", "context", "embed"))
    for layer in self.layers:
      x = layer(x, mask)
    return self.norm(x), mask
