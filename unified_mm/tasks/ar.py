"""The `ar` stage: the unified transformer on interleaved shapes documents.

Where stages 1 -> 2 meet: scenes from the shapes world go through the Grain
pipeline (unified_mm.data.pipeline) and become caption->image, image->caption
and edit documents whose image codes come from the trained image tokenizer
(`data.image_tokenizer_dir`) or, when that is empty, from the parameter-free
stand-in codes (enough to smoke-test the stage without stage 1).
"""

from __future__ import annotations

from collections.abc import Iterator

import jax
import ml_collections
import numpy as np
from flax import nnx

from unified_mm.config.loading import ConfigError
from unified_mm.data.pipeline import load_or_train_tokenizer, make_train_iterator
from unified_mm.data.stand_in_codes import StandInCodes
from unified_mm.data.vocab import Vocab
from unified_mm.models.transformer.loss import lm_loss
from unified_mm.models.transformer.model import Transformer

BATCH_KEYS = ("tokens", "targets", "positions", "segment_ids", "loss_mask", "modality")
EVAL_SEED_OFFSET = 10_007  # held-out scenes: a seed the training stream never uses


def make_codes_fn(data: ml_collections.ConfigDict):
  """The image tokenizer's `codes_fn` for the pipeline, and its codebook size."""
  if data.image_tokenizer_dir:
    from unified_mm.models.image_tokenizer.codes import TokenizerCodes  # noqa: PLC0415
    codes = TokenizerCodes(data.image_tokenizer_dir)
    return codes, codes.codebook_size
  stand_in = StandInCodes(grid=data.stand_in_grid, levels=data.stand_in_levels)
  return stand_in, stand_in.num_codes


class AREvaluator:
  """Per-modality loss and accuracy on held-out shapes documents."""

  name = "ar"

  def __init__(self, task: ARTask, num_batches: int, batch_size: int):
    data = ml_collections.ConfigDict(task.config.data)
    data.seed = int(data.seed) + EVAL_SEED_OFFSET
    with make_train_iterator(data, task.vocab, task.codes_fn, 0, 1, batch_size,
                             tokenizer=task.tokenizer) as it:
      self.batches = [next(it) for _ in range(num_batches)]
    self._metrics = jax.jit(lambda model, batch: task.loss(model, batch, jax.random.key(0))[1])

  def run(self, model: nnx.Module) -> Iterator[tuple[str, float]]:
    sums: dict[str, float] = {}
    for batch in self.batches:
      for k, v in self._metrics(model, batch).items():
        sums[k] = sums.get(k, 0.0) + float(v)
    for k in sorted(sums):
      if not k.endswith("tokens"):
        yield k, sums[k] / len(self.batches)


class ARTask:
  name = "ar"

  def __init__(self, config):
    self.config = config
    data = config.data
    self.tokenizer = load_or_train_tokenizer(data)
    self.codes_fn, num_codes = make_codes_fn(data)
    self.vocab = Vocab(int(data.text_vocab_size), int(num_codes))
    if self.vocab.size > config.model.vocab_size:
      raise ConfigError(
          f"model.vocab_size={config.model.vocab_size}: smaller than the data vocabulary "
          f"({self.vocab.size} = data.text_vocab_size + image codes {num_codes} + specials)")
    self.z_loss = float(config.loss.get("z_loss", 0.0))

  def build_model(self, rngs: nnx.Rngs) -> Transformer:
    return Transformer(**self.config.model, rngs=rngs)

  def loss(self, model: Transformer, batch, rng: jax.Array):
    del rng  # no dropout; caption dropout happens in the data
    logits = model(batch["tokens"], batch["positions"], batch["segment_ids"])
    return lm_loss(logits, batch["targets"], batch["loss_mask"], batch["modality"],
                   z_loss=self.z_loss)

  def batch_axes(self) -> dict[str, tuple[str | None, ...]]:
    return {k: ("batch", "length") for k in BATCH_KEYS}

  def make_data(self, process_index: int, process_count: int, local_batch_size: int):
    return make_train_iterator(self.config.data, self.vocab, self.codes_fn, process_index,
                               process_count, local_batch_size, tokenizer=self.tokenizer)

  def evaluators(self) -> list[AREvaluator]:
    n = int(self.config.train.get("eval_batches", 0))
    if not n or not self.config.train.eval_every_steps:
      return []
    return [AREvaluator(self, n, min(int(self.config.train.batch_size), 16))]

  def tokens_in(self, batch) -> int:
    return int(np.sum(batch["segment_ids"] > 0))


def make_task(config) -> ARTask:
  return ARTask(config)
