"""Next-token cross-entropy with optional z-loss, and per-modality metrics.

Targets are already shifted (target[t] is the token after tokens[t]); the
modality of each target (unified_mm.data.vocab TEXT / IMAGE / SPECIAL) splits
the loss and accuracy so text and image-code learning can be read apart.

`modality_weights` reweights the training loss per target modality. A
caption is ~15 text tokens against an image's 256 codes, so under a plain
token mean the image codes own almost all of the gradient and reading images
into text is learned last; a text weight gives captioning its share. The
reported `ce` and per-modality losses stay unweighted, comparable across runs.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from unified_mm.data.vocab import IMAGE, LAYOUT, SPECIAL, TEXT

MODALITIES = {"text": TEXT, "image": IMAGE, "special": SPECIAL, "layout": LAYOUT}


def token_losses(logits: jax.Array, targets: jax.Array
                 ) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Per-token cross-entropy, log-partition and correctness (argmax == target), [B, T].

  The target logit is a masked sum rather than a gather: its gradient is then
  elementwise (a gather's is a scatter, slow on CPU) and the mask fuses away.
  """
  logits = logits.astype(jnp.float32)
  log_z = jax.nn.logsumexp(logits, axis=-1)
  hit = targets[..., None] == jnp.arange(logits.shape[-1], dtype=targets.dtype)
  target_logit = jnp.sum(jnp.where(hit, logits, 0.0), axis=-1)
  correct = target_logit >= jax.lax.stop_gradient(jnp.max(logits, axis=-1))
  return log_z - target_logit, log_z, correct.astype(jnp.float32)


def lm_loss(logits: jax.Array, targets: jax.Array, loss_mask: jax.Array,
            modality: jax.Array | None = None, z_loss: float = 0.0,
            modality_weights: dict[str, float] | None = None
            ) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Mean CE (+ z_loss * mean log_z^2) over `loss_mask`; metrics per modality.

  logits [B, T, V]; targets, loss_mask, modality [B, T]. With
  `modality_weights` ({"text": w, ...}; missing names weigh 1) the training
  loss is the weighted mean of CE over the masked tokens.
  """
  ce, log_z, correct = token_losses(logits, targets)
  mask = loss_mask.astype(jnp.float32)
  count = jnp.maximum(mask.sum(), 1.0)
  ce_mean = (ce * mask).sum() / count
  z_mean = (jnp.square(log_z) * mask).sum() / count
  weight = mask  # the training mean: the mask, scaled per target modality
  for name, w in (modality_weights or {}).items():
    if float(w) != 1.0:
      if modality is None:
        raise ValueError("modality_weights needs the per-token modality")
      weight = weight * jnp.where(modality == MODALITIES[name], float(w), 1.0)
  train_ce = ce_mean if weight is mask else (ce * weight).sum() / jnp.maximum(weight.sum(), 1e-6)
  loss = train_ce + z_loss * z_mean
  metrics = {
      "loss": loss,
      "ce": ce_mean,
      "z_loss": z_mean,
      "accuracy": (correct * mask).sum() / count,
      "tokens": mask.sum(),
  }
  if modality is not None:
    for name, mod_id in MODALITIES.items():
      m = mask * (modality == mod_id)
      n = m.sum()
      denom = jnp.maximum(n, 1.0)
      metrics[f"{name}/loss"] = (ce * m).sum() / denom
      metrics[f"{name}/accuracy"] = (correct * m).sum() / denom
      metrics[f"{name}/tokens"] = n
  return loss, metrics
