"""Data fuzz (issue #21 item 5): clean records mixed with broken ones of every
kind, per real-data source (ArrayRecord, WebDataset tar, TFDS), read by the
trainer's Grain pipeline (`make_train_iterator`) for one epoch.

Asserted: no exception; each broken record skipped and counted under the
reason its kind names (`KINDS`); images of another mode or size converted and
kept, as decode.py documents; every clean record delivered exactly once. The
fast tests write a few records of each kind; the slow one 1,000 fuzzed records
per source and compares records/s on clean and on fuzzed files in one process.
Measure the ratio with `JAX_PLATFORMS=cpu python -m pytest -q -s -m slow
tests/reliability/test_data_fuzz.py` (it prints one line per source).
"""

from __future__ import annotations

import collections
import dataclasses
import io
import pathlib
import struct
import sys
import tarfile
import time

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "data" / "pipeline"))
from pipeline_test_data import SIZE, image_of, small_config  # noqa: E402

from array_record.python import array_record_module  # noqa: E402

from unified_mm.data import record_codec  # noqa: E402
from unified_mm.data.bad_records import BadRecord  # noqa: E402
from unified_mm.data.decode import decode_image  # noqa: E402
from unified_mm.data.packing import unpack_row  # noqa: E402
from unified_mm.data.pipeline import load_or_train_tokenizer, make_train_iterator  # noqa: E402
from unified_mm.data.sources.array_record_source import ArrayRecordSource  # noqa: E402
from unified_mm.data.sources.tfds_builder import TfdsSource, build_tfds  # noqa: E402
from unified_mm.data.sources.webdataset_source import WebDatasetSource  # noqa: E402
from unified_mm.data.stand_in_codes import StandInCodes  # noqa: E402
from unified_mm.data.vocab import Vocab  # noqa: E402

KEPT = None  # converted (mode) or resized (size) and trained on, as decode.py documents
# kind -> the `data/skipped_<reason>` it is counted under, or KEPT.
COMMON = {
    "truncated_png": "bad_image",       # cut anywhere, IEND included
    "truncated_jpeg": "bad_image",
    "zero_byte_image": "bad_image",     # .png and .jpg
    "other_mode": KEPT,                 # L, LA, P, RGBA, I;16, 1-bit PNG; L, CMYK JPEG
    "other_size": KEPT,                 # 1x1 to 300x7; "wrong_shape" with data.resize=False
    "empty_caption": "empty_caption",   # "", spaces, whitespace
    "huge_caption": "long_caption",     # 100 kB
    "non_utf8_caption": "bad_record",   # latin-1, UTF-16; ArrayRecord: raw header bytes, surrogates
    "missing_image": "unreadable",
    "missing_caption": "unreadable",
    "broken_member": "unreadable",      # a tar header / an ArrayRecord chunk failing its checksum
}
KINDS = {
    "array_record": COMMON | {
        "truncated_record": "bad_record",    # a serialised record cut short
        "pixels_other_mode": "wrong_shape",  # raw arrays are taken only as uint8 [H, W, 3]
    },
    "wds": COMMON | {"cut_member": "unreadable"},  # the shard ends inside an image
    # A TFDS record has every feature: the builder stores a missing file as empty bytes.
    "tfds": COMMON | {"missing_image": "bad_image", "missing_caption": "empty_caption"},
}
SOURCES = tuple(KINDS)


@dataclasses.dataclass
class Item:
  label: str                          # unique, the caption of every item that has one
  kind: str
  n: int
  image: bytes | np.ndarray | None    # None: missing
  ext: str
  caption: str | bytes | None         # bytes: not UTF-8; None: missing


def _encode(img: Image.Image, fmt: str) -> bytes:
  buf = io.BytesIO()
  img.save(buf, format=fmt)
  return buf.getvalue()


def _cut(data: bytes, rng) -> bytes:
  return data[:int(rng.integers(1, len(data)))]


