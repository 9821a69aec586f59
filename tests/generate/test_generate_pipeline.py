"""`umm generate` / `umm caption` end to end on a run root of tiny, briefly
trained stages (tokenizer, AR, renderer): the wiring, not the quality."""

import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from stage_factories import SHAPES, quick, train_tiny_root
from unified_mm.cli.commands.train import train_stage
from unified_mm.config.loading import load_config

REPO = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def run_root(tmp_path_factory):
  import jax
  return train_tiny_root(tmp_path_factory.mktemp("root"), jax.devices()[:1],
                         text_only=False)


def _umm(*args, env):
  return subprocess.run([sys.executable, "-m", "unified_mm.cli.main", *map(str, args)],
                        capture_output=True, text=True, env=env, cwd=REPO, timeout=900)


@pytest.mark.slow
def test_generate_writes_pngs_with_and_without_renderer(run_root, tmp_path, subprocess_env):
  env = subprocess_env(1)
  prompts = tmp_path / "prompts.txt"
  prompts.write_text("a red circle\ntwo blue squares\na green star left of a white heart\n")
  for extra, out in (((), tmp_path / "rendered"), (("--preview",), tmp_path / "preview")):
    r = _umm("generate", "--workdir", run_root, "--prompt-file", prompts, "--out", out,
             "--batch-size", 2, "--steps", 2, *extra, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads(r.stdout.strip().splitlines()[-1])
    assert report["images"] == 3 and report["renderer"] == (not extra)
    files = sorted(out.glob("*.png"))
    assert [f.name for f in files] == ["000.png", "001.png", "002.png"]
    assert np.asarray(Image.open(files[0])).shape == (64, 64, 3)
  # Editing in context and chunked rendering go through the same command.
  r = _umm("generate", "--workdir", run_root, "--prompt", "make the circle blue",
           "--init-image", tmp_path / "preview/000.png", "--out", tmp_path / "edit.png",
           "--num", 2, "--chunks", 2, "--steps", 2, env=env)
  assert r.returncode == 0, r.stderr[-3000:]
  assert (tmp_path / "edit.png").exists() and (tmp_path / "edit_1.png").exists()
  r = _umm("caption", "--workdir", run_root, tmp_path / "preview/000.png", env=env)
  assert r.returncode == 0, r.stderr[-3000:]
  assert r.stdout.startswith(str(tmp_path / "preview/000.png") + "\t")


@pytest.mark.slow
def test_renderer_with_ar_text_states_trains_and_generates(run_root, tmp_path):
  """text_source="ar": the frozen AR transformer's hidden states are the text context."""
  from unified_mm.generate.pipeline import render_codes
  from unified_mm.generate.stages import load_stages
  from unified_mm.tasks import make_task
  import jax
  ren = quick(load_config(SHAPES + ":renderer_ar_text"))
  ren.data.update(image_tokenizer_dir=str(run_root / "tokenizer"), ar_dir=str(run_root / "ar"))
  ren.model.update(embed_dim=32, depth=1, num_heads=2, ar_dim=32)
  ren.eval.num_scenes = 0
  batch = next(make_task(ren).make_data(0, 1, 4))
  assert batch["text_states"].shape == (4, int(ren.model.text_len), 32)
  assert batch["text_mask"][:, 0].all() and not batch["text_mask"].all()
  state = train_stage(ren, tmp_path / "root/renderer", devices=jax.devices()[:1])
  assert np.isfinite(float(state.step))
  for name in ("tokenizer", "ar"):
    (tmp_path / "root" / name).symlink_to(run_root / name)
  stages = load_stages(tmp_path / "root")
  g = stages.frontend.code_grid
  images = render_codes(stages, np.zeros((2, g, g), np.int32), ["a red circle", "a star"],
                        jax.random.key(0), steps=2)
  assert images.shape == (2, 64, 64, 3) and images.dtype == np.uint8
