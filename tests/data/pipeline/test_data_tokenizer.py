"""SentencePiece: exact round-trips, case folding, byte fallback, save/load, training from a file."""

from __future__ import annotations

import pickle

import pytest

from unified_mm.data.sources.shapes_source import shapes_corpus
from unified_mm.data.text_tokenizer import load_tokenizer, read_corpus, train_tokenizer

UNUSUAL = [
    "two red circles left of a blue square",
    "",
    " ",
    "  leading and trailing  ",
    "double  spaces\tand a tab\nand a newline\r\n",
    "naïve café, Größe, 日本語のテキスト, emoji 🙂👍🏽",
    "\x00\x01 control bytes \x7f",
    "UPPER lower MiXeD 0123456789 3.14159 -42",
    "punctuation: !@#$%^&*()_+-=[]{}|;':\",./<>?`~",
    "zero\u200bwidth and combining e\u0301 and NFKC-sensitive ﬁ ① Ａ",
]


@pytest.fixture(scope="module")
def exact_tokenizer():
  """The shapes corpus without folding: what any corpus gets by default."""
  return train_tokenizer(shapes_corpus(), 512)


@pytest.mark.parametrize("text", UNUSUAL)
def test_round_trip_exact(exact_tokenizer, text):
  ids = exact_tokenizer.encode(text)
  assert exact_tokenizer.decode(ids) == text
  assert ((ids >= 0) & (ids < exact_tokenizer.vocab_size)).all()


@pytest.mark.parametrize("text", UNUSUAL)
def test_folded_round_trip_is_exact_on_folded_text(tokenizer, text):
  folded = tokenizer.decode(tokenizer.encode(text))
  assert tokenizer.decode(tokenizer.encode(folded)) == folded
  assert not any("A" <= c <= "Z" for c in folded)


def test_shapes_tokenizer_reads_capitals_and_spacing_as_the_corpus_writes(tokenizer):
  want = tokenizer.encode("a green star left of two red circles").tolist()
  for typed in ("A Green star left of two red circles", "A GREEN STAR LEFT OF TWO RED CIRCLES",
                "  a green  star left of\ttwo red circles "):
    assert tokenizer.encode(typed).tolist() == want, typed


def test_folding_costs_the_shapes_corpus_nothing(tokenizer, exact_tokenizer):
  # The corpus is already lower case and single-spaced: the same pieces, the same
  # ids, so folding changes no training document.
  assert tokenizer.vocab_size == exact_tokenizer.vocab_size
  for line in shapes_corpus(300):
    assert tokenizer.encode(line).tolist() == exact_tokenizer.encode(line).tolist(), line


def test_unseen_characters_use_bytes_not_unk(tokenizer):
  ids = tokenizer.encode("日本語🙂")
  assert 0 not in ids.tolist()  # id 0 is <unk>
  assert len(ids) >= len("日本語🙂".encode())  # one piece per byte


def test_shapes_words_are_single_pieces(tokenizer):
  # Whole words of the closed shapes vocabulary should not be split to bytes.
  assert len(tokenizer.encode("a red circle")) <= 3
  assert len(tokenizer.encode("twenty")) <= 2


def test_save_load_and_pickle(tokenizer, tmp_path):
  tokenizer.save(tmp_path)
  loaded = load_tokenizer(tmp_path)
  clone = pickle.loads(pickle.dumps(tokenizer))
  for text in UNUSUAL:
    assert loaded.encode(text).tolist() == tokenizer.encode(text).tolist()
    assert clone.encode(text).tolist() == tokenizer.encode(text).tolist()


def test_train_from_any_text_file(tmp_path):
  corpus = tmp_path / "corpus.txt"
  corpus.write_text("\n".join(f"the quick brown fox {i} jumps over the lazy dog" for i in range(200))
                    + "\n", encoding="utf-8")
  tok = train_tokenizer(read_corpus(corpus), vocab_size=300)
  assert 256 < tok.vocab_size <= 300
  assert len(tok.encode("the quick brown fox")) < len("the quick brown fox")
  for text in UNUSUAL:
    assert tok.decode(tok.encode(text)) == text


def test_default_tokenizer_is_deterministic(tokenizer):
  # Every host (and every later eval) trains its own when no tokenizer_dir is
  # given; they must agree id for id.
  assert train_tokenizer(shapes_corpus(), 512, fold_case=True).model_proto == tokenizer.model_proto
