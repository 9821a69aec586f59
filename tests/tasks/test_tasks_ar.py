"""The `ar` stage: shapes documents through the Grain pipeline into the transformer."""

import jax
import numpy as np
import pytest

from unified_mm.cli.commands.train import train_stage
from unified_mm.config.loading import load_config
from unified_mm.tasks import make_task

TINY = ["model.d_model=64", "model.num_layers=2", "model.num_heads=4", "model.num_kv_heads=2",
        "model.head_dim=16", "model.mlp_dim=128", "data.seq_len=128", "train.batch_size=8",
        "train.log_every_steps=5", "train.eval_every_steps=0", "optim.warmup_steps=5",
        "ckpt.save_every_steps=1000", "mesh.data=-1", "train.progress=False",
        "train.steps=30", "optim.lr=3e-3"]


@pytest.fixture(scope="module")
def config():
  return load_config("experiments/shapes.py:ar", TINY)


@pytest.fixture(scope="module")
def task(config):
  return make_task(config)


def test_batches_hold_whole_image_spans(task):
  with task.make_data(0, 1, 4) as data:
    batch = next(data)
  assert set(batch) == set(task.batch_axes())
  v = task.vocab
  grid = task.config.data.stand_in_grid ** 2
  for row, segs in zip(batch["tokens"], batch["segment_ids"]):
    for s in np.unique(segs[segs > 0]):
      doc = row[segs == s]
      # Every complete image span holds exactly the grid's count of image codes.
      opens, closes = np.flatnonzero(doc == v.boi), np.flatnonzero(doc == v.eoi)
      for a, b in zip(opens, closes):
        span = doc[a + 1:b]
        assert len(span) == grid
        assert ((span >= v.image_range[0]) & (span < v.image_range[1])).all()
  assert (batch["modality"][batch["loss_mask"] > 0] >= 0).all()


def test_loss_falls(config, tmp_path):
  train_stage(config, tmp_path, devices=jax.devices())
  import json
  rows = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  losses = [r["train/loss"] for r in rows if "train/loss" in r]
  assert len(losses) >= 4
  assert losses[-1] < losses[0] - 1.0, losses
  assert "train/image/loss" in rows[-1] and "train/text/loss" in rows[-1]


@pytest.mark.parametrize("override, key", [
    ("loss.modality_weights.txt=2.0", "loss.modality_weights.txt"),
    ("loss.modality_weights.text=-1.0", "loss.modality_weights.text"),
])
def test_bad_modality_weight_names_the_key(override, key):
  from unified_mm.config.loading import ConfigError  # noqa: PLC0415
  with pytest.raises(ConfigError) as err:
    make_task(load_config("experiments/shapes.py:ar", [*TINY, override]))
  assert key.split(".")[-1] in str(err.value)


def test_code_digits_follow_the_image_codes(config):
  """Stand-in codes (no stage 1) bring their own digits; a tokenizer whose levels or
  code ids differ from model.code_levels / model.code_offset is refused by key."""
  import types

  from unified_mm.config.loading import ConfigError
  digits = load_config("experiments/shapes.py:ar", TINY + ["model.code_levels=(8, 5, 5, 5)",
                                                           "model.code_offset=512"])
  task = make_task(digits)
  assert tuple(task.config.model.code_levels) == (4, 4, 4)  # the stand-in's 64 codes
  assert task.config.model.code_offset == task.vocab.image_offset
  task.codes_fn = types.SimpleNamespace(fsq_levels=(8, 5, 5, 5))
  model = digits.model
  model.code_levels, model.code_offset = (8, 5, 5, 4), task.vocab.image_offset
  with pytest.raises(ConfigError, match=r"model\.code_levels=\(8, 5, 5, 4\)"):
    task._check_code_digits(model)
  model.code_levels, model.code_offset = (8, 5, 5, 5), 7
  with pytest.raises(ConfigError, match=r"model\.code_offset=7"):
    task._check_code_digits(model)
  model.code_offset = task.vocab.image_offset
  task._check_code_digits(model)  # matching: accepted
