"""The tokenizer's and renderer's input on every source (#20): the shapes world byte-for-byte
as before, and real photographs through the Grain pipeline (sharded, resumable,
bad records counted, pre-tokenised latents read when present)."""

from __future__ import annotations

import hashlib
import logging
import pathlib

import numpy as np
import pytest

from real_photos import read_from, write_sources
from unified_mm.config.loading import load_config
from unified_mm.tasks import make_task

SHAPES = str(pathlib.Path(__file__).resolve().parents[3] / "experiments/shapes.py")

# sha256 of the first 3 batches (4 rows each) of the shapes input with objects at any
# pixel (data.cell_align=0), recorded with the code of a24c425, before the image stages
# could read real data: the free world's benchmark figures depend on these batches, so
# they must never change.
SHAPES_DIGESTS = {
    ("tokenizer", 0, 1): "bc3a819d669f76a59d310d072c21b88c3183ce81910d62ab36e8f53b2d7ef7ff",
    ("tokenizer", 1, 2): "977d49bccf686405452b232ef7d6fcfcd1d2e8f98440d73b5cd182d310b27f87",
    ("renderer", 0, 1): "ccce66589fa37ac6c5f815bb81ff302a2f8e04d7f7b023510cddb7fe90301142",
    ("renderer", 1, 2): "a8fea8cc06a1a61f8d9ffe97d9aba92bc0a6d28b5d964e4ab2eb86b00032aa6f",
    ("renderer_layout", 0, 1): "b0e1d0451f101981890139a14e65bbee814732eaeaeef2d6dd8fc43bdbca9cd3",
    ("renderer_layout", 1, 2): "ff4578a672327e2006fdda4a71fda307f6b350f83664f865e1e2a3ce94e6715f",
}
# The same batches with the presets' objects on the code cells, recorded with 7f5447b,
# whose main job the docs' figures are.
LATTICE_DIGESTS = {
    ("tokenizer", 0, 1): "269d862917ac6e1df528e21dbe191e0f39335e5235d45ec05b9f690f386dbbf4",
    ("tokenizer", 1, 2): "92a2d896c531233d6bbe7614be5522da479dcc992035f9fec5e64a63c4c1c1db",
    ("renderer", 0, 1): "742bcac95980c7f42883fa4d0c039079d7ce137a2367ec654433c1ffa07e6e6b",
    ("renderer", 1, 2): "9b9875c828d9ba86b1d680224b813d1f13cfebb9f27f2fda0370d66e09e4f20c",
    ("renderer_layout", 0, 1): "2768bd94065db517c726dbb75eadb999da9b2495f5a5d630364d5813795f2851",
    ("renderer_layout", 1, 2): "80df893835720bf78974af66448331eb2b64e42c18a2ed8c9dd1abcca9e86bc9",
}
# The tokenizer preset's batches since 59b953c: 32 x 32 crops of those scenes on the code
# cells (`data.train_crop=32`), recorded with 69f5257, whose main job the docs' figures are.
CROP_DIGESTS = {
    ("tokenizer", 0, 1): "6d2cb919e0905ce4d6a32825a173ea0d552ef4cb537b7d5c78de3996495e01a3",
    ("tokenizer", 1, 2): "c703dca245b67d1c9ac66389c637b72b7a46d9c9e1d1af340f63026a94ffda32",
}
SIZE = 64  # the real-data iterators here; the 256-px stages are in test_real_photos.py


def digest(it, n: int = 3) -> str:
  h = hashlib.sha256()
  for _ in range(n):
    batch = next(it)
    for k in sorted(batch):
      a = np.ascontiguousarray(batch[k])
      h.update(k.encode())
      h.update(str(a.dtype).encode())
      h.update(str(a.shape).encode())
      h.update(a.tobytes())
  return h.hexdigest()


def stand_in_renderer(variant: str = "renderer"):
  """The shapes preset on the parameter-free stand-in tokenizer (3 latent channels)."""
  c = load_config(SHAPES + ":" + variant)
  c.model.update(latent_channels=3, visual_levels=())
  if c.model.plan_channels:
    c.model.plan_channels = 3
  return c


def shapes_batches(variant: str, process: int, count: int, align: int, crop: int = 0):
  c = load_config(SHAPES + ":tokenizer") if variant == "tokenizer" else stand_in_renderer(variant)
  c.data.cell_align = align
  if variant == "tokenizer":
    c.data.train_crop = crop
  return make_task(c).make_data(process, count, 4)


@pytest.mark.parametrize("variant,process,count", sorted(SHAPES_DIGESTS))
def test_shapes_batches_unchanged(variant, process, count):
  """The free world's batches (`data.cell_align=0`) are those of a24c425."""
  assert digest(shapes_batches(variant, process, count, 0)) == SHAPES_DIGESTS[
      (variant, process, count)]


