"""The written plan: layout -> ids -> layout is exact; records with and without boxes
both make valid documents; malformed plans and boxes are refused."""

from __future__ import annotations

import dataclasses
import json
import numpy as np
import pytest

from unified_mm.data import layout, sequences
from unified_mm.data.documents import RecordToDocument
from unified_mm.data.shapes.analyzer import analyze
from unified_mm.data.shapes.captions import parse_caption, with_digits
from unified_mm.data.shapes.grounding import scene_boxes
from unified_mm.data.shapes.scene import sample_scene
from unified_mm.data.shapes.scorer import score
from unified_mm.data.sources.shapes_source import ShapesSource
from unified_mm.data.vocab import LAYOUT, Vocab

BINS = 16


@pytest.fixture(scope="module")
def lvocab(tokenizer, codes_fn):
  return Vocab(text_size=tokenizer.vocab_size, image_codes=codes_fn.num_codes, layout_bins=BINS)


@pytest.mark.parametrize("seed", range(20))
def test_layout_round_trip_is_exact(lvocab, tokenizer, seed):
  scene = sample_scene(seed, max_objects=12)
  objects = layout.objects_from_boxes(scene_boxes(scene), BINS)
  ids = layout.layout_ids(lvocab, tokenizer, objects)
  assert ids[0] == lvocab.bol and ids[-1] == lvocab.eol
  assert layout.parse_layout(lvocab, tokenizer, ids) == objects
  # The bins cover the true pixel box: quantisation never moves a box off its object.
  for o, obj in zip(objects, sorted(scene.objects, key=lambda o: (o.cy, o.cx))):
    x0, y0, x1, y1 = o.pixel_box(BINS, scene.resolution)
    assert x0 <= obj.box[0] and y0 <= obj.box[1] and x1 >= obj.box[2] and y1 >= obj.box[3]


def test_mentioned_objects_come_first():
  source = ShapesSource(seed=3, max_objects=4)
  from unified_mm.data.shapes.captions import parse_caption, with_digits
  for i in range(30):
    record = source[i]
    spec = parse_caption(record["caption"])
    first = record["boxes"][0]["label"].split()
    assert spec.items[0].kind == first[2]
    assert spec.items[0].colour in (None, first[1])


@pytest.mark.parametrize("bad", [
    lambda v, c: [v.bol, 5, v.box, c, c, c, c],                 # not closed
    lambda v, c: [v.bol, v.box, c, c, c, c, v.eol],             # no label
    lambda v, c: [v.bol, 5, c, c, c, c, v.eol],                 # no BOX
    lambda v, c: [v.bol, 5, v.box, c + 3, c, c + 1, c, v.eol],  # x1 < x0
    lambda v, c: [v.bol, 5, v.box, c, c, 7, c, v.eol],          # text where a coordinate goes
])
def test_malformed_layouts_are_refused(lvocab, tokenizer, bad):
  with pytest.raises(ValueError):
    layout.parse_layout(lvocab, tokenizer, bad(lvocab, lvocab.coord_offset))


def test_box_outside_the_image_is_refused():
  with pytest.raises(ValueError, match="outside"):
    layout.quantise_box([0.5, 0.5, 1.2, 0.9], BINS)


def _document(lvocab, tokenizer, codes_fn, record, layout_prob):
  make = RecordToDocument(vocab=lvocab, tokenizer=tokenizer, codes_fn=codes_fn, seed=0,
                          seq_len=512, image_size=64, caption_dropout=0.0,
                          layout_bins=BINS, layout_prob=layout_prob)
  return make(0, record)


def test_records_with_and_without_boxes_make_valid_documents(lvocab, tokenizer, codes_fn):
  record = ShapesSource(seed=0, max_objects=4)[0]
  planned = _document(lvocab, tokenizer, codes_fn, record, 1.0)
  plain = _document(lvocab, tokenizer, codes_fn, {k: v for k, v in record.items() if k != "boxes"},
                    1.0)
  assert planned["counts"][0] == 1 and plain["counts"][0] == 1  # kept, not skipped
  ids = np.concatenate([planned["tokens"], planned["targets"][-1:]])
  bol, eol = (int(np.flatnonzero(ids == t)[0]) for t in (lvocab.bol, lvocab.eol))
  assert layout.parse_layout(lvocab, tokenizer, ids[bol:eol + 1]) == layout.objects_from_boxes(
      record["boxes"], BINS)
  assert ids[eol + 1] == lvocab.boi
  # The plan is answer (trained on), coordinates carry their own modality.
  span = slice(bol, eol)
  assert planned["loss_mask"][span].all()
  assert (planned["modality"] == LAYOUT).sum() == 4 * len(record["boxes"])
  assert lvocab.bol not in plain["tokens"] and len(plain["tokens"]) < len(planned["tokens"])


