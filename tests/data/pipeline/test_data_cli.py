"""`umm data ...` run through the real CLI entry point (in process, to stay fast)."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from unified_mm.cli.main import main
from unified_mm.data.sources.array_record_source import ArrayRecordSource
from unified_mm.data.sources.shapes_source import ShapesSource
from unified_mm.data.text_tokenizer import load_tokenizer


def test_preview_writes_a_grid_png(tmp_path):
  out = tmp_path / "grid.png"
  assert main(["data", "preview", "--out", str(out), "--n", "8", "--seed", "1"]) == 0
  img = Image.open(out)
  assert img.format == "PNG" and img.width > 4 * 64 and img.height > 2 * 64
  pixels = np.asarray(img.convert("RGB"))
  # Scenes are drawn: the shapes world's grey background fills much of the sheet.
  assert (pixels == 128).all(axis=-1).mean() > 0.2


def test_tokenizer_command(tmp_path):
  corpus = tmp_path / "c.txt"
  corpus.write_text("\n".join(f"a small {c} square" for c in ("red", "green", "blue")) * 50)
  assert main(["data", "tokenizer", "--out", str(tmp_path / "tok"), "--corpus", str(corpus),
               "--vocab-size", "300"]) == 0
  tok = load_tokenizer(tmp_path / "tok")
  assert tok.decode(tok.encode("A small Red square!")) == "A small Red square!"  # exact by default
  assert main(["data", "tokenizer", "--out", str(tmp_path / "folded"), "--corpus", str(corpus),
               "--vocab-size", "300", "--fold-case"]) == 0
  folded = load_tokenizer(tmp_path / "folded")
  assert folded.encode("A small Red square!").tolist() == folded.encode("a small red square!").tolist()


def test_tokenizer_command_on_the_shapes_corpus_is_the_pipelines(tmp_path, tokenizer):
  assert main(["data", "tokenizer", "--out", str(tmp_path / "tok")]) == 0
  written = load_tokenizer(tmp_path / "tok")
  assert written.model_proto == tokenizer.model_proto


def test_build_shapes_then_bench_reads_it(tmp_path, capsys):
  out = tmp_path / "shapes.array_record"
  assert main(["data", "build", "--source", "shapes", "--limit", "12", "--out", str(out),
               "--codes", "stand_in"]) == 0
  back = ArrayRecordSource(str(out))
  want = ShapesSource(edit_turns=1)
  assert len(back) == 12 and back[3]["caption"] == want[3]["caption"]
  assert back[3]["codes"].shape == (8, 8)
  capsys.readouterr()
  assert main(["data", "bench", "--batches", "2", "--warmup", "1", "--batch-size", "2",
               "--config.data.source=array_record", f"--config.data.path={out}",
               "--config.data.seq_len=200"]) == 0
  result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  assert result["source"] == "array_record" and result["examples_per_s"] > 0
  assert 0 < result["fill"] <= 1


def test_build_shapes_needs_a_limit(tmp_path):
  assert main(["data", "build", "--source", "shapes", "--out", str(tmp_path / "x")]) == 2


def test_preview_documents_draws_training_documents(tmp_path):
  out = tmp_path / "docs.png"
  assert main(["data", "preview", "--documents", "--out", str(out), "--n", "4"]) == 0
  assert Image.open(out).format == "PNG"


def test_tfds_and_wds_build_to_array_record(tmp_path, capsys):
  from pipeline_test_data import SIZE, good_pairs, png_bytes, write_files, write_tar
  items = [(png_bytes(im), c) for im, c in good_pairs(5)]
  write_files(tmp_path / "files", items)
  write_tar(tmp_path / "00000.tar", items)
  assert main(["data", "tfds", "--images", str(tmp_path / "files"),
               "--out", str(tmp_path / "tfds")]) == 0
  tfds_dir = capsys.readouterr().out.split("--path ")[-1].strip().rstrip(")")
  for source, path in (("tfds", tfds_dir), ("wds", str(tmp_path / "00000.tar"))):
    out = tmp_path / f"{source}.array_record"
    assert main(["data", "build", "--source", source, "--path", path, "--out", str(out),
                 "--image-size", str(SIZE)]) == 0
    back = ArrayRecordSource(str(out))
    assert sorted(back[i]["caption"] for i in range(len(back))) == sorted(c for _, c in items)
