"""The renderer: a context encoder plus a DiT velocity field.

    renderer = Renderer(**config.model, rngs=nnx.Rngs(0))
    context, mask = renderer.encode_context(codes=codes, text_ids=ids, text_mask=m)
    v = renderer.velocity(x_t, t, context, mask)          # [B, Hh, Ww, C]

The context is encoded once per image and reused at every sampling step.

With `plan_residual` = s > 0 the flow runs on the *residual* from the plan
latent, x0 = (z - plan) / s, and rendering returns plan + s * x0
(`diffusion_target` / `latent_from`): a renderer that has learned nothing
reproduces the plan, the preview decoder's reading of the tokens, and its
errors are shrunk by s (the residual's std, ~0.25 of the latent's on the shapes
world) before the latent decoder sees them. Super-resolution diffusion models
condition on an upsampled image the same way.

Besides cross-attention, the visual tokens reach the latent tokens directly
when `visual_add` is set: each latent token gets (a zero-initialised
projection of) the encoded visual token covering the same pixels, added to its
input (the k x k tokens it covers, concatenated, when the visual grid is finer). Visual tokens are a spatial plan, so this local path is what makes the
renderer learn in a CPU-sized budget; cross-attention still carries the
non-local context (neighbours, text). It is read from the same masked context
as cross-attention, so dropping the context for CFG drops it too.

With `layout_plan_width` > 0 (a renderer without visual tokens) the plan
latent is decoded from the written plan instead (layout_plan.py), trained the
same way.

`cross_attention`, `adaln` (DiT-XL/2- and PixArt-α-shaped blocks, see dit.py),
`scan_layers` and `remat` are passed to the DiT.

With `plan_refiner_width` > 0 the plan latent is first corrected from the
tokens (plan_refiner.py, trained by MSE to the true latent, `loss.plan_weight`);
training and sampling both use the corrected plan, without gradient into the
refiner from the flow loss.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from unified_mm.models.image_tokenizer.layers import space_to_depth
from unified_mm.models.renderer import layers
from unified_mm.models.renderer.context import ContextEncoder
from unified_mm.models.renderer.dit import DiT
from unified_mm.models.renderer.layout_plan import LayoutPlan
from unified_mm.models.renderer.plan_refiner import PlanRefiner


class Renderer(nnx.Module):

  def __init__(self, *, latent_size: int, latent_channels: int, patch_size: int = 2,
               embed_dim: int = 128, depth: int = 4, num_heads: int = 4,
               mlp_ratio: float = 4.0, visual_codes: int = 0, visual_grid: int = 8,
               text_source: str = "own", text_vocab: int = 0, text_len: int = 32,
               ar_dim: int = 0, context_depth: int = 1, visual_add: bool = True,
               visual_levels: tuple[int, ...] = (), plan_channels: int = 0,
               plan_residual: float = 0.0, plan_refiner_width: int = 0,
               plan_refiner_depth: int = 2, layout_len: int = 0, layout_plan_width: int = 0,
               layout_plan_depth: int = 2, cross_attention: bool = True, adaln: str = "block",
               scan_layers: bool = False, remat: str = "none", dtype=jnp.float32,
               param_dtype=jnp.float32, rngs: nnx.Rngs):
    dtype, param_dtype = jnp.dtype(dtype), jnp.dtype(param_dtype)
    if layout_plan_width and (visual_codes or not layout_len):
      raise ValueError(f"layout_plan_width={layout_plan_width} draws the plan latent from the "
                       "written plan: it needs layout_len > 0 and visual_codes=0")
    if plan_residual and not ((plan_channels and visual_codes) or layout_plan_width):
      raise ValueError(f"plan_residual={plan_residual} needs a plan latent "
                       "(plan_channels > 0 and visual_codes > 0, or layout_plan_width > 0)")
    if plan_refiner_width and not (plan_channels and visual_codes):
      raise ValueError(f"plan_refiner_width={plan_refiner_width} refines the plan latent "
                       "(plan_channels > 0 and visual_codes > 0)")
    self.plan_residual = float(plan_residual)
    self.plan_refiner = nnx.data(PlanRefiner(
        visual_codes=visual_codes, visual_grid=visual_grid, visual_levels=tuple(visual_levels),
        latent_size=latent_size, latent_channels=latent_channels, width=plan_refiner_width,
        depth=plan_refiner_depth, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        if plan_refiner_width else None)
    self.layout_plan = nnx.data(LayoutPlan(
        text_vocab=text_vocab, latent_size=latent_size, latent_channels=latent_channels,
        width=layout_plan_width, depth=layout_plan_depth, dtype=dtype, param_dtype=param_dtype,
        rngs=rngs) if layout_plan_width else None)
    self.latent_size = latent_size
    self.latent_channels = latent_channels
    self.visual_grid = visual_grid
    self.context = ContextEncoder(
        embed_dim=embed_dim, num_heads=num_heads, visual_codes=visual_codes,
        visual_grid=visual_grid, text_source=text_source, text_vocab=text_vocab,
        text_len=text_len, ar_dim=ar_dim, depth=context_depth, visual_levels=visual_levels,
        plan_channels=plan_channels, plan_patch=latent_size // visual_grid,
        layout_len=layout_len, dtype=dtype,
        param_dtype=param_dtype, rngs=rngs)
    self.dit = DiT(latent_size=latent_size, latent_channels=latent_channels,
                   patch_size=patch_size, embed_dim=embed_dim, depth=depth,
                   num_heads=num_heads, mlp_ratio=mlp_ratio, cross_attention=cross_attention,
                   adaln=adaln, scan_layers=scan_layers, remat=remat, dtype=dtype,
                   param_dtype=param_dtype, rngs=rngs)
    grid = latent_size // patch_size
    self.visual_add = bool(visual_add and (visual_codes or layout_len)
                           and (grid % visual_grid == 0 or visual_grid % grid == 0))
    if not cross_attention and not self.visual_add:
      raise ValueError("cross_attention=False leaves the co-located visual path as the only "
                       "conditioning: it needs visual_add with visual_codes or layout_len, and a "
                       "visual grid that divides (or is divided by) the latent token grid")
    if self.visual_add:
      # A visual grid finer than the latent tokens folds its k x k tokens per latent token.
      fold = max(visual_grid // grid, 1) ** 2
      self.visual_proj = nnx.Linear(
          fold * embed_dim, embed_dim, dtype=dtype, param_dtype=param_dtype, rngs=rngs,
          kernel_init=layers.partitioned(nnx.initializers.zeros, "embed", "mlp"),
          bias_init=layers.partitioned(nnx.initializers.zeros, "mlp"))

  def refine_plan(self, codes: jax.Array, plan: jax.Array) -> jax.Array:
    """The plan latent the flow runs around: `plan` corrected by the plan refiner, if any."""
    if self.plan_refiner is None:
      return plan
    return self.plan_refiner(codes, plan)

  def base_plan(self, inputs: dict) -> jax.Array | None:
    """The plan latent the flow runs around, from the context inputs: the written
    plan's (layout renderer), the refined preview latent of the codes, or None."""
    if self.layout_plan is not None:
      return self.layout_plan(inputs["layout_ids"], inputs["layout_boxes"], inputs["layout_mask"])
    if inputs.get("plan") is None:
      return None
    return self.refine_plan(inputs["codes"], inputs["plan"])

  def diffusion_target(self, latent: jax.Array, plan: jax.Array | None) -> jax.Array:
    """The x0 the flow is trained on: the latent, or its scaled residual from the plan."""
    if not self.plan_residual:
      return latent
    return (latent - plan) / self.plan_residual

  def latent_from(self, x0: jax.Array, plan: jax.Array | None) -> jax.Array:
    """Inverse of `diffusion_target`: a rendered x0 back to the (normalised) latent."""
    if not self.plan_residual:
      return x0
    return plan + self.plan_residual * x0

  @property
  def token_grid(self) -> int:
    """Latent tokens per side (latent_size / patch_size)."""
    return self.dit.grid

  @property
  def patch_size(self) -> int:
    return self.dit.patch_size

  def encode_context(self, **kwargs) -> tuple[jax.Array, jax.Array]:
    """See ContextEncoder.__call__: codes, text_ids, text_mask, text_states, keep."""
    return self.context(**kwargs)

  def spatial(self, context: jax.Array, context_mask: jax.Array) -> jax.Array | None:
    """[B, T, D]: each latent token's co-located encoded visual token (0 where dropped)."""
    if not self.visual_add:
      return None
    g, v = self.token_grid, self.visual_grid
    visual = context[:, 1:1 + v * v] * context_mask[:, 1:1 + v * v, None]  # [B, Hv*Wv, D]
    b, d = visual.shape[0], visual.shape[-1]
    visual = visual.reshape(b, v, v, d)
    if v >= g:  # k x k visual tokens per latent token, concatenated: [B, G, G, k * k * D]
      visual = space_to_depth(visual, v // g)
    else:  # each visual token covers (G / V)^2 latent tokens
      visual = jnp.repeat(jnp.repeat(visual, g // v, axis=1), g // v, axis=2)  # [B, G, G, D]
    return self.visual_proj(visual.reshape(b, g * g, -1))

  def velocity(self, x: jax.Array, t: jax.Array, context: jax.Array, context_mask: jax.Array,
               token_state: jax.Array | None = None) -> jax.Array:
    return self.dit(x, t, context, context_mask, token_state,
                    spatial=self.spatial(context, context_mask))

  def __call__(self, x: jax.Array, t: jax.Array, *, token_state: jax.Array | None = None,
               **context_inputs) -> jax.Array:
    context, mask = self.encode_context(**context_inputs)
    return self.velocity(x, t, context, mask, token_state)
