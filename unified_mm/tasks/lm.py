"""The `lm` stage: the unified transformer on a built-in synthetic token stream.

No data has to exist: documents come from a small random grammar fixed by
`data.seed`, so the loss falls far below uniform within a few hundred steps:

  text           BOS  w1 .. wn  EOS               (Markov chain, `branching` successors)
  caption→image  BOS  caption  BOI  c1 .. cG  EOI  EOS
                 (caption: Markov text; c1 depends on the caption's last word;
                  codes: a Markov chain over image codes; G = data.grid_count)
  copy           BOS  u1 .. un  SEP  u1 .. un  EOS  (uniform random span, copied)

Rows are packed: every row is filled with whole documents (the last one cut at
the row end), each with its own segment id and positions starting at 0.
A row is a pure function of (seed, split, global row index), so the iterator's
state is just its step, resume is exact, and hosts take disjoint rows.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from unified_mm.config.loading import ConfigError
from unified_mm.data.step_indexed import StepIndexedIterator
from unified_mm.data.vocab import Vocab
from unified_mm.models.transformer.flops import train_flops_per_step
from unified_mm.tasks.held_out import HeldOutLoss
from unified_mm.tasks.transformer_task import BATCH_KEYS, TransformerTask

DOC_KINDS = ("text", "caption_image", "copy")
TRAIN_SPLIT, EVAL_SPLIT = 0, 1


class SyntheticGrammar:
  """The fixed random grammar: successor tables drawn once from `seed`."""

  def __init__(self, vocab: Vocab, *, seed: int, grid_count: int, branching: int = 4,
               mix=(0.4, 0.4, 0.2)):
    self.vocab, self.seed, self.grid_count, self.branching = vocab, seed, grid_count, branching
    self.mix = np.asarray(mix, np.float64) / np.sum(mix)
    rng = np.random.default_rng([seed, 7])
    self.text_next = rng.integers(0, vocab.text_size, (vocab.text_size, branching))
    self.code_next = rng.integers(0, vocab.image_codes, (vocab.image_codes, 2))
    self.caption_to_code = rng.integers(0, vocab.image_codes, vocab.text_size)

  def _markov(self, rng, table, start: int, length: int) -> list[int]:
    out, tok = [], start
    for choice in rng.integers(0, table.shape[1], length):
      out.append(tok)
      tok = int(table[tok, choice])
    return out

  def document(self, rng: np.random.Generator) -> np.ndarray:
    v = self.vocab
    kind = DOC_KINDS[rng.choice(len(DOC_KINDS), p=self.mix)]
    if kind == "text":
      words = self._markov(rng, self.text_next, int(rng.integers(v.text_size)),
                           int(rng.integers(8, 49)))
      ids = [v.bos, *words, v.eos]
    elif kind == "caption_image":
      caption = self._markov(rng, self.text_next, int(rng.integers(v.text_size)),
                             int(rng.integers(4, 13)))
      first = int(self.caption_to_code[caption[-1]])
      codes = self._markov(rng, self.code_next, first, self.grid_count)
      ids = [v.bos, *caption, v.boi, *(c + v.image_offset for c in codes), v.eoi, v.eos]
    else:
      span = rng.integers(0, v.text_size, int(rng.integers(4, 13))).tolist()
      ids = [v.bos, *span, v.sep, *span, v.eos]
    return np.asarray(ids, np.int32)

  def row(self, split: int, index: int, seq_len: int) -> dict[str, np.ndarray]:
    """One packed row of `seq_len` (token, target) pairs."""
    rng = np.random.default_rng([self.seed, split, index])
    out = {k: np.zeros(seq_len, np.int32) for k in BATCH_KEYS}
    filled, segment = 0, 0
    while filled < seq_len:
      doc = self.document(rng)
      n = min(len(doc) - 1, seq_len - filled)  # a document of m ids gives m-1 pairs
      segment += 1
      sl = slice(filled, filled + n)
      out["tokens"][sl] = doc[:n]
      out["targets"][sl] = doc[1:n + 1]
      out["positions"][sl] = np.arange(n)
      out["segment_ids"][sl] = segment
      out["loss_mask"][sl] = 1
      filled += n
    out["modality"] = self.vocab.modality(out["targets"])
    return out

  def batch(self, split: int, rows: range, seq_len: int) -> dict[str, np.ndarray]:
    made = [self.row(split, i, seq_len) for i in rows]
    return {k: np.stack([r[k] for r in made]) for k in BATCH_KEYS}


class SyntheticLMIterator(StepIndexedIterator):
  """This host's packed rows of the grammar (see StepIndexedIterator)."""

  def __init__(self, grammar: SyntheticGrammar, seq_len: int, process_index: int,
               process_count: int, local_batch_size: int, split: int = TRAIN_SPLIT):
    super().__init__(process_index, process_count, local_batch_size)
    self.grammar, self.seq_len, self.split = grammar, seq_len, split

  def batch_for(self, rows: range) -> dict[str, np.ndarray]:
    return self.grammar.batch(self.split, rows, self.seq_len)


class LMTask(TransformerTask):
  name = "lm"

  def __init__(self, config, make_evaluators=None):
    super().__init__(config, make_evaluators)
    d = config.data
    self.vocab = Vocab(d.text_size, d.image_codes)
    if self.vocab.size > config.model.vocab_size:
      raise ConfigError(
          f"model.vocab_size={config.model.vocab_size}: smaller than the data vocabulary "
          f"({self.vocab.size} = data.text_size + data.image_codes + specials, padded)")
    self.seq_len = int(d.seq_len)
    self.grammar = SyntheticGrammar(self.vocab, seed=int(d.seed), grid_count=int(d.grid_count),
                                    branching=int(d.branching), mix=tuple(d.mix))

  def make_data(self, process_index: int, process_count: int,
                local_batch_size: int) -> SyntheticLMIterator:
    return SyntheticLMIterator(self.grammar, self.seq_len, process_index, process_count,
                               local_batch_size)

  def evaluators(self) -> list[HeldOutLoss]:
    """Loss and accuracy (overall and per modality) on held-out synthetic rows."""
    n = int(self.config.train.get("eval_batches", 0))
    if not n:
      return []
    it = SyntheticLMIterator(self.grammar, self.seq_len, 0, 1, self.eval_batch_size(),
                             split=EVAL_SPLIT)
    evaluators = [HeldOutLoss("lm", self.loss, [next(it) for _ in range(n)])]
    if self.make_evaluators:
      evaluators += self.make_evaluators(self)
    return evaluators

  def flops_per_step(self, batch_size: int) -> int:
    """Exact train FLOPs (matmuls + attention, fwd + bwd) of one step."""
    return train_flops_per_step(self.config.model, seq_len=self.seq_len, batch_size=batch_size)


def make_task(config, make_evaluators=None) -> LMTask:
  return LMTask(config, make_evaluators)


def uniform_loss(config) -> float:
  """ln(V): the loss of a model that has learned nothing."""
  return float(jnp.log(Vocab(config.data.text_size, config.data.image_codes).size))
