"""The 256-px presets (experiments/real.py) on real photographs, offline (#20 item 4).

12 photographs that scikit-image ships, with hand-written captions, plus a
truncated PNG and a blank caption, as WebDataset shards and as the TFDS data set
`umm data tfds` builds from the same files. Each stage trains a few steps on the
8 fake devices: the tokenizer on the shards, the transformer on the TFDS data
set, the renderer on the pre-tokenised ArrayRecord file `umm data build --codes`
writes. The loss falls, bad records are counted, a tokenizer run resumed from
its mid-epoch checkpoint logs bit-identical losses to an uninterrupted one, and
`umm generate` draws a 256-px PNG from the root. In the default run: about two
minutes on the idle 2 cores, most of it compiling.
"""

from __future__ import annotations

import json
import pathlib
import shutil
import subprocess
import sys

import pytest

from real_photos import BAD, photo_items, write_image_dir, write_shard
from unified_mm.cli.commands.train import train_stage
from unified_mm.config.loading import load_config

REAL = str(pathlib.Path(__file__).resolve().parents[3] / "experiments/real.py")
def losses(workdir) -> dict[int, float]:
  rows = [json.loads(line) for line in open(pathlib.Path(workdir) / "metrics.jsonl")]
  return {r["step"]: r["train/loss"] for r in rows if "train/loss" in r}


def last(workdir, key):
  rows = [json.loads(line) for line in open(pathlib.Path(workdir) / "metrics.jsonl")]
  return [r[key] for r in rows if key in r][-1]


STEPS = 4


def quick(c, path, steps=STEPS, *, source="wds", save_every=0):
  c.data.update(source=source, path=path)
  if "held_out_records" in c.data:
    c.data.held_out_records = 2
  c.train.update(steps=steps, log_every_steps=1, eval_every_steps=steps, progress=False)
  c.ckpt.update(save_every_steps=save_every, async_save=False)
  c.optim.update(warmup_steps=0)
  return c


@pytest.fixture(scope="module")
def root(tmp_path_factory):
  """Shards, a TFDS data set and a trained run root: tokenizer/, ar/, renderer/ (each
  stage a few steps)."""
  base = tmp_path_factory.mktemp("real")
  umm = [sys.executable, "-m", "unified_mm.cli.main"]
  items = photo_items(256)
  items = items[:5] + BAD + items[5:]  # the bad ones mid-shard, not among the held-out tail
  write_shard(base / "000000.tar", items[:7])
  write_shard(base / "000001.tar", items[7:], start=7)
  shards = str(base / "*.tar")
  write_image_dir(base / "images", items)
  built = subprocess.run([*umm, "data", "tfds", "--images", str(base / "images"), "--out",
                          str(base / "tfds")], check=True, capture_output=True, text=True)
  tfds_dir = built.stdout.split("--path ")[-1].rstrip(")\n")
  run = base / "run"
  subprocess.run([*umm, "data", "tokenizer", "--source", "wds", "--path", shards,
                  "--out", str(base / "text")], check=True)
  # Checkpoints at 2 and 4: the resume test restarts from the mid-epoch one.
  train_stage(quick(load_config(REAL + ":tokenizer"), shards, save_every=2), run / "tokenizer")
  subprocess.run([*umm, "data", "build", "--source", "wds", "--path", shards,
                  "--codes", str(run / "tokenizer"), "--out", str(base / "codes.array_record")],
                 check=True)
  ar = quick(load_config(REAL + ":ar"), tfds_dir, source="tfds")
  ar.data.update(image_tokenizer_dir=str(run / "tokenizer"), tokenizer_dir=str(base / "text"))
  train_stage(ar, run / "ar")
  renderer = quick(load_config(REAL + ":renderer"), str(base / "codes.array_record"),
                   source="array_record")
  renderer.data.update(image_tokenizer_dir=str(run / "tokenizer"), tokenizer_dir=str(base / "text"))
  renderer.sample.steps = 2
  renderer.optim.lr = 3e-3  # a flow loss is noisy (random times): a visible fall in 4 steps
  train_stage(renderer, run / "renderer")
  return {"shards": shards, "tfds": tfds_dir, "run": run, "base": base}


@pytest.mark.parametrize("stage", ["tokenizer", "ar", "renderer"])
def test_stage_trains_on_photos(root, stage):
  got = losses(root["run"] / stage)
  assert len(got) == STEPS and got[3] + got[4] < got[1] + got[2], got
  if stage != "renderer":  # the renderer reads the built file; the build kept the bad ones too
    assert last(root["run"] / stage, "data/skipped") >= 1


def test_real_evaluators_ran(root):
  run = root["run"]
  assert last(run / "tokenizer", "eval/tokenizer/latent_psnr") > 5
  assert 0 < last(run / "tokenizer", "eval/tokenizer/code_usage") <= 1
  assert (run / "tokenizer/latent_stats.json").exists()
  assert list((run / "tokenizer/eval").glob("grid_*.png"))
  assert last(run / "renderer", "eval/renderer/loss") > 0
  assert list((run / "renderer/eval").glob("renderer_grid_*.png"))


def test_tokenizer_resumes_bit_identically_mid_epoch(root, tmp_path):
  """The fixture's tokenizer run, restarted from its step-2 checkpoint (8 images a step
  from 10 good training records: inside the second pass), logs the same losses."""
  straight = root["run"] / "tokenizer"
  resumed = tmp_path / "tokenizer"
  shutil.copytree(straight, resumed)
  shutil.rmtree(resumed / "checkpoints" / "4")
  (resumed / "metrics.jsonl").write_text("")
  train_stage(quick(load_config(REAL + ":tokenizer"), root["shards"], save_every=2), resumed)
  a, b = losses(straight), losses(resumed)
  assert sorted(b) == [3, 4] and [a[3], a[4]] == [b[3], b[4]]
  assert last(straight, "data/examples") == last(resumed, "data/examples")
  assert last(straight, "data/skipped") == last(resumed, "data/skipped")


def test_generate_writes_a_png(root, subprocess_env, tmp_path):
  out = tmp_path / "drawn.png"
  subprocess.run([sys.executable, "-m", "unified_mm.cli.main", "generate", "--workdir",
                  str(root["run"]), "--prompt", "a cup of coffee on a saucer", "--out", str(out),
                  "--steps", "2"], check=True, env=subprocess_env(1))
  from PIL import Image
  assert Image.open(out).size == (256, 256)