def test_bad_boxes_are_skipped_and_counted(lvocab, tokenizer, codes_fn):
  record = dict(ShapesSource(seed=0, max_objects=4)[0], boxes=[{"label": "", "box": [0, 0, 1, 1]}])
  example = _document(lvocab, tokenizer, codes_fn, record, 1.0)
  assert len(example["tokens"]) == 0 and example["counts"][0] == 0 and example["counts"].sum() == 1


def test_planned_document_layout(lvocab, tokenizer):
  codes = np.zeros((2, 2), np.int32)
  objects = [layout.LayoutObject("small red circle", (1, 2, 3, 4))]
  plan = layout.layout_ids(lvocab, tokenizer, objects)
  parts = sequences.caption_to_image(lvocab, tokenizer.encode("a red circle"), codes, plan)
  ids = np.concatenate([p for p, _ in parts])
  assert ids[0] == lvocab.bos and ids[-1] == lvocab.eos
  assert list(ids[-(4 + 2 + 1) - len(plan):-(4 + 2 + 1)]) == list(plan)


def test_plan_only_document_has_no_image(lvocab, tokenizer, codes_fn):
  record = ShapesSource(seed=0, max_objects=4)[3]
  make = RecordToDocument(vocab=lvocab, tokenizer=tokenizer, codes_fn=codes_fn, seed=0,
                          seq_len=512, image_size=64, layout_bins=BINS, layout_prob=0.0,
                          doc_ratios={"caption_to_layout": 1.0}, loss_on_prompt=False)
  doc = make(0, record)
  ids = np.concatenate([doc["tokens"], doc["targets"][-1:]])
  assert lvocab.boi not in ids and len(doc["images"]) == 0
  bol, eol = (int(np.flatnonzero(ids == t)[0]) for t in (lvocab.bol, lvocab.eol))
  assert layout.parse_layout(lvocab, tokenizer, ids[bol:eol + 1]) == layout.objects_from_boxes(
      record["boxes"], BINS)
  assert ids[eol + 1] == lvocab.eos
  assert doc["loss_mask"][bol:].all() and not doc["loss_mask"][:bol - 1].any()
  # Without boxes the record still makes a (plain caption -> image) document.
  plain = make(0, {k: v for k, v in record.items() if k != "boxes"})
  assert plain["counts"][0] == 1 and lvocab.boi in plain["tokens"]


def test_prompt_first_records_show_exactly_their_prompt():
  source = ShapesSource(seed=5, max_objects=6, prompt_prob=1.0)
  counts = set()
  for i in range(40):
    r = source[i]
    spec = parse_caption(r["caption"])
    counts.add(spec.num_objects)
    assert score(spec, analyze(r["image"]))["correct"], r["caption"]
    assert len(r["boxes"]) == spec.num_objects  # no unasked objects
  assert max(counts) > 2  # counting and many-object binding prompts occur
  mixed = ShapesSource(seed=5, max_objects=6, prompt_prob=0.5)
  assert 5 < sum(mixed[i]["caption"] == source[i]["caption"] for i in range(40)) < 35


def test_compound_prob_adds_compound_prompts_and_zero_keeps_the_records():
  plain = ShapesSource(seed=5, max_objects=6, prompt_prob=0.5)
  off = ShapesSource(seed=5, max_objects=6, prompt_prob=0.5, compound_prob=0.0)
  assert [plain[i]["caption"] for i in range(30)] == [off[i]["caption"] for i in range(30)]
  every = ShapesSource(seed=5, max_objects=6, prompt_prob=1.0, compound_prob=1.0)
  for i in range(20):
    r = every[i]
    spec = parse_caption(r["caption"])
    assert r["exact_caption"] and len(spec.items) >= 2
    assert len(r["boxes"]) == spec.num_objects
    assert score(spec, analyze(r["image"]))["correct"], r["caption"]


def test_typed_captions_count_in_digits_or_stop_and_change_nothing_else():
  words = ShapesSource(seed=5, max_objects=6, prompt_prob=0.5)
  typed = ShapesSource(seed=5, max_objects=6, prompt_prob=0.5, digit_prob=0.5, stop_prob=0.5)
  digits = stops = 0
  for i in range(80):
    a, b = words[i], typed[i]
    stop = b["caption"].endswith(".")
    bare = b["caption"][:-1] if stop else b["caption"]
    assert bare in (a["caption"], with_digits(a["caption"]))
    assert parse_caption(b["caption"]) == parse_caption(a["caption"])
    assert b["description"] == a["description"] and b["boxes"] == a["boxes"]
    assert (b["image"] == a["image"]).all()
    digits += bare != a["caption"]
    stops += stop
  assert 0 < digits < 80 and 10 < stops < 70


