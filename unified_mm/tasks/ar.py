"""The `ar` stage: the unified transformer on interleaved shapes documents.

Where stages 1 -> 2 meet: scenes from the shapes world go through the Grain
pipeline (unified_mm.data.pipeline) and become caption->image, image->caption
and edit documents whose image codes come from the trained image tokenizer
(`data.image_tokenizer_dir`) or, when that is empty, from the parameter-free
stand-in codes (enough to smoke-test the stage without stage 1).
"""

from __future__ import annotations

import ml_collections

from unified_mm.config.loading import ConfigError
from unified_mm.data.pipeline import load_or_train_tokenizer, make_train_iterator
from unified_mm.data.stand_in_codes import StandInCodes
from unified_mm.data.vocab import Vocab
from unified_mm.tasks.held_out import HeldOutLoss
from unified_mm.tasks.transformer_task import TransformerTask

EVAL_SEED_OFFSET = 10_007  # held-out scenes: a seed the training stream never uses


def make_codes_fn(data: ml_collections.ConfigDict):
  """The image tokenizer's `codes_fn` for the pipeline, and its codebook size."""
  if data.image_tokenizer_dir:
    from unified_mm.models.image_tokenizer.codes import TokenizerCodes  # noqa: PLC0415
    codes = TokenizerCodes(data.image_tokenizer_dir)
    return codes, codes.codebook_size
  stand_in = StandInCodes(grid=data.stand_in_grid, levels=data.stand_in_levels)
  return stand_in, stand_in.num_codes


class ARTask(TransformerTask):
  name = "ar"

  def __init__(self, config, make_evaluators=None):
    super().__init__(config, make_evaluators)
    data = config.data
    self.tokenizer = load_or_train_tokenizer(data)
    self.codes_fn, num_codes = make_codes_fn(data)
    self.vocab = Vocab(int(data.text_vocab_size), int(num_codes),
                       layout_bins=int(data.get("layout_bins", 0)))
    if self.vocab.size > config.model.vocab_size:
      raise ConfigError(
          f"model.vocab_size={config.model.vocab_size}: smaller than the data vocabulary "
          f"({self.vocab.size} = data.text_vocab_size + image codes {num_codes} + specials)")
    self._check_code_digits(config.model)

  def _check_code_digits(self, model: ml_collections.ConfigDict) -> None:
    """Digit-shared code rows (models/transformer/code_digits.py) must spell the
    image codes' own digits, at the ids the vocabulary gives the codes."""
    levels = tuple(int(l) for l in (model.get("code_levels", None) or ()))
    if not levels:
      return
    actual = tuple(self.codes_fn.fsq_levels)
    if isinstance(self.codes_fn, StandInCodes):
      # Smoke runs without stage 1: the preset's levels are the tokenizer's, not these.
      model.code_levels, model.code_offset = actual, self.vocab.image_offset
      return
    if levels != actual:
      raise ConfigError(f"model.code_levels={levels}: the image codes' levels are {actual} "
                        f"(the tokenizer's fsq_levels)")
    if int(model.get("code_offset", 0)) != self.vocab.image_offset:
      raise ConfigError(f"model.code_offset={model.get('code_offset', 0)}: image codes start "
                        f"at id {self.vocab.image_offset} (= data.text_vocab_size)")

  def make_data(self, process_index: int, process_count: int, local_batch_size: int):
    return make_train_iterator(self.config.data, self.vocab, self.codes_fn, process_index,
                               process_count, local_batch_size, tokenizer=self.tokenizer)

  def evaluators(self) -> list:
    """Per-modality loss and accuracy on held-out shapes documents, then those
    handed in (`make_evaluators(self)`: greedy-caption accuracy on held-out 1-2
    object scenes with `eval.caption_scenes`)."""
    n = int(self.config.train.get("eval_batches", 0))
    if not n or not self.config.train.eval_every_steps:
      return []
    data = ml_collections.ConfigDict(self.config.data)
    data.seed = int(data.seed) + EVAL_SEED_OFFSET
    with make_train_iterator(data, self.vocab, self.codes_fn, 0, 1, self.eval_batch_size(),
                             tokenizer=self.tokenizer) as it:
      evaluators = [HeldOutLoss("ar", self.loss, [next(it) for _ in range(n)])]
    if self.make_evaluators:
      evaluators += self.make_evaluators(self)
    return evaluators


def make_task(config, make_evaluators=None) -> ARTask:
  return ARTask(config, make_evaluators)
