"""AdamW with warmup + decay, clipping, a weight-decay mask, and the EMA update.

Gradient accumulation is not an optimiser wrapper here: the step scans over
micro-batches (see `step.py`), so the optimiser sees one update per step and
its step count equals the trainer's.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import jax
import optax

# A parameter is an embedding table when one of its name parts is an
# embedding-like word ("embedding", "embedder", "tok_embed", "pos_embed", ...).
_EMBEDDING_PART = re.compile(r"(^|_)(embed|embedding|embedder|embeddings)$")


def is_embedding(name: str) -> bool:
  return any(_EMBEDDING_PART.search(part) for part in name.split("."))


def stacked_dims(name: str) -> int:
  """1 if `name` lives in a scanned layer stack (models/layer_stack.py): the
  attribute `layers` not followed by an index (`layers.attn_norm.scale` is
  [L, D]; an unrolled list's names index it: `layers.0.…`), else 0."""
  parts = name.split(".")
  return int(any(p == "layers" and not (i + 1 < len(parts) and parts[i + 1].isdigit())
                 for i, p in enumerate(parts)))


def decay_mask(names: Iterable[str], ndims: dict[str, int], decay_embeddings: bool) -> dict[str, bool]:
  """True where weight decay applies: matrices, never norms/biases (ndim < 2,
  not counting a scanned stack's layer axis), embeddings only if asked."""
  mask = {}
  for name in names:
    decays = ndims[name] - stacked_dims(name) >= 2
    if decays and is_embedding(name):
      decays = decay_embeddings
    mask[name] = decays
  return mask


def make_schedule(optim, total_steps: int) -> optax.Schedule:
  warmup = max(0, int(optim.warmup_steps))
  peak, floor = optim.lr, optim.lr * optim.min_lr_ratio
  decay_steps = max(1, total_steps - warmup)
  if optim.decay == "cosine":
    decay = optax.cosine_decay_schedule(peak, decay_steps, alpha=optim.min_lr_ratio)
  elif optim.decay == "linear":
    decay = optax.linear_schedule(peak, floor, decay_steps)
  elif optim.decay == "constant":
    decay = optax.constant_schedule(peak)
  else:
    from unified_mm.config.loading import ConfigError
    raise ConfigError(f"optim.decay={optim.decay!r}: expected cosine, linear or constant")
  if not warmup:
    return decay
  # Warmup from peak/warmup (not 0) so the very first step already learns.
  ramp = optax.linear_schedule(peak / warmup, peak, warmup)
  return optax.join_schedules([ramp, decay], [warmup])


def make_optimizer(optim, total_steps: int, params_abstract) -> tuple[optax.GradientTransformation, optax.Schedule]:
  schedule = make_schedule(optim, total_steps)
  mask = decay_mask(params_abstract, {k: v.ndim for k, v in params_abstract.items()},
                    optim.decay_embeddings)
  parts = []
  if optim.clip_norm and optim.clip_norm > 0:
    parts.append(optax.clip_by_global_norm(optim.clip_norm))
  parts.append(optax.adamw(schedule, b1=optim.b1, b2=optim.b2, eps=optim.eps,
                           weight_decay=optim.weight_decay, mask=mask))
  return optax.chain(*parts), schedule


def ema_update(ema, params, decay: float):
  return jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, ema, params)