def test_prompt_size_weights_draw_unnamed_sizes_and_keep_named_ones():
  uniform = ShapesSource(seed=5, max_objects=6, prompt_prob=1.0)
  assert uniform.prompt_size_probs is None  # equal weights: the records of earlier runs
  big = ShapesSource(seed=5, max_objects=6, prompt_prob=1.0, prompt_size_weights=(0, 1, 1))
  sizes = []
  for i in range(60):
    r = big[i]
    spec = parse_caption(r["caption"])
    scene = json.loads(r["meta"])["scene"]
    assert score(spec, analyze(r["image"]))["correct"], r["caption"]
    # A scene shrinks an object only when a larger one finds no room.
    sizes += [o["size"] for o in scene["objects"] if len(scene["objects"]) <= 2]
  assert sizes and "small" not in sizes
  assert "small" in [o["size"] for i in range(60)
                     for o in json.loads(uniform[i]["meta"])["scene"]["objects"]]


def test_cell_align_puts_boxes_on_the_code_lattice_and_keeps_the_prompts_true():
  aligned = ShapesSource(seed=5, max_objects=6, prompt_prob=0.5, cell_align=8)
  corners, crowded = [], 0
  for i in range(80):
    r = aligned[i]
    scene = json.loads(r["meta"])["scene"]
    if r["exact_caption"]:
      assert score(parse_caption(r["caption"]), analyze(r["image"]))["correct"], r["caption"]
    on = [(o["box"][0] - 1) % 8 == 0 and (o["box"][1] - 1) % 8 == 0 for o in scene["objects"]]
    crowded += not all(on)  # only a scene laid out on the crowded-scene grid leaves it
    corners += on
  assert sum(corners) > 0.9 * len(corners) and crowded < 8
  plain = ShapesSource(seed=5, max_objects=6, prompt_prob=0.5)
  moved = [json.loads(plain[i]["meta"])["scene"] != json.loads(aligned[i]["meta"])["scene"]
           for i in range(20)]
  assert any(moved) and plain[3]["caption"] == aligned[3]["caption"]


def _caption_ids(lvocab, doc):
  ids = np.concatenate([doc["tokens"], doc["targets"][-1:]])
  return list(ids[1:int(np.flatnonzero(ids == lvocab.boi)[0])])  # between BOS and BOI


def test_plain_documents_of_partial_captions_read_the_description(lvocab, tokenizer, codes_fn):
  source = ShapesSource(seed=5, max_objects=6, prompt_prob=0.5)
  records = [source[i] for i in range(40)]
  exact = [r for r in records if r["exact_caption"]]
  partial = [r for r in records if not r["exact_caption"] and r["caption"] != r["description"]]
  assert exact and partial
  for r in exact:  # a prompt-first record: its prompt names every object drawn
    assert len(r["boxes"]) == parse_caption(r["caption"]).num_objects
  make = RecordToDocument(vocab=lvocab, tokenizer=tokenizer, codes_fn=codes_fn, seed=0,
                          seq_len=512, image_size=64, caption_dropout=0.0, layout_bins=BINS,
                          layout_prob=0.0, plain_description=True)
  for r, want in [(partial[0], "description"), (exact[0], "caption"),
                  ({k: v for k, v in partial[0].items() if k != "description"}, "caption")]:
    assert _caption_ids(lvocab, make(0, r)) == list(tokenizer.encode(r[want]))
  # A planned document keeps its caption: its plan says what else is drawn.
  planned = dataclasses.replace(make, layout_prob=1.0)(0, partial[0])
  assert _caption_ids(lvocab, planned)[:len(tokenizer.encode(partial[0]["caption"]))] == list(
      tokenizer.encode(partial[0]["caption"]))


@pytest.mark.parametrize("bins", [BINS, 64])
def test_label_sides_never_refuse_the_worlds_own_boxes(bins):
  """A fitted plan (`grounding.label_sides`) asks a box to hold what its label
  names: every object the world draws has a box at least that large, in any
  bins, and at 64 bins over 64 px exactly that large."""
  from unified_mm.data.shapes.grounding import label_sides, parse_label
  sides = {(s, k): (w, h) for s, k, w, h in label_sides(bins, 64)}
  assert len(sides) == 24 and sides["large", "semicircle"] == (-(-20 * bins // 64),
                                                                -(-10 * bins // 64))
  for seed in range(20):
    scene = sample_scene(np.random.default_rng(seed), max_objects=6)
    for o in layout.objects_from_boxes(scene_boxes(scene), bins):
      kind, _, size = parse_label(o.label)
      x0, y0, x1, y1 = o.box
      w, h = sides[size, kind]
      assert x1 - x0 + 1 >= w and y1 - y0 + 1 >= h, (o.label, o.box, (w, h))
      if bins == 64:
        assert (x1 - x0 + 1, y1 - y0 + 1) == (w, h)
