"""Document layouts, loss masks, caption dropout, skip counting in the map step."""

from __future__ import annotations

import json

import numpy as np

from unified_mm.data import sequences
from unified_mm.data.bad_records import REASONS
from unified_mm.data.documents import RecordToDocument
from unified_mm.data.shapes.scene import Scene
from unified_mm.data.vocab import IMAGE, TEXT


def _codes(n=4):
  return np.arange(n * n).reshape(n, n) % 7


def test_layouts(vocab):
  text = np.array([5, 6, 7], np.int32)
  c = _codes()
  ids = lambda parts: np.concatenate([p for p, _ in parts]).tolist()  # noqa: E731
  img = [vocab.boi, *vocab.codes_to_ids(c.reshape(-1)).tolist(), vocab.eoi]
  assert ids(sequences.caption_to_image(vocab, text, c)) == [vocab.bos, 5, 6, 7, *img, vocab.eos]
  assert ids(sequences.caption_to_image(vocab, None, c)) == [vocab.bos, *img, vocab.eos]
  assert ids(sequences.image_to_caption(vocab, text, c)) == [vocab.bos, *img, 5, 6, 7, vocab.eos]
  assert ids(sequences.edit(vocab, [c, c], [text])) == [
      vocab.bos, *img, 5, 6, 7, vocab.sep, *img, vocab.eos]
  two_turns = sequences.edit(vocab, [c, c, c], [text, text[:1]])
  assert ids(two_turns) == [vocab.bos, *img, 5, 6, 7, vocab.sep, *img, 5, vocab.sep, *img,
                            vocab.eos]
  ex = sequences.to_example(vocab, two_turns, loss_on_prompt=False)
  # Only the two edited images (and EOS) are answers; instructions and the first image are not.
  assert ex["loss_mask"].sum() == 2 * len(img) + 1


def test_loss_on_answer_only(vocab):
  text = np.array([5, 6, 7], np.int32)
  ex = sequences.to_example(vocab, sequences.caption_to_image(vocab, text, _codes()),
                            loss_on_prompt=False)
  # Targets: 5 6 7 BOI codes(16) EOI EOS; the caption carries no loss.
  assert ex["loss_mask"].tolist() == [0, 0, 0] + [1] * 19
  assert (ex["modality"][ex["loss_mask"] == 1] != TEXT).all()
  ex = sequences.to_example(vocab, sequences.image_to_caption(vocab, text, _codes()),
                            loss_on_prompt=False)
  assert ex["loss_mask"].sum() == 4 and (ex["modality"][ex["loss_mask"] == 1] != IMAGE).all()


def _mapper(vocab, tokenizer, codes_fn, **kw):
  return RecordToDocument(vocab=vocab, tokenizer=tokenizer, codes_fn=codes_fn, seed=0,
                          **({"seq_len": 64, "image_size": 16} | kw))


def test_caption_dropout_rate(vocab, tokenizer, codes_fn):
  f = _mapper(vocab, tokenizer, codes_fn, caption_dropout=0.3)
  record = {"image": np.zeros((16, 16, 3), np.uint8), "caption": "a red circle"}
  uncond = [f(i, record)["tokens"][1] == vocab.boi for i in range(400)]
  assert 0.2 < np.mean(uncond) < 0.4
  assert [f(i, record)["tokens"].tolist() for i in range(5)] == \
      [f(i, record)["tokens"].tolist() for i in range(5)]  # a pure function of the index


def test_bad_records_become_counted_empty_documents(vocab, tokenizer, codes_fn):
  f = _mapper(vocab, tokenizer, codes_fn, max_caption_chars=50)
  ok = np.zeros((16, 16, 3), np.uint8)
  cases = {
      "bad_image": {"image": b"nope", "caption": "a"},
      "wrong_shape": {"image": np.zeros((16, 16), np.uint8), "caption": "a"},
      "empty_caption": {"image": ok, "caption": ""},
      "long_caption": {"image": ok, "caption": "y" * 51},
      "too_long": {"image": ok, "caption": "x " * 25},
      "unreadable": {"error": "unreadable"},
      "bad_record": {"image": ok, "caption": b"\xff\xfe not utf-8"},
  }
  assert sorted(cases) == sorted(REASONS)
  for reason, record in cases.items():
    ex = f(0, record)
    assert len(ex["tokens"]) == 0, reason
    assert ex["counts"].tolist() == [int(r == reason) for r in ("kept", *REASONS)], reason
  good = f(0, {"image": ok, "caption": "a red circle"})
  assert good["counts"][0] == 1 and good["counts"][1:].sum() == 0 and len(good["tokens"]) > 0


def test_config_errors_name_the_key():
  import pytest

  from unified_mm.config.loading import ConfigError
  from unified_mm.data.config import default_data_config, validate_data_config
  validate_data_config(default_data_config())
  for overrides, key in [(dict(source="parquet"), "data.source"),
                         (dict(source="wds"), "data.path"),
                         (dict(doc_ratios=dict(captions=1.0)), "data.doc_ratios"),
                         (dict(caption_dropout=1.5), "data.caption_dropout"),
                         (dict(compound_prob=-0.1), "data.compound_prob"),
                         (dict(digit_prob=2.0), "data.digit_prob"),
                         (dict(stop_prob=-1.0), "data.stop_prob"),
                         (dict(prompt_size_weights=(1.0, -1.0, 1.0)), "data.prompt_size_weights"),
                         (dict(cell_align=-8), "data.cell_align"),
                         (dict(seq_len=0), "data.seq_len")]:
    with pytest.raises(ConfigError, match=key):
      validate_data_config(default_data_config(**overrides))


def test_parse_inverts_the_layouts(vocab):
  text, c = np.array([5, 6, 7], np.int32), _codes()
  flat = c.reshape(-1)

  def parsed(parts):
    ids = np.concatenate([p for p, _ in parts])
    return [(k, v.tolist()) for k, v in sequences.parse(vocab, ids)]

  assert parsed(sequences.caption_to_image(vocab, text, c)) == [
      ("text", [5, 6, 7]), ("image", flat.tolist())]
  assert parsed(sequences.image_to_caption(vocab, text, c)) == [
      ("image", flat.tolist()), ("text", [5, 6, 7])]
  assert parsed(sequences.edit(vocab, [c, c + 1], [text])) == [
      ("image", flat.tolist()), ("text", [5, 6, 7]), ("image", (flat + 1).tolist())]


def test_image_to_caption_documents_describe_the_whole_scene(vocab, tokenizer, codes_fn):
  from unified_mm.data.shapes.captions import parse_caption
  from unified_mm.data.sources.shapes_source import ShapesSource
  from unified_mm.eval.caption_eval import caption_matches
  source = ShapesSource(seed=3, resolution=16, max_objects=4)
  f = _mapper(vocab, tokenizer, codes_fn, seq_len=256,
              doc_ratios={"image_to_caption": 1.0}, loss_on_prompt=False)
  partial = 0
  for i in range(40):
    record = source[i]
    scene = Scene.from_dict(json.loads(record["meta"])["scene"])
    assert caption_matches(record["description"], scene), record["description"]
    partial += not caption_matches(record["caption"], scene)
    (kind, text), = [p for p in sequences.parse(vocab, f(i, record)["tokens"]) if p[0] == "text"]
    assert tokenizer.decode(text) == record["description"]
    assert parse_caption(tokenizer.decode(text)).num_objects == len(scene.objects)
  assert partial > 5  # the random-style captions often state less than the scene
