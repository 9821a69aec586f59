"""What every stage that trains the unified transformer shares: the model from
`config.model`, next-token loss with per-modality metrics, and packed-row batches."""

from __future__ import annotations

import jax
import numpy as np
from flax import nnx

from unified_mm.config.loading import ConfigError
from unified_mm.models.transformer.loss import MODALITIES, lm_loss
from unified_mm.models.transformer.model import Transformer

BATCH_KEYS = ("tokens", "targets", "positions", "segment_ids", "loss_mask", "modality")


class TransformerTask:
  """Base of the `lm` and `ar` tasks; subclasses supply data and evaluators."""

  name = "transformer"

  def __init__(self, config, make_evaluators=None):
    self.config = config
    self.make_evaluators = make_evaluators  # (task) -> evaluators beyond the held-out loss
    self.z_loss = float(config.loss.get("z_loss", 0.0))
    self.modality_weights = dict(config.loss.get("modality_weights", None) or {})
    for name, weight in self.modality_weights.items():
      if name not in MODALITIES:
        raise ConfigError(f"loss.modality_weights.{name}: unknown modality; expected one of "
                          f"{sorted(MODALITIES)}")
      if not float(weight) >= 0:
        raise ConfigError(f"loss.modality_weights.{name}={weight}: must be >= 0")

  def build_model(self, rngs: nnx.Rngs) -> Transformer:
    return Transformer(**self.config.model, rngs=rngs)

  def loss(self, model: Transformer, batch, rng: jax.Array):
    del rng  # no dropout; caption dropout (for CFG) happens in the data
    logits = model(batch["tokens"], batch["positions"], batch["segment_ids"])
    return lm_loss(logits, batch["targets"], batch["loss_mask"], batch["modality"],
                   z_loss=self.z_loss, modality_weights=self.modality_weights)

  def batch_axes(self) -> dict[str, tuple[str | None, ...]]:
    return {k: ("batch", "length") for k in BATCH_KEYS}

  def eval_batch_size(self) -> int:
    return min(int(self.config.train.batch_size), 16)

  def tokens_in(self, batch) -> int:
    """Real (non-padding) tokens: packing leaves segment id 0 on padding."""
    return int(np.sum(np.asarray(batch["segment_ids"]) > 0))
