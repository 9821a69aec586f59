"""SentencePiece text tokenizer: training, loading, exact round-trips.

By default normalisation is the identity and whitespace is kept as written, so
`decode(encode(s)) == s` for every string; characters never seen in training
fall back to their UTF-8 bytes instead of becoming <unk>. A tokenizer trained
with `fold_case` reads text the way a lower-case, single-spaced corpus (the
shapes world's) writes it: "A Green  STAR" and "a green star" are the same
ids, so a prompt typed with capitals is not one in pieces training never
showed. SentencePiece's own BOS/EOS/PAD are disabled: those specials live in
the unified vocabulary (`unified_mm.data.vocab`), after the text and
image-code ranges.
"""

from __future__ import annotations

import io
import pathlib
from collections.abc import Iterable, Iterator

import numpy as np
import sentencepiece as spm

MODEL_FILE = "text_tokenizer.model"


class TextTokenizer:
  """Text <-> ids; pickles as the serialised model so Grain workers can load it."""

  def __init__(self, model_proto: bytes):
    self._proto = model_proto
    self._sp = spm.SentencePieceProcessor(model_proto=model_proto)

  def __getstate__(self):
    return {"proto": self._proto}

  def __setstate__(self, state):
    self.__init__(state["proto"])

  @property
  def vocab_size(self) -> int:
    return self._sp.get_piece_size()

  @property
  def model_proto(self) -> bytes:
    return self._proto

  def encode(self, text: str) -> np.ndarray:
    return np.asarray(self._sp.encode(text), np.int32)

  def pieces(self, text: str) -> list[str]:
    """The pieces `text` splits into ("<0x..>" for bytes of unseen characters)."""
    return list(self._sp.encode(text, out_type=str))

  def encode_batch(self, texts: list[str]) -> list[np.ndarray]:
    return [np.asarray(ids, np.int32) for ids in self._sp.encode(texts)]

  def decode(self, ids) -> str:
    return self._sp.decode([int(i) for i in ids])

  def save(self, directory: str | pathlib.Path) -> pathlib.Path:
    path = pathlib.Path(directory) / MODEL_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(self._proto)
    return path


def train_tokenizer(sentences: Iterable[str], vocab_size: int = 512,
                    model_type: str = "bpe", fold_case: bool = False) -> TextTokenizer:
  """Trains on `sentences` in memory.

  The requested size is a ceiling (`hard_vocab_limit=False`): a small closed
  world like the shapes captions has fewer merges to offer than a real corpus.
  `fold_case`: SentencePiece's own NFKC + case-folding rule and collapsed
  whitespace, stored in the model, so every reader of it (data, generate, RL)
  folds alike; round trips are then exact for text already in that form.
  """
  model = io.BytesIO()
  spm.SentencePieceTrainer.train(
      sentence_iterator=iter(list(sentences)),
      model_writer=model,
      vocab_size=vocab_size,
      model_type=model_type,
      normalization_rule_name="nmt_nfkc_cf" if fold_case else "identity",
      remove_extra_whitespaces=fold_case,
      split_digits=True,
      byte_fallback=True,
      allow_whitespace_only_pieces=True,
      character_coverage=1.0,
      hard_vocab_limit=False,
      unk_id=0, bos_id=-1, eos_id=-1, pad_id=-1,
      num_threads=1,
      minloglevel=2,
  )
  return TextTokenizer(model.getvalue())


def load_tokenizer(directory: str | pathlib.Path) -> TextTokenizer:
  path = pathlib.Path(directory)
  if path.is_dir():
    path = path / MODEL_FILE
  return TextTokenizer(path.read_bytes())


def read_corpus(path: str | pathlib.Path) -> Iterator[str]:
  """One training sentence per non-empty line of a UTF-8 text file."""
  with open(path, encoding="utf-8") as f:
    for line in f:
      line = line.rstrip("\n")
      if line:
        yield line
