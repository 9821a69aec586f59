"""Context inputs -> rendered latents, in one jitted call.

    z = render_latents(renderer, rng, codes=codes, text_ids=ids, text_mask=m,
                       steps=8, chunks=1, cfg_scale=2.0)      # [B, Hh, Ww, C]

The returned latents are in the renderer's normalised space; undo the
tokenizer's channel statistics before decoding (tasks/renderer.py).

`start` < 1 (with a plan latent among the context inputs) begins the ODE at
t = start from (1 - start) plan + start noise instead of pure noise: the
renderer then refines the plan's coarse latent (SDEdit-style) rather than
drawing the whole image. FUTURE stripes are never attended, so this composes
with chunked rendering. A residual renderer (`plan_residual`) gets its plan
back in `latent_from`: there the plan is x0 = 0.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import nnx

from unified_mm.models.renderer import chunked


@functools.partial(nnx.jit, static_argnames=("steps", "chunks", "cfg_scale", "method", "shift",
                                             "start"))
def render_latents(model, rng: jax.Array, *, steps: int = 8, chunks: int = 1,
                   cfg_scale: float = 1.0, method: str = "euler", shift: float = 1.0,
                   start: float = 1.0, **context_inputs) -> jax.Array:
  plan = model.base_plan(context_inputs)
  if plan is not None:
    context_inputs["plan"] = plan
  context, mask = model.encode_context(**context_inputs)
  b = context.shape[0]
  uncond_context = uncond_mask = None
  if cfg_scale != 1.0:
    uncond_context, uncond_mask = model.encode_context(keep=jnp.zeros((b,), bool), **context_inputs)
  shape = (b, model.latent_size, model.latent_size, model.latent_channels)
  x = jax.random.normal(rng, shape, jnp.float32)
  plan = context_inputs.get("plan")
  if start < 1.0:
    if plan is None:
      raise ValueError(f"start={start} refines the plan latent: pass plan=...")
    x = (1.0 - start) * model.diffusion_target(plan, plan) + start * x
  x = chunked.render(model, x, context, mask, chunks=chunks, steps=steps, method=method,
                     cfg_scale=cfg_scale, uncond_context=uncond_context,
                     uncond_mask=uncond_mask, shift=shift, start=start)
  return model.latent_from(x, plan)