def _other_mode(n: int) -> tuple[bytes, str]:
  rgb = Image.fromarray(image_of(n))
  grey = np.asarray(rgb.convert("L"))
  images = [(rgb.convert("L"), "PNG"), (rgb.convert("LA"), "PNG"), (rgb.convert("P"), "PNG"),
            (rgb.convert("RGBA"), "PNG"), (Image.fromarray(grey.astype(np.uint16) * 257), "PNG"),
            (rgb.convert("1"), "PNG"), (rgb.convert("L"), "JPEG"), (rgb.convert("CMYK"), "JPEG")]
  img, fmt = images[n % len(images)]
  return _encode(img, fmt), fmt.lower().replace("jpeg", "jpg")


def _other_size(n: int) -> tuple[bytes, str]:
  w, h = [(1, 1), (7, 300), (300, 7), (2 * SIZE, 2 * SIZE), (33, 17), (SIZE + 1, SIZE)][n % 6]
  rgb = Image.fromarray(image_of(n, size=max(w, h, SIZE))).crop((0, 0, w, h))
  fmt = ("PNG", "JPEG")[n % 2]
  return _encode(rgb, fmt), fmt.lower().replace("jpeg", "jpg")


def make_item(kind: str, n: int, rng) -> Item:
  label = f"fuzz {kind} {n:05d}"
  png = _encode(Image.fromarray(image_of(n)), "PNG")
  item = Item(label, kind, n, png, "png", label)
  if kind == "truncated_png":
    item.image = _cut(png, rng)
  elif kind == "truncated_jpeg":
    item.image, item.ext = _cut(_encode(Image.fromarray(image_of(n)), "JPEG"), rng), "jpg"
  elif kind == "zero_byte_image":
    item.image, item.ext = b"", ("png", "jpg")[n % 2]
  elif kind == "other_mode":
    item.image, item.ext = _other_mode(n)
  elif kind == "other_size":
    item.image, item.ext = _other_size(n)
  elif kind == "empty_caption":
    item.caption = ("", "   ", "\n\t ")[n % 3]
  elif kind == "huge_caption":
    item.caption = (label + " a red circle " * 8000)[:100_000]
  elif kind == "non_utf8_caption":
    item.caption = (label + " caf\xe9").encode("latin-1") if n % 2 else label.encode("utf-16")
  elif kind == "missing_image":
    item.image = None
  elif kind == "missing_caption":
    item.caption = None
  elif kind == "pixels_other_mode":
    img = image_of(n)
    item.image = [img[..., 0], np.concatenate([img, img[..., :1]], -1), img.astype(np.float32),
                  img[None]][n % 4]
  return item  # broken_member, cut_member, truncated_record: the writer breaks them


def make_items(n_clean: int, counts: dict[str, int], seed: int = 0):
  """-> (clean items, fuzzed items in a shuffled order)."""
  rng = np.random.default_rng(seed)
  clean = [Item(f"clean record {i:05d}", "clean", i, _encode(Image.fromarray(image_of(i)), "PNG"),
                "png", f"clean record {i:05d}") for i in range(n_clean)]
  fuzz = [make_item(kind, n, rng) for kind, c in counts.items() for n in range(c)]
  rng.shuffle(fuzz)  # kinds interleaved in the files, as real damage is
  return clean, fuzz


