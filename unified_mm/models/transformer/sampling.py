"""KV-cache decoding: prefill the prompt, then one jitted `fori_loop` of single-token steps.

    tokens = sample(model, prompt, num_steps=64, rng=key, temperature=0.8, top_k=50)

Options:
  * temperature (0 = greedy), top_k (0 = off), top_p (1 = off);
  * `logit_mask_fn(logits [B,V], step) -> logits`: a stateless mask, e.g.
    `vocab_range_mask(lo, hi)` or `vocab_range_mask(lo, hi, allow=False)`;
  * `constraint`: a stateful mask (init / allowed / update), e.g.
    `ImageSpanConstraint`: inside BOI...EOI only image codes, exactly
    `grid_count` of them, then EOI is forced;
  * classifier-free guidance: `uncond_tokens` (+ mask) run as a second half
    of the batch, logits mixed as `u + cfg_scale * (c - u)`; both halves are
    fed the same sampled token.

Prompts of different lengths are left-padded; `prompt_mask` marks real tokens.
Padding gets segment id 0 (never attended by real tokens) and positions count
real tokens only, so a padded prompt decodes exactly like an unpadded one.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp

LogitMaskFn = Callable[[jax.Array, jax.Array], jax.Array]


@functools.lru_cache(maxsize=None)
def vocab_range_mask(start: int, stop: int, allow: bool = True) -> LogitMaskFn:
  """Keeps only ids in [start, stop) (allow=True) or bans them (allow=False).

  Cached, so equal arguments give the same function and the decoder compiles once.
  """
  def mask_fn(logits, step):
    del step
    ids = jnp.arange(logits.shape[-1])
    inside = (ids >= start) & (ids < stop)
    keep = inside if allow else ~inside
    return jnp.where(keep, logits, -jnp.inf)
  return mask_fn


@dataclasses.dataclass(frozen=True)
class ImageSpanConstraint:
  """Inside BOI...EOI only image codes, exactly `grid_count`, then EOI.

  Outside an image span, image codes and EOI are banned. State per row:
  (inside: bool [B], count: int32 [B] codes emitted in the current span).
  """
  boi: int
  eoi: int
  image_start: int
  image_stop: int
  grid_count: int

  def init(self, prompt: jax.Array, prompt_mask: jax.Array):
    idx = jnp.arange(prompt.shape[1])
    last = lambda tok: jnp.max(jnp.where((prompt == tok) & prompt_mask, idx, -1), axis=1)
    last_boi, last_eoi = last(self.boi), last(self.eoi)
    inside = last_boi > last_eoi
    count = jnp.where(inside, prompt.shape[1] - 1 - last_boi, 0).astype(jnp.int32)
    return inside, count

  def allowed(self, state, vocab_size: int) -> jax.Array:  # [B, V] bool
    inside, count = state
    ids = jnp.arange(vocab_size)
    is_image = (ids >= self.image_start) & (ids < self.image_stop)
    is_eoi = ids == self.eoi
    full = (count >= self.grid_count)[:, None]
    in_span = jnp.where(full, is_eoi[None], is_image[None])
    out_span = (~is_image & ~is_eoi)[None]
    return jnp.where(inside[:, None], in_span, out_span)

  def update(self, state, token: jax.Array):
    inside, count = state
    new_inside = jnp.where(inside, token != self.eoi, token == self.boi)
    new_count = jnp.where(inside & (token != self.eoi), count + 1, 0).astype(jnp.int32)
    return new_inside, new_count


def filter_logits(logits: jax.Array, top_k: int = 0, top_p: float = 1.0) -> jax.Array:
  """Sets logits outside the top-k / nucleus(top-p) set to -inf; logits [B, V] f32."""
  if top_k and top_k < logits.shape[-1]:
    kth = jax.lax.top_k(logits, top_k)[0][:, -1:]
    logits = jnp.where(logits < kth, -jnp.inf, logits)
  if top_p < 1.0:
    sorted_logits = jnp.sort(logits, axis=-1)[:, ::-1]
    probs = jax.nn.softmax(sorted_logits, axis=-1)
    before = jnp.cumsum(probs, axis=-1) - probs  # mass strictly before each token
    keep = before < top_p  # the most likely token is always kept
    threshold = jnp.min(jnp.where(keep, sorted_logits, jnp.inf), axis=-1, keepdims=True)
    logits = jnp.where(logits < threshold, -jnp.inf, logits)
  return logits


def sample_logits(key: jax.Array, logits: jax.Array, temperature: float = 1.0,
                  top_k: int = 0, top_p: float = 1.0) -> jax.Array:
  """One token per row from logits [B, V]; temperature 0 is greedy."""
  logits = logits.astype(jnp.float32)
  if temperature == 0.0:
    return jnp.argmax(logits, axis=-1).astype(jnp.int32)
  logits = filter_logits(logits / temperature, top_k, top_p)
  return jax.random.categorical(key, logits, axis=-1).astype(jnp.int32)


def _left_pad(tokens, mask, length, pad_id):
  extra = length - tokens.shape[1]
  tokens = jnp.pad(tokens, ((0, 0), (extra, 0)), constant_values=pad_id)
  return tokens, jnp.pad(mask, ((0, 0), (extra, 0)), constant_values=False)


@functools.partial(jax.jit, static_argnames=(
    "num_steps", "temperature", "top_k", "top_p", "logit_mask_fn", "constraint",
    "guided", "cache_len", "stop_id"))
def _decode(model, prompt, prompt_mask, rng, cfg_scale, *, num_steps, temperature, top_k,
            top_p, logit_mask_fn, constraint, guided, cache_len, stop_id):
  rows = prompt.shape[0]
  batch = rows // 2 if guided else rows
  segments = prompt_mask.astype(jnp.int32)
  positions = jnp.maximum(jnp.cumsum(segments, axis=1) - 1, 0)
  cache = model.init_cache(rows, cache_len)
  logits, cache = model(prompt, positions, segments, cache=cache)
  next_position = positions[:, -1] + 1  # [rows]
  state = constraint.init(prompt[:batch], prompt_mask[:batch]) if constraint else None

  def choose(step_logits, step, state):  # step_logits [rows, V]
    step_logits = step_logits.astype(jnp.float32)
    if guided:
      cond, uncond = step_logits[:batch], step_logits[batch:]
      step_logits = uncond + cfg_scale * (cond - uncond)
    if logit_mask_fn is not None:
      step_logits = logit_mask_fn(step_logits, step)
    if constraint is not None:
      step_logits = jnp.where(constraint.allowed(state, step_logits.shape[-1]),
                              step_logits, -jnp.inf)
    token = sample_logits(jax.random.fold_in(rng, step), step_logits, temperature, top_k, top_p)
    if constraint is not None:
      state = constraint.update(state, token)
    return token, state

  token, state = choose(logits[:, -1], 0, state)
  out = jnp.zeros((batch, num_steps), jnp.int32).at[:, 0].set(token)

  def body(step, carry):
    cache, token, state, out = carry
    feed = jnp.concatenate([token, token]) if guided else token
    pos = (next_position + step - 1)[:, None]
    step_logits, cache = model(feed[:, None], pos, jnp.ones_like(pos), cache=cache)
    token, state = choose(step_logits[:, 0], step, state)
    return cache, token, state, out.at[:, step].set(token)

  if stop_id is None:
    _, _, _, out = jax.lax.fori_loop(1, num_steps, body, (cache, token, state, out))
    return out

  # A plan is a few ids per object under a budget of many: stop once every row has
  # written `stop_id` (the same tokens as running on: keys fold in the step).
  def running(carry):
    step, _, done = carry
    return (step < num_steps) & ~jnp.all(done)

  def step_until_done(carry):
    step, loop, done = carry
    loop = body(step, loop)
    return step + 1, loop, done | (loop[1] == stop_id)

  _, (_, _, _, out), _ = jax.lax.while_loop(
      running, step_until_done, (1, (cache, token, state, out), token == stop_id))
  return out


def sample(model, prompt_tokens: jax.Array, num_steps: int, rng: jax.Array, *,
           temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
           logit_mask_fn: LogitMaskFn | None = None,
           constraint: ImageSpanConstraint | None = None,
           prompt_mask: jax.Array | None = None,
           cfg_scale: float | None = None, uncond_tokens: jax.Array | None = None,
           uncond_mask: jax.Array | None = None, pad_id: int = 0,
           stop_id: int | None = None) -> jax.Array:
  """Generates `num_steps` tokens after each prompt row -> int32 [B, num_steps].

  With `stop_id`, decoding ends once every row has written it; the positions
  not reached are 0 (callers cut each row at its first `stop_id`).

  prompt_tokens [B, P] (left-padded where `prompt_mask` [B, P] is False).
  With `cfg_scale` and `uncond_tokens` [B, P'] the unconditional prompts run in
  the same batch; the two prompt sets are left-padded to a common length.
  `logit_mask_fn` and `constraint` must be hashable (module-level functions,
  frozen dataclasses): they are static arguments of the jitted decoder.
  """
  prompt_tokens = jnp.asarray(prompt_tokens, jnp.int32)
  if prompt_mask is None:
    prompt_mask = jnp.ones(prompt_tokens.shape, bool)
  guided = cfg_scale is not None
  if guided:
    if uncond_tokens is None:
      raise ValueError("cfg_scale needs uncond_tokens")
    uncond_tokens = jnp.asarray(uncond_tokens, jnp.int32)
    if uncond_mask is None:
      uncond_mask = jnp.ones(uncond_tokens.shape, bool)
    length = max(prompt_tokens.shape[1], uncond_tokens.shape[1])
    prompt_tokens, prompt_mask = _left_pad(prompt_tokens, prompt_mask, length, pad_id)
    uncond_tokens, uncond_mask = _left_pad(uncond_tokens, uncond_mask, length, pad_id)
    prompt_tokens = jnp.concatenate([prompt_tokens, uncond_tokens])
    prompt_mask = jnp.concatenate([prompt_mask, uncond_mask])
  cache_len = prompt_tokens.shape[1] + num_steps
  return _decode(model, prompt_tokens, jnp.asarray(prompt_mask, bool), rng,
                 jnp.asarray(cfg_scale or 0.0, jnp.float32), num_steps=num_steps,
                 temperature=float(temperature), top_k=int(top_k), top_p=float(top_p),
                 logit_mask_fn=logit_mask_fn, constraint=constraint, guided=guided,
                 cache_len=cache_len, stop_id=None if stop_id is None else int(stop_id))
