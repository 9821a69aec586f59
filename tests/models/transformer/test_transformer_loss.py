"""Cross-entropy, z-loss and per-modality metrics on hand-built batches."""

import jax.numpy as jnp
import numpy as np
import pytest

from unified_mm.data.vocab import IMAGE, SPECIAL, TEXT
from unified_mm.models.transformer.loss import lm_loss


def _batch():
  # 4 tokens over a vocab of 3; the last position is masked out.
  logits = jnp.log(jnp.asarray([[[0.7, 0.2, 0.1], [0.1, 0.8, 0.1],
                                 [0.5, 0.25, 0.25], [0.2, 0.2, 0.6]]]))
  targets = jnp.asarray([[0, 1, 2, 2]])
  mask = jnp.asarray([[1, 1, 1, 0]])
  modality = jnp.asarray([[TEXT, IMAGE, IMAGE, SPECIAL]])
  return logits, targets, mask, modality


def test_loss_and_per_modality_metrics():
  logits, targets, mask, modality = _batch()
  loss, m = lm_loss(logits, targets, mask, modality)
  ce = -np.log([0.7, 0.8, 0.25])
  assert float(loss) == pytest.approx(ce.mean(), rel=1e-5)
  assert float(m["accuracy"]) == pytest.approx(2 / 3)
  assert float(m["text/loss"]) == pytest.approx(ce[0], rel=1e-5)
  assert float(m["text/accuracy"]) == 1.0 and float(m["text/tokens"]) == 1
  assert float(m["image/loss"]) == pytest.approx(ce[1:].mean(), rel=1e-5)
  assert float(m["image/accuracy"]) == 0.5 and float(m["image/tokens"]) == 2
  assert float(m["special/tokens"]) == 0 and float(m["special/loss"]) == 0.0  # masked out
  assert float(m["tokens"]) == 3


def test_z_loss_penalises_the_log_partition_only():
  logits, targets, mask, modality = _batch()
  shifted = logits + 3.0  # same softmax, log Z grows by 3
  base, m0 = lm_loss(shifted, targets, mask, modality, z_loss=0.0)
  with_z, m1 = lm_loss(shifted, targets, mask, modality, z_loss=1e-2)
  assert float(base) == pytest.approx(float(lm_loss(logits, targets, mask)[0]), rel=1e-5)
  assert float(m1["z_loss"]) == pytest.approx(9.0, rel=1e-4)  # log Z = 3 on every token
  assert float(with_z - base) == pytest.approx(1e-2 * 9.0, rel=1e-4)
  assert float(m0["ce"]) == pytest.approx(float(m1["ce"]))


def test_modality_weights_reweight_the_training_loss_not_the_metrics():
  logits, targets, mask, modality = _batch()
  ce = -np.log([0.7, 0.8, 0.25])
  loss, m = lm_loss(logits, targets, mask, modality, modality_weights={"text": 4.0})
  assert float(loss) == pytest.approx((4 * ce[0] + ce[1] + ce[2]) / 6, rel=1e-5)
  assert float(m["ce"]) == pytest.approx(ce.mean(), rel=1e-5)  # reported unweighted
  unit, _ = lm_loss(logits, targets, mask, modality, modality_weights={"text": 1.0})
  assert float(unit) == pytest.approx(ce.mean(), rel=1e-5)
  # A zero weight drops that modality from the objective entirely.
  no_image, _ = lm_loss(logits, targets, mask, modality, modality_weights={"image": 0.0})
  assert float(no_image) == pytest.approx(ce[0], rel=1e-5)