@pytest.mark.parametrize("variant,process,count", sorted(LATTICE_DIGESTS))
def test_lattice_batches_unchanged(variant, process, count):
  """The presets' batches, objects on the code cells (`data.cell_align=8`, 7f5447b)."""
  assert digest(shapes_batches(variant, process, count, 8)) == LATTICE_DIGESTS[
      (variant, process, count)]


@pytest.mark.parametrize("variant,process,count", sorted(CROP_DIGESTS))
def test_crop_batches_unchanged(variant, process, count):
  """The tokenizer preset's crops of the lattice scenes (69f5257)."""
  assert digest(shapes_batches(variant, process, count, 8, crop=32)) == CROP_DIGESTS[
      (variant, process, count)]


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
  return write_sources(tmp_path_factory.mktemp("photos"), SIZE)


def real(c, source, path, **data):
  return read_from(c, source, path, SIZE, **data)


@pytest.mark.parametrize("source", ["wds", "tfds", "array_record"])
def test_tokenizer_reads_photos_resumes_and_counts(sources, source):
  c = real(load_config(SHAPES + ":tokenizer"), source, sources[source])
  task = make_task(c)
  it = task.make_data(0, 1, 4)
  first = [next(it) for _ in range(4)]  # 16 kept of 14 records a pass: into the second epoch
  assert first[0]["image"].shape == (4, SIZE, SIZE, 3) and first[0]["image"].dtype == np.uint8
  assert first[0]["image"].std() > 20  # photographs, not blank
  state = it.get_state()
  after = [next(it) for _ in range(3)]
  stats = it.stats()
  # 28 kept of 12 good a pass: 3 passes began, 2 bad images each (the tokenizer needs no caption)
  assert stats["data/examples"] == 28 and stats["data/skipped"] == stats["data/skipped_bad_image"] >= 4
  again = task.make_data(0, 1, 4)
  again.set_state(state)
  for a, b in zip(after, [next(again) for _ in range(3)]):
    np.testing.assert_array_equal(a["image"], b["image"])
  assert again.stats() == stats


def test_hosts_read_disjoint_records(sources):
  c = real(load_config(SHAPES + ":tokenizer"), "wds", sources["wds"], num_epochs=1)
  task = make_task(c)
  seen = []
  for p in range(2):
    it = task.make_data(p, 2, 1)
    seen.append({next(it)["image"].tobytes() for _ in range(6)})
  assert not seen[0] & seen[1] and len(seen[0] | seen[1]) == 12


def test_renderer_reads_captions_and_pretokenised_latents(sources, tmp_path, caplog):
  from unified_mm.data.build import build_array_record
  from unified_mm.data.sources.webdataset_source import WebDatasetSource
  c = real(stand_in_renderer(), "wds", sources["wds"])
  task = make_task(c)
  it = task.make_data(0, 1, 4)
  batch = next(it)
  assert batch["latent"].shape == (4, 16, 16, 3) and batch["codes"].shape == (4, 8, 8)
  assert batch["text_mask"].sum(1).min() > 3

  def encode_fn(images):
    z, ids = task.frontend.encode(images)
    return {"codes": ids, "latent": z}
  built = tmp_path / "pretokenised.array_record"
  build_array_record(WebDatasetSource(sources["wds"]), built, encode_fn=encode_fn, image_size=SIZE)
  plain = make_task(real(stand_in_renderer(), "array_record", sources["array_record"]))
  pre = make_task(real(stand_in_renderer(), "array_record", str(built)))
  with caplog.at_level(logging.INFO):
    pre_it = pre.make_data(0, 1, 4)
  assert "reading pre-tokenised latent+codes" in caplog.text
  plain_it = plain.make_data(0, 1, 4)
  for _ in range(4):
    a, b = next(plain_it), next(pre_it)
    for k in a:
      np.testing.assert_allclose(a[k], b[k], atol=1e-6)
  assert pre_it.stats() == plain_it.stats()
  assert plain_it.stats()["data/skipped_empty_caption"] == 1
  assert plain_it.stats()["data/skipped_bad_image"] >= 1


@pytest.mark.parametrize("source", ["wds", "tfds", "array_record"])
def test_renderer_reads_every_source_and_counts(sources, source):
  """One pass (num_epochs=1) over 12 photographs: 12 rows, the blank caption and the
  truncated image skipped under their reasons, and a resumed copy reads on alike."""
  task = make_task(real(stand_in_renderer(), source, sources[source], num_epochs=1))
  it = task.make_data(0, 1, 2)
  first = next(it)
  state = it.get_state()
  rest = [next(it) for _ in range(5)]
  with pytest.raises(StopIteration):
    next(it)
  stats = it.stats()
  assert stats["data/examples"] == 12 and stats["data/skipped"] == 2
  assert stats["data/skipped_empty_caption"] == stats["data/skipped_bad_image"] == 1
  assert first["latent"].shape == (2, 16, 16, 3)
  again = task.make_data(0, 1, 2)
  again.set_state(state)
  for a in rest:
    b = next(again)
    for k in a:
      np.testing.assert_array_equal(a[k], b[k])
