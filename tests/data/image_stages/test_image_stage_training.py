"""Every source trains both image stages (#20): the tokenizer and the renderer, tiny,
on the 8 fake devices, from WebDataset shards, a TFDS data set and an ArrayRecord
file of the same photographs (the shapes world is every other test's). A run
stopped after its step-1 checkpoint and resumed ends bitwise equal to a straight
one (params and the losses it logged), and the bad records are counted in the
metrics the trainer writes.

Slow: 6 pairs of short runs, each compiling its step on 8 devices.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

from real_photos import read_from, write_sources
from stage_factories import SHAPES, quick, tiny_tokenizer_model
from unified_mm.cli.commands.train import train_stage
from unified_mm.config.loading import load_config
from unified_mm.train.checkpoint import open_run
from unified_mm.train.metrics import read_metrics_rows

pytestmark = pytest.mark.slow
SIZE = 64


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
  return write_sources(tmp_path_factory.mktemp("photos"), SIZE)


def stage_config(stage: str, source: str, path: str, steps: int):
  if stage == "tokenizer":
    c = tiny_tokenizer_model(quick(load_config(SHAPES + ":tokenizer"), steps))
  else:  # the parameter-free stand-in tokenizer (3 latent channels) under a tiny DiT
    c = quick(load_config(SHAPES + ":renderer"), steps)
    c.model.update(latent_channels=3, visual_levels=(), embed_dim=32, depth=1, num_heads=2)
    if c.model.plan_channels:
      c.model.plan_channels = 3
    c.sample.steps = 2
  c.eval.num_scenes = 0
  c = read_from(c, source, path, SIZE)
  c.mesh.update(data=4, fsdp=2, tensor=1)
  # A constant rate: the 1-step run's schedule is the 2-step run's first step.
  c.optim.update(warmup_steps=0, decay="constant")
  c.ckpt.update(save_every_steps=1)
  return c


def final(workdir):
  with open_run(workdir) as (ckpts, step, _):
    shapes = ckpts.saved_param_shapes(step)
    here = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    target = {k: jax.ShapeDtypeStruct(s, np.float32, sharding=here) for k, s in shapes.items()}
    return step, {k: np.asarray(v) for k, v in ckpts.restore_params(step, target).items()}


@pytest.mark.parametrize("stage", ["tokenizer", "renderer"])
@pytest.mark.parametrize("source", ["wds", "tfds", "array_record"])
def test_stage_trains_on_the_source_resumes_bitwise_and_counts(sources, tmp_path, source, stage):
  path = sources[source]
  straight, resumed = tmp_path / "straight", tmp_path / "resumed"
  train_stage(stage_config(stage, source, path, 2), straight, devices=jax.devices())
  train_stage(stage_config(stage, source, path, 1), resumed, devices=jax.devices())
  train_stage(stage_config(stage, source, path, 2), resumed, devices=jax.devices())
  step_a, a = final(straight)
  step_b, b = final(resumed)
  assert step_a == step_b == 2
  for k in a:
    np.testing.assert_array_equal(a[k], b[k], err_msg=k)
  rows = lambda w: {r["step"]: r for r in read_metrics_rows(w) if "train/loss" in r}
  ra, rb = rows(straight), rows(resumed)
  assert set(ra) == set(rb) == {1, 2}
  assert all(np.isfinite(r["train/loss"]) for r in ra.values())
  assert [ra[s]["train/loss"] for s in (1, 2)] == [rb[s]["train/loss"] for s in (1, 2)]
  # 16 rows of 12 good photos a pass: the second pass began, the bad ones were met.
  assert ra[2]["data/examples"] == rb[2]["data/examples"] >= 16
  assert ra[2]["data/skipped"] == rb[2]["data/skipped"] >= 1
  reasons = "data/skipped_bad_image" if stage == "tokenizer" else "data/skipped_empty_caption"
  assert ra[2][reasons] >= 1
