"""The Grain pipeline end to end: batch format, packing, sharding, resume."""

from __future__ import annotations

import collections
import json

import numpy as np
import pytest
from pipeline_test_data import good_pairs, png_bytes, small_config

from unified_mm.data.config import default_data_config
from unified_mm.data.packing import BATCH_KEYS, unpack_row
from unified_mm.data.pipeline import make_train_iterator
from unified_mm.data.vocab import IMAGE, SPECIAL, TEXT


def shapes_config(**overrides):
  """The default config, shrunk: short rows, small batches."""
  c = default_data_config(seq_len=128)
  c.update(overrides)
  return c


def take(it, n):
  return [next(it) for _ in range(n)]


def assert_batches_equal(a, b):
  assert len(a) == len(b)
  for x, y in zip(a, b):
    assert sorted(x) == sorted(y)
    for k in x:
      assert x[k].dtype == y[k].dtype and x[k].tobytes() == y[k].tobytes(), k


def check_row(row, vocab):
  """Segment boundaries respected: positions restart, targets are next tokens, pads inert."""
  seg = row["segment_ids"]
  used = seg > 0
  n = int(used.sum())
  assert used[:n].all() and not used[n:].any()  # documents first, padding last
  assert (np.diff(seg[:n]) >= 0).all() and (np.diff(seg[:n]) <= 1).all()
  for doc in unpack_row(row):
    t = doc["tokens"]
    assert t[0] == vocab.bos and doc["targets"][-1] == vocab.eos
    np.testing.assert_array_equal(t[1:], doc["targets"][:-1])
    np.testing.assert_array_equal(doc["modality"], vocab.modality(doc["targets"]))
  for s in range(1, int(seg.max()) + 1):
    np.testing.assert_array_equal(row["positions"][seg == s], np.arange((seg == s).sum()))
  pad = ~used
  assert (row["tokens"][pad] == vocab.pad).all() and (row["loss_mask"][pad] == 0).all()
  assert (row["positions"][pad] == 0).all()


def doc_caption(doc, vocab, tokenizer) -> str:
  t = doc["tokens"]
  return tokenizer.decode(t[(t < vocab.text_size)])


def test_batch_format_and_rows(vocab, tokenizer, codes_fn):
  with make_train_iterator(shapes_config(), vocab, codes_fn, 0, 1, 4, tokenizer=tokenizer) as it:
    batches = take(it, 3)
    stats = it.stats()
  for b in batches:
    assert sorted(b) == sorted(BATCH_KEYS)
    for v in b.values():
      assert v.shape == (4, 128) and v.dtype == np.int32
    for r in range(4):
      check_row({k: v[r] for k, v in b.items()}, vocab)
  docs = [d for b in batches for r in range(4) for d in unpack_row({k: v[r] for k, v in b.items()})]
  assert stats["data/examples"] >= len(docs) > 0 and stats["data/skipped"] == 0
  mods = np.concatenate([d["modality"] for d in docs])
  assert {TEXT, IMAGE, SPECIAL} <= set(mods.tolist())
  # All three kinds of document occur: edits carry a SEP, captions after EOI mean image->caption.
  seps = sum(int((d["tokens"] == vocab.sep).any()) for d in docs)
  i2c = sum(int(d["tokens"][1] == vocab.boi and (d["targets"][-2] < vocab.text_size))
            for d in docs)
  assert seps > 0 and i2c > 0


def test_epoch_of_finite_source_has_every_document_once(vocab, tokenizer, codes_fn):
  pairs = good_pairs(40)
  source = [{"image": png_bytes(im), "caption": c} for im, c in pairs]
  cfg = small_config(seq_len=96)
  with make_train_iterator(cfg, vocab, codes_fn, 0, 1, 3, tokenizer=tokenizer, source=source,
                           drop_remainder=False) as it:
    batches = list(it)
  seen = collections.Counter()
  for b in batches:
    for r in range(len(b["tokens"])):
      row = {k: v[r] for k, v in b.items()}
      check_row(row, vocab)
      seen.update(doc_caption(d, vocab, tokenizer) for d in unpack_row(row))
  assert seen == collections.Counter(c for _, c in pairs)
  # Several documents share a row: packing happened.
  assert sum(len(b["tokens"]) for b in batches) < len(pairs)


def test_process_shards_are_disjoint_and_cover(vocab, tokenizer, codes_fn):
  pairs = good_pairs(30)
  source = [{"image": png_bytes(im), "caption": c} for im, c in pairs]
  per_host = []
  for host in range(2):
    with make_train_iterator(small_config(), vocab, codes_fn, host, 2, 2, tokenizer=tokenizer,
                             source=source, drop_remainder=False) as it:
      per_host.append(collections.Counter(
          doc_caption(d, vocab, tokenizer) for b in it for r in range(len(b["tokens"]))
          for d in unpack_row({k: v[r] for k, v in b.items()})))
  assert not set(per_host[0]) & set(per_host[1])
  assert per_host[0] + per_host[1] == collections.Counter(c for _, c in pairs)
  assert abs(sum(per_host[0].values()) - sum(per_host[1].values())) <= 1


