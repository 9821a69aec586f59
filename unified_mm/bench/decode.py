"""`umm bench decode`: KV-cache decoding against recomputing the prefix, for one image.

Both paths greedily generate `image_tokens` tokens after a `prompt_len`-token
prompt, for `batch_size` rows, with the config's transformer (random weights:
the speed does not depend on them):

  cached      the sampler `umm generate` uses (models/transformer/sampling.py):
              one prefill, then one token per step against the KV cache; one
              jitted call.
  recompute   no cache: every step runs the whole forward over a buffer of
              prompt_len + image_tokens positions (causality makes the
              not-yet-written tail irrelevant), then unembeds the one position
              it needs; one jitted call. What a cache-less sampler with a
              single compiled shape does.
  prefix      (estimate) the cheapest cache-less decoder, one forward per step
              over exactly the prefix so far: the sum over steps of the
              forward time at that length, interpolated from forward timings
              at `probes` lengths.

The two measured paths are timed alternately (`repeats` each, median), so on a
shared machine both see the same load; `tokens_agree` is the share of
generated tokens on which they agree (1.0 up to float ties). `speedup` is the
cached path against the faster of the two cache-less ones (the prefix
estimate includes one dispatch per step, which dominates for tiny models).
"""

from __future__ import annotations

import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from unified_mm.models.transformer import Transformer
from unified_mm.models.transformer.sampling import sample


def _timed(fn, *args) -> tuple[float, np.ndarray]:
  t = time.perf_counter()
  out = np.asarray(jax.block_until_ready(fn(*args)))
  return time.perf_counter() - t, out


def _last_logits(model: Transformer, tokens: jax.Array, position: jax.Array) -> jax.Array:
  hidden = model.hidden_states(tokens)  # [B, L, D]
  return model.logits(jax.lax.dynamic_slice_in_dim(hidden, position, 1, axis=1))[:, 0]


@nnx.jit(static_argnames=("steps",))
def recompute_decode(model: Transformer, prompt: jax.Array, steps: int) -> jax.Array:
  """[B, steps] greedy tokens, each from a full forward over the buffer (no cache)."""
  b, p = prompt.shape
  buf = jnp.zeros((b, p + steps), jnp.int32).at[:, :p].set(prompt)

  def body(i, buf):
    token = jnp.argmax(_last_logits(model, buf, p + i - 1), axis=-1).astype(jnp.int32)
    return jax.lax.dynamic_update_slice_in_dim(buf, token[:, None], p + i, axis=1)

  return jax.lax.fori_loop(0, steps, body, buf)[:, p:]


@nnx.jit
def _forward_last(model: Transformer, tokens: jax.Array) -> jax.Array:
  return jnp.argmax(_last_logits(model, tokens, tokens.shape[1] - 1), axis=-1)


def bench_decode(model_config, *, image_tokens: int = 256, prompt_len: int = 32,
                 batch_size: int = 8, repeats: int = 3, probes: int = 6, seed: int = 0,
                 log=print) -> dict:
  kwargs = dict(model_config)
  kwargs["max_len"] = max(int(kwargs.get("max_len", 0)), prompt_len + image_tokens)
  model = nnx.jit(lambda: Transformer(**kwargs, rngs=nnx.Rngs(seed)))()
  prompt = jax.random.randint(jax.random.key(seed), (batch_size, prompt_len), 0,
                              int(kwargs["vocab_size"]), jnp.int32)
  key = jax.random.key(seed + 1)

  def cached():
    return sample(model, prompt, image_tokens, key, temperature=0.0)

  def recompute():
    return recompute_decode(model, prompt, image_tokens)

  t = time.perf_counter()
  first_cached = _timed(cached)[1]
  first_recompute = _timed(recompute)[1]
  log(f"compiled both decoders in {time.perf_counter() - t:.1f}s")
  times = {"cached": [], "recompute": []}
  for r in range(repeats):
    for name, fn in (("cached", cached), ("recompute", recompute)):
      times[name].append(_timed(fn)[0])
    log(f"repeat {r}: cached {times['cached'][-1] * 1e3:.0f} ms, "
        f"recompute {times['recompute'][-1] * 1e3:.0f} ms")
  cached_s = statistics.median(times["cached"])
  recompute_s = statistics.median(times["recompute"])

  # The cheapest cache-less decoder: forward over exactly the prefix at each step.
  lengths = np.unique(np.linspace(prompt_len, prompt_len + image_tokens - 1, probes).astype(int))
  forward_s = []
  for length in lengths:
    tokens = jnp.zeros((batch_size, int(length)), jnp.int32)
    _timed(_forward_last, model, tokens)  # compile
    forward_s.append(statistics.median(_timed(_forward_last, model, tokens)[0]
                                       for _ in range(repeats)))
  steps = np.arange(prompt_len, prompt_len + image_tokens)
  prefix_s = float(np.interp(steps, lengths, forward_s).sum())
  return {
      "batch_size": batch_size, "prompt_len": prompt_len, "image_tokens": image_tokens,
      # Microsecond resolution: a tiny config decodes in a few ms, and the ratios
      # below must be recoverable from these fields.
      "cached_ms": round(cached_s * 1e3, 3),
      "recompute_ms": round(recompute_s * 1e3, 3),
      "prefix_recompute_ms_estimate": round(prefix_s * 1e3, 3),
      # The conservative figure: against the faster of the two cache-less decoders.
      "speedup": round(min(recompute_s, prefix_s) / cached_s, 3),
      "speedup_vs_recompute": round(recompute_s / cached_s, 3),
      "speedup_vs_prefix_estimate": round(prefix_s / cached_s, 3),
      "cached_tokens_per_s": round(batch_size * image_tokens / cached_s, 1),
      "tokens_agree": float(np.mean(first_cached == first_recompute)),
      "forward_ms_at_lengths": {int(n): round(s * 1e3, 2) for n, s in zip(lengths, forward_s)},
  }
