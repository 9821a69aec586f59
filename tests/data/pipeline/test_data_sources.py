"""Each source round-trips a small data set, and counts and skips the bad records."""

from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import pytest
from pipeline_test_data import (BAD_CASES, SIZE, all_bad_items, bad_count, good_pairs, png_bytes,
                      small_config, write_files, write_tar)

from unified_mm.data import layout
from unified_mm.data.build import build_array_record
from unified_mm.data.documents import RecordToDocument
from unified_mm.data.decode import decode_image
from unified_mm.data.record_codec import edits_of
from unified_mm.data.pipeline import make_train_iterator
from unified_mm.data.sources.array_record_source import ArrayRecordSource
from unified_mm.data.sources.shapes_source import ShapesSource
from unified_mm.data.sources.tfds_builder import TfdsSource, build_tfds
from unified_mm.data.sources.webdataset_source import WebDatasetSource
from unified_mm.data.vocab import Vocab

N_GOOD = 6


def _check_round_trip(source, pairs):
  """Every written (image, caption) comes back exactly once, pixels and text equal."""
  assert len(source) == len(pairs)
  got = {}
  for i in range(len(source)):
    r = source[i]
    got[r["caption"]] = decode_image(r["image"], SIZE, resize=False)
  assert sorted(got) == sorted(c for _, c in pairs)
  for image, caption in pairs:
    np.testing.assert_array_equal(got[caption], image)


def _run_epoch(cfg, vocab, tokenizer, codes_fn, source):
  with make_train_iterator(cfg, vocab, codes_fn, 0, 1, 2, tokenizer=tokenizer, source=source,
                           drop_remainder=False) as it:
    batches = list(it)
    return batches, it.stats()


def _expect_counts(stats, reasons, n_good, other_skips=0):
  assert stats["data/examples"] == n_good
  for reason in reasons:
    assert stats[f"data/skipped_{reason}"] == bad_count(reason), reason
  assert stats["data/skipped"] == sum(bad_count(r) for r in reasons) + other_skips


def test_shapes_source_is_a_pure_function_of_seed_and_index():
  a, b = ShapesSource(seed=3, edit_turns=1), ShapesSource(seed=3, edit_turns=1)
  for i in (0, 7, 123_456_789):
    ra, rb = a[i], b[i]
    assert ra["caption"] == rb["caption"] and ra["meta"] == rb["meta"]
    np.testing.assert_array_equal(ra["image"], rb["image"])
    assert [e["instruction"] for e in edits_of(ra)] == [e["instruction"] for e in edits_of(rb)]
    assert edits_of(ra) and [e["instruction"] for e in edits_of(ra)] == \
        [e["instruction"] for e in edits_of(ra)]  # the lazy chain is a pure function too
  assert ShapesSource(seed=4)[0]["meta"] != a[0]["meta"]
  assert a[0]["image"].shape == (64, 64, 3) and a[0]["image"].dtype == np.uint8


def test_shapes_source_builds_to_array_record_and_back(tmp_path):
  shapes = ShapesSource(seed=1, resolution=SIZE * 4, edit_turns=1)
  path = tmp_path / "shapes.array_record"
  assert build_array_record(shapes, path, limit=5) == 5
  back = ArrayRecordSource(str(path))
  assert len(back) == 5
  for i in range(5):
    want, got = shapes[i], back[i]
    assert got["caption"] == want["caption"] and got["meta"] == want["meta"]
    np.testing.assert_array_equal(decode_image(got["image"], SIZE * 4), want["image"])
    for we, ge in zip(edits_of(want), got["edits"], strict=True):
      assert ge["instruction"] == we["instruction"]
      np.testing.assert_array_equal(decode_image(ge["image"], SIZE * 4), we["image"])


