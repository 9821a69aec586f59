"""The unified decoder-only transformer: model, loss, sampling, FLOPs and counts."""

from unified_mm.models.transformer.loss import lm_loss
from unified_mm.models.transformer.model import Transformer
from unified_mm.models.transformer.sampling import ImageSpanConstraint, sample, vocab_range_mask

__all__ = ["ImageSpanConstraint", "Transformer", "lm_loss", "sample", "vocab_range_mask"]