def _resume_check(cfg, vocab, tokenizer, codes_fn, k, m):
  with make_train_iterator(cfg, vocab, codes_fn, 0, 1, 2, tokenizer=tokenizer) as it:
    take(it, k)
    state = json.loads(json.dumps(it.get_state()))
    stats = it.stats()
    expected = take(it, m)
  with make_train_iterator(cfg, vocab, codes_fn, 0, 1, 2, tokenizer=tokenizer) as fresh:
    first = take(fresh, 1)[0]
    fresh.set_state(state)
    assert fresh.stats() == stats
    got = take(fresh, m)
  assert_batches_equal(got, expected)
  assert any(a.tobytes() != b.tobytes() for a, b in zip(first.values(), expected[0].values()))
  return stats


def test_resume_is_byte_exact_in_process(vocab, tokenizer, codes_fn):
  stats = _resume_check(shapes_config(), vocab, tokenizer, codes_fn, k=5, m=4)
  assert stats["data/examples"] > 0


@pytest.mark.parametrize("workers", [2])
def test_resume_is_byte_exact_with_worker_processes(vocab, tokenizer, codes_fn, workers):
  _resume_check(shapes_config(num_workers=workers), vocab, tokenizer, codes_fn, k=3, m=3)


def test_same_config_same_batches_and_seed_changes_them(vocab, tokenizer, codes_fn):
  def first_batches(cfg, host=0, hosts=1):
    with make_train_iterator(cfg, vocab, codes_fn, host, hosts, 2, tokenizer=tokenizer) as it:
      return take(it, 2)
  a = first_batches(shapes_config())
  assert_batches_equal(a, first_batches(shapes_config()))
  # No process index given: the JAX process's shard (process 0 of 1 here).
  assert_batches_equal(a, first_batches(shapes_config(), None, None))
  b = first_batches(shapes_config(seed=1))
  assert a[0]["tokens"].tobytes() != b[0]["tokens"].tobytes()


def test_global_batch_from_host_rows(vocab, tokenizer, codes_fn):
  import jax
  from jax.sharding import AxisType

  from unified_mm.data.global_batch import make_global_batch
  mesh = jax.make_mesh((4, 2), ("data", "tensor"), axis_types=(AxisType.Auto,) * 2)
  with make_train_iterator(shapes_config(), vocab, codes_fn, 0, 1, 8, tokenizer=tokenizer) as it:
    batch = next(it)
  g = make_global_batch(batch, mesh)
  assert g["tokens"].shape == (8, 128)
  assert g["tokens"].sharding.spec[0] == "data"
  np.testing.assert_array_equal(np.asarray(g["segment_ids"]), batch["segment_ids"])


def test_finite_shapes_world_ends_after_its_epochs(vocab, tokenizer, codes_fn):
  cfg = shapes_config(num_records=20, num_epochs=2)
  with make_train_iterator(cfg, vocab, codes_fn, 0, 1, 4, tokenizer=tokenizer,
                           drop_remainder=False) as it:
    rows = sum(len(b["tokens"]) for b in it)
    stats = it.stats()
  assert stats["data/examples"] == 40 and stats["data/skipped"] == 0
  assert 0 < rows < 40


def test_batched_codes_land_on_their_own_documents(vocab, tokenizer, codes_fn):
  """One codes_fn call per batch: every image's codes end up in its own document."""
  from pipeline_test_data import image_of

  from unified_mm.data.sequences import parse
  source = []
  for i in range(24):
    record = {"image": png_bytes(image_of(i)), "caption": f"item {i}",
              "edits": [{"instruction": f"edit {i}", "image": image_of(1000 + i)}]}
    source.append(record)
    if i % 5 == 0:  # skipped records in between: empty documents inside rows
      source.append({"image": b"junk", "caption": "bad"})
  calls = []

  def counting_codes(images):
    calls.append(len(images))
    return codes_fn(images)

  cfg = small_config(seq_len=128, doc_ratios=dict(caption_to_image=1.0, image_to_caption=1.0,
                                                 edit=1.0))
  with make_train_iterator(cfg, vocab, counting_codes, 0, 1, 3, tokenizer=tokenizer,
                           source=source, drop_remainder=False) as it:
    batches = list(it)
    assert it.stats()["data/examples"] == 24 and it.stats()["data/skipped_bad_image"] == 5
  codes = lambda im: codes_fn(im[None])[0].reshape(-1).tolist()  # noqa: E731
  seen = set()
  for b in batches:
    for r in range(len(b["tokens"])):
      row = {k: v[r] for k, v in b.items()}
      check_row(row, vocab)
      for doc in unpack_row(row):
        parts = parse(vocab, np.append(doc["tokens"], doc["targets"][-1]))
        text = next(tokenizer.decode(p) for k, p in parts if k == "text")
        kind, i = text.split()
        got = [p.tolist() for k, p in parts if k == "image"]
        want = [codes(image_of(int(i)))] + ([codes(image_of(1000 + int(i)))] if kind == "edit"
                                            else [])
        assert got == want, text
        seen.add(text)
  assert any(t.startswith("edit") for t in seen) and len(seen) == 24
  assert len(calls) <= len(batches) + 1  # the +1: probing the code grid once
  assert all(n % 16 == 0 for n in calls[1:])  # few distinct shapes for a jitted tokenizer