def test_array_record_source_round_trips_and_counts_bad(tmp_path, vocab, tokenizer, codes_fn):
  pairs = good_pairs(N_GOOD)
  records = [{"image": png_bytes(im), "caption": c} for im, c in pairs]
  bad = [{"image": im, "caption": c} for im, c in all_bad_items()]
  # Raw pixel arrays of the wrong shape (stored raw: PNG would make them RGB).
  wrong = [{"image": np.zeros((SIZE, SIZE), np.uint8), "caption": "a grey [H, W] array"},
           {"image": np.zeros((SIZE, SIZE, 4), np.uint8), "caption": "an RGBA array"}]
  good_path, all_path = tmp_path / "good.array_record", tmp_path / "all.array_record"
  build_array_record(records, good_path)
  build_array_record(records + bad, all_path)
  build_array_record(wrong, tmp_path / "wrong.array_record", image_format="raw")
  _check_round_trip(ArrayRecordSource(str(good_path)), pairs)

  from array_record.python import array_record_module  # a record that is not our format
  junk = tmp_path / "junk.array_record"
  w = array_record_module.ArrayRecordWriter(str(junk), "group_size:1")
  w.write(b"garbage, not a serialised record")
  w.close()
  source = ArrayRecordSource(f"{all_path},{junk},{tmp_path}/wrong.array_record")
  _, stats = _run_epoch(small_config(), vocab, tokenizer, codes_fn, source)
  assert stats["data/skipped_bad_record"] == 1
  assert stats["data/skipped_wrong_shape"] == bad_count("wrong_shape") + 2
  assert stats["data/examples"] == N_GOOD
  for reason in ("bad_image", "empty_caption", "long_caption"):
    assert stats[f"data/skipped_{reason}"] == bad_count(reason), reason


def test_tfds_builder_round_trips_and_counts_bad(tmp_path, vocab, tokenizer, codes_fn):
  pairs = good_pairs(N_GOOD)
  write_files(tmp_path / "good", [(png_bytes(im), c) for im, c in pairs])
  _check_round_trip(TfdsSource(build_tfds(str(tmp_path / "good"), str(tmp_path / "tfds_good"))),
                    pairs)
  write_files(tmp_path / "all", [(png_bytes(im), c) for im, c in pairs] + all_bad_items())
  source = TfdsSource(build_tfds(str(tmp_path / "all"), str(tmp_path / "tfds_all")))
  _, stats = _run_epoch(small_config(), vocab, tokenizer, codes_fn, source)
  _expect_counts(stats, BAD_CASES, N_GOOD)


def test_webdataset_round_trips_and_counts_bad(tmp_path, vocab, tokenizer, codes_fn):
  pairs = good_pairs(N_GOOD)
  items = [(png_bytes(im), c) for im, c in pairs]
  write_tar(tmp_path / "00000.tar", items[:3])
  write_tar(tmp_path / "00001.tar", items[3:], start=3)
  _check_round_trip(WebDatasetSource(str(tmp_path / "0000*.tar")), pairs)

  write_tar(tmp_path / "bad.tar", all_bad_items(), start=100)
  # A shard cut inside a member: the members before the cut stay readable, the
  # cut one becomes unreadable.
  write_tar(tmp_path / "cut_full.tar", items[:2], start=200)
  data = (tmp_path / "cut_full.tar").read_bytes()
  source_full = WebDatasetSource(str(tmp_path / "cut_full.tar"))
  offset, _ = source_full._index[1][1]["png"]
  (tmp_path / "cut.tar").write_bytes(data[:offset + 10])
  cut = WebDatasetSource(str(tmp_path / "cut.tar"))
  assert len(cut) == 2 and "error" not in cut[0] and cut[1] == {"error": "unreadable"}

  source = WebDatasetSource(f"{tmp_path}/0000*.tar,{tmp_path}/bad.tar,{tmp_path}/cut.tar")
  _, stats = _run_epoch(small_config(), vocab, tokenizer, codes_fn, source)
  _expect_counts(stats, BAD_CASES, N_GOOD + 1, other_skips=1)
  assert stats["data/skipped_unreadable"] == 1


@pytest.mark.parametrize("data", [b"", b"\x89PNG\r\n\x1a\n" + b"\x00" * 30, b"GIF89a"])
def test_decode_rejects_non_images(data):
  from unified_mm.data.bad_records import BadRecord
  with pytest.raises(BadRecord) as e:
    decode_image(data, SIZE)
  assert e.value.reason == "bad_image"