def spread(source: str, total: int) -> dict[str, int]:
  """`total` fuzzed records over the source's kinds, as evenly as it goes."""
  kinds = list(KINDS[source])
  return {k: total // len(kinds) + (i < total % len(kinds)) for i, k in enumerate(kinds)}


# ---------------------------------------------------------------- damage

def _flip_inside(data: bytearray, marker: bytes) -> None:
  at = data.find(marker)
  assert at >= 0 and data.find(marker, at + 1) < 0, marker
  data[at] ^= 0x01


def damage_chunks(path: pathlib.Path, labels: list[str]) -> int:
  """Rewrites an ArrayRecord file uncompressed (to find the records' bytes), then
  flips one byte inside each labelled record it holds: its chunk fails Riegeli's
  hash. Returns how many it damaged."""
  reader = array_record_module.ArrayRecordReader(str(path))
  records = reader.read_all()
  reader.close()
  writer = array_record_module.ArrayRecordWriter(str(path), "group_size:1,uncompressed")
  for r in records:
    writer.write(r)
  writer.close()
  data = bytearray(path.read_bytes())
  found = [label.encode() for label in labels if label.encode() in data]
  for label in found:
    _flip_inside(data, label)
  path.write_bytes(bytes(data))
  return len(found)


# ---------------------------------------------------------------- writers

def _ar_bytes(item: Item, rng) -> bytes:
  record = {k: v for k, v in (("image", item.image), ("caption", item.caption)) if v is not None}
  if isinstance(item.caption, bytes):
    if item.n % 4 < 2:  # a JSON header whose bytes are not UTF-8
      head = b'{"caption": "%s", "image": {"kind": "bytes", "size": %d}}' % (
          item.caption, len(item.image))
      return record_codec.MAGIC + struct.pack("<I", len(head)) + head + item.image
    # text decoded upstream with surrogateescape: lone surrogates in a str
    record["caption"] = item.caption.decode("utf-8", "surrogateescape")
  data = record_codec.encode(record)
  return _cut(data, rng) if item.kind == "truncated_record" else data


def _write_array_record(path: pathlib.Path, items: list[Item], options: str, rng) -> None:
  writer = array_record_module.ArrayRecordWriter(str(path), options)
  for item in items:
    writer.write(_ar_bytes(item, rng))
  writer.close()


def write_array_record(directory: pathlib.Path, clean: list[Item], fuzz: list[Item]):
  """-> (clean source, fuzzed source): one clean file; the fuzzed source reads it too."""
  rng = np.random.default_rng(1)
  directory.mkdir(parents=True, exist_ok=True)
  clean_file, fuzz_file = directory / "clean.array_record", directory / "fuzz.array_record"
  _write_array_record(clean_file, clean, "group_size:1", rng)
  _write_array_record(fuzz_file, fuzz, "group_size:1", rng)
  broken = [it.label for it in fuzz if it.kind == "broken_member"]
  assert damage_chunks(fuzz_file, broken) == len(broken)
  return (lambda: ArrayRecordSource(str(clean_file)),
          lambda: ArrayRecordSource([str(clean_file), str(fuzz_file)]))


def _members(item: Item, n: int) -> list[tuple[str, bytes]]:
  key = f"{n:06d}"
  out = [(f"{key}.json", b'{"i": %d}' % n)]
  if item.caption is not None:
    caption = item.caption if isinstance(item.caption, bytes) else item.caption.encode()
    out.insert(0, (f"{key}.txt", caption))
  if item.image is not None:
    # The image last where the shard is cut, so the cut lands inside it.
    out.insert(len(out) if item.kind == "cut_member" else 0, (f"{key}.{item.ext}", item.image))
  return out


def _write_shard(path: pathlib.Path, items: list[Item], start: int, rng) -> None:
  with tarfile.open(path, "w") as tar:
    for n, item in enumerate(items, start):
      for name, data in _members(item, n):
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
  with tarfile.open(path, "r:") as tar:
    members = {m.name: m for m in tar}
  data = bytearray(path.read_bytes())
  for n, item in enumerate(items, start):
    image = members.get(f"{n:06d}.{item.ext}")
    if item.kind == "broken_member":  # one byte of the image's header, its name left alone
      data[image.offset + int(rng.integers(100, 345))] ^= 0x04
    elif item.kind == "cut_member":
      del data[image.offset_data + int(rng.integers(1, image.size)):]
  path.write_bytes(bytes(data))


def write_wds(directory: pathlib.Path, clean: list[Item], fuzz: list[Item]):
  """Clean shards of 100 samples; the fuzzed ones each end in their cut member."""
  rng = np.random.default_rng(2)
  directory.mkdir(parents=True, exist_ok=True)
  for s in range(0, len(clean), 100):
    _write_shard(directory / f"clean-{s:06d}.tar", clean[s:s + 100], s, rng)
  cuts = [it for it in fuzz if it.kind == "cut_member"]
  rest = [it for it in fuzz if it.kind != "cut_member"]
  for s, cut in enumerate(cuts):
    part = rest[s * len(rest) // len(cuts):(s + 1) * len(rest) // len(cuts)] + [cut]
    _write_shard(directory / f"fuzz-{s:06d}.tar", part, 100_000 * (s + 1), rng)
  return (lambda: WebDatasetSource(f"{directory}/clean-*.tar"),
          lambda: WebDatasetSource(f"{directory}/clean-*.tar,{directory}/fuzz-*.tar"))


def _write_files(directory: pathlib.Path, items: list[Item]) -> None:
  directory.mkdir(parents=True, exist_ok=True)
  for n, item in enumerate(items):
    if item.image is not None:
      (directory / f"{n:06d}.{item.ext}").write_bytes(item.image)
    if item.caption is not None:
      caption = item.caption if isinstance(item.caption, bytes) else item.caption.encode()
      (directory / f"{n:06d}.txt").write_bytes(caption)


def write_tfds(directory: pathlib.Path, clean: list[Item], fuzz: list[Item]):
  _write_files(directory / "clean_files", clean)
  _write_files(directory / "fuzz_files", clean + fuzz)
  clean_dir = build_tfds(str(directory / "clean_files"), str(directory / "tfds_clean"))
  fuzz_dir = build_tfds(str(directory / "fuzz_files"), str(directory / "tfds_fuzz"))
  broken = [it.label for it in fuzz if it.kind == "broken_member"]
  assert sum(damage_chunks(shard, broken)
             for shard in pathlib.Path(fuzz_dir).glob("*.array_record-*")) == len(broken)
  return lambda: TfdsSource(clean_dir), lambda: TfdsSource(fuzz_dir)


WRITERS = {"array_record": write_array_record, "wds": write_wds, "tfds": write_tfds}


# ---------------------------------------------------------------- reading

@pytest.fixture(scope="module")
def pipeline_parts():
  tokenizer = load_or_train_tokenizer(small_config())
  codes_fn = StandInCodes(grid=4, levels=4)
  return Vocab(text_size=tokenizer.vocab_size, image_codes=codes_fn.num_codes), tokenizer, codes_fn


def read_epoch(source, parts, resize: bool = True) -> tuple[collections.Counter, dict[str, int]]:
  """One epoch through the trainer's pipeline -> (captions delivered, skip counters)."""
  vocab, tokenizer, codes_fn = parts
  cfg = small_config(resize=resize)
  delivered = collections.Counter()
  with make_train_iterator(cfg, vocab, codes_fn, 0, 1, 8, tokenizer=tokenizer, source=source,
                           drop_remainder=False) as it:
    for batch in it:
      for r in range(len(batch["tokens"])):
        for doc in unpack_row({k: v[r] for k, v in batch.items()}):
          t = doc["tokens"]
          delivered[tokenizer.decode(t[t < vocab.text_size])] += 1
    return delivered, it.stats()


def expected(source: str, clean: list[Item], fuzz: list[Item], resize: bool = True):
  """-> (captions that must be delivered, skip counters that must result)."""
  reasons = dict(KINDS[source])
  if not resize:
    reasons["other_size"] = "wrong_shape"
  keep = collections.Counter(it.label for it in clean)
  keep.update(it.label for it in fuzz if reasons[it.kind] is KEPT)
  skipped = collections.Counter(reasons[it.kind] for it in fuzz if reasons[it.kind] is not KEPT)
  return keep, skipped


def check_epoch(source_name: str, source, clean, fuzz, parts, resize: bool = True) -> None:
  delivered, stats = read_epoch(source, parts, resize)
  keep, skipped = expected(source_name, clean, fuzz, resize)
  assert delivered == keep, (sorted(set(delivered) - set(keep))[:5],
                             sorted(set(keep) - set(delivered))[:5])
  got = {k.removeprefix("data/skipped_"): v for k, v in stats.items()
         if k.startswith("data/skipped_") and v}
  assert got == dict(skipped)
  assert stats["data/examples"] == sum(keep.values())
  assert stats["data/skipped"] == sum(skipped.values())


# ---------------------------------------------------------------- tests

@pytest.mark.parametrize("source_name", SOURCES)
def test_every_fault_is_skipped_and_counted(source_name, tmp_path, pipeline_parts):
  """A few records of every kind (3 each, 4 cut wds shards) among 12 clean ones."""
  clean, fuzz = make_items(12, {k: 3 + (k == "cut_member") for k in KINDS[source_name]})
  _, fuzzed = WRITERS[source_name](tmp_path, clean, fuzz)
  source = fuzzed()
  check_epoch(source_name, source, clean, fuzz, pipeline_parts)
  check_epoch(source_name, source, clean, fuzz, pipeline_parts, resize=False)


@pytest.mark.parametrize("broken", [0, 2, 4])  # the shard's first header, one inside, the last
def test_a_damaged_tar_header_does_not_end_its_shard(tmp_path, broken):
  """tarfile stops at the first bad header; the index picks up after it."""
  clean, _ = make_items(5, {})
  clean[broken].kind = "broken_member"
  path = tmp_path / "shard.tar"
  _write_shard(path, clean, 0, np.random.default_rng(0))
  source = WebDatasetSource(str(path))
  got = [source[i] for i in range(len(source))]
  assert [r.get("error") for r in got] == [("unreadable" if i == broken else None)
                                           for i in range(5)]
  assert [r["caption"] for r in got if "error" not in r] == \
      [it.label for i, it in enumerate(clean) if i != broken]


def test_truncated_png_ending_after_its_pixels_is_bad():
  """PIL decodes a PNG cut after its image data; the missing IEND tells."""
  png = _encode(Image.fromarray(image_of(0)), "PNG")
  decode_image(png + b"trailing junk", SIZE)  # bytes after IEND are common and harmless
  for cut in range(1, 21):
    with pytest.raises(BadRecord, match="bad_image"):
      decode_image(png[:-cut], SIZE)


@pytest.mark.slow
@pytest.mark.parametrize("source_name", SOURCES)
def test_thousand_fuzzed_records_and_throughput(source_name, tmp_path, pipeline_parts):
  """1,000 fuzzed records among 1,000 clean ones; records/s within 2x of clean files."""
  clean, fuzz = make_items(1000, spread(source_name, 1000))
  clean_source, fuzzed_source = WRITERS[source_name](tmp_path, clean, fuzz)
  check_epoch(source_name, fuzzed_source(), clean, fuzz, pipeline_parts)

  def rates(make_source) -> tuple[float, float]:
    """records/s of wall-clock time and of this process's CPU time (Grain's threads included)."""
    wall, cpu = time.perf_counter(), time.process_time()
    source = make_source()  # indexing is part of reading a tar
    _, stats = read_epoch(source, pipeline_parts)
    assert stats["data/examples"] + stats["data/skipped"] == len(source)
    return len(source) / (time.perf_counter() - wall), len(source) / (time.process_time() - cpu)

  runs = {"clean": [], "fuzzed": []}
  for _ in range(2):  # alternated, best of two: the CPU is shared
    runs["clean"].append(rates(clean_source))
    runs["fuzzed"].append(rates(fuzzed_source))
  (clean_wall, clean_cpu), (fuzzed_wall, fuzzed_cpu) = (
      np.max(runs[k], axis=0) for k in ("clean", "fuzzed"))
  print(f"\n{source_name}: records/s clean {clean_wall:.0f} wall, {clean_cpu:.0f} CPU; "
        f"fuzzed {fuzzed_wall:.0f} wall, {fuzzed_cpu:.0f} CPU; ratio "
        f"{fuzzed_wall / clean_wall:.2f} wall, {fuzzed_cpu / clean_cpu:.2f} CPU")
  assert fuzzed_wall >= 0.5 * clean_wall