def test_pre_tokenised_codes_replace_the_image_tokenizer(tmp_path, vocab, tokenizer, codes_fn):
  pairs = good_pairs(N_GOOD)
  records = [{"image": png_bytes(im), "caption": c} for im, c in pairs]
  records.append({"image": b"not an image", "caption": "broken"})
  path = tmp_path / "coded.array_record"
  build_array_record(records, path, codes_fn=codes_fn, image_size=SIZE, codes_batch=4)
  back = ArrayRecordSource(str(path))
  for i, (image, _) in enumerate(pairs):
    np.testing.assert_array_equal(back[i]["codes"], codes_fn(image[None])[0])
  assert "codes" not in back[N_GOOD]

  def never(images):
    raise AssertionError("codes_fn called although the records carry codes")

  cfg = small_config(doc_ratios=dict(caption_to_image=1.0, image_to_caption=0.0, edit=0.0))
  batches, stats = _run_epoch(cfg, vocab, tokenizer, never, back)
  assert stats["data/examples"] == N_GOOD and stats["data/skipped_bad_image"] == 1
  image_ids = np.concatenate([b["tokens"][vocab.modality(b["tokens"]) == 1] for b in batches])
  want = np.concatenate([vocab.codes_to_ids(codes_fn(im[None])[0].reshape(-1)) for im, _ in pairs])
  assert sorted(image_ids.tolist()) == sorted(want.tolist())


BOXES = [{"label": "large red circle", "box": [0.1, 0.2, 0.5, 0.6]},
         {"label": "small blue star", "box": [0.6, 0.6, 0.8, 0.9]}]


def _planned_and_plain(source, vocab_with_bins, tokenizer, codes_fn):
  """The documents of records 0 (with boxes) and 1 (without), plans always asked for."""
  make = RecordToDocument(vocab=vocab_with_bins, tokenizer=tokenizer, codes_fn=codes_fn, seed=0,
                          seq_len=512, image_size=SIZE, resize=False, layout_bins=64,
                          layout_prob=1.0)
  records = sorted((source[i] for i in range(len(source))), key=lambda r: r["caption"])
  assert records[0]["boxes"] == BOXES and "boxes" not in records[1]
  planned, plain = (make(0, r) for r in records)
  assert planned["counts"][0] == 1 and plain["counts"][0] == 1  # both kept
  ids = np.concatenate([planned["tokens"], planned["targets"][-1:]])
  bol, eol = (int(np.flatnonzero(ids == t)[0]) for t in (vocab_with_bins.bol, vocab_with_bins.eol))
  assert layout.parse_layout(vocab_with_bins, tokenizer, ids[bol:eol + 1]) == \
      layout.objects_from_boxes(BOXES, 64)
  assert vocab_with_bins.bol not in plain["tokens"]


@pytest.fixture
def vocab_with_bins(tokenizer, codes_fn):
  return Vocab(text_size=tokenizer.vocab_size, image_codes=codes_fn.num_codes, layout_bins=64)


def test_webdataset_and_tfds_records_carry_optional_boxes(tmp_path, vocab_with_bins, tokenizer,
                                                          codes_fn):
  (image_a, _), (image_b, _) = good_pairs(2)
  members = {"000000.png": png_bytes(image_a), "000000.txt": b"a circle and a star",
             "000000.json": json.dumps({"url": "x", "boxes": BOXES}).encode(),
             "000001.png": png_bytes(image_b), "000001.txt": b"b plain",
             "000001.json": b'{"url": "y"}'}
  with tarfile.open(tmp_path / "boxes.tar", "w") as tar:
    for name, data in members.items():
      info = tarfile.TarInfo(name)
      info.size = len(data)
      tar.addfile(info, io.BytesIO(data))
  _planned_and_plain(WebDatasetSource(str(tmp_path / "boxes.tar")), vocab_with_bins, tokenizer,
                     codes_fn)
  files = tmp_path / "files"
  files.mkdir()
  for name, data in members.items():
    if name != "000001.json":
      (files / name).write_bytes(data)
  source = TfdsSource(build_tfds(str(files), str(tmp_path / "tfds")))
  _planned_and_plain(source, vocab_with_bins, tokenizer, codes_fn)
