"""`--mesh`: generation restores every stage sharded as in training. On 8 fake
devices, fsdp=4 x tensor=2, a tiny root draws the same codes and images as on
one device (same seed), and its params really are sharded."""

import jax
import numpy as np
import pytest

from stage_factories import train_tiny_root
from unified_mm.generate.pipeline import generate
from unified_mm.generate.stages import load_stages
from unified_mm.parallel.placement import CONFIG, parse_mesh

MESH = "data=1,fsdp=4,tensor=2"
PROMPTS = ["a red circle", "two blue squares"]


@pytest.fixture(scope="module")
def run_root(tmp_path_factory):
  # Two kv heads: tensor=2 splits them (one, as in the other tiny roots, would not divide).
  return train_tiny_root(tmp_path_factory.mktemp("root"), jax.devices()[:1],
                         ar_model={"num_kv_heads": 2})


def test_parse_mesh():
  assert parse_mesh("") is None and parse_mesh(None) is None and parse_mesh("config") == CONFIG
  assert parse_mesh("fsdp=4,tensor=2") == {"data": -1, "fsdp": 4, "tensor": 2}
  for bad in ("fsdp", "pipeline=2", "fsdp=four"):
    with pytest.raises(ValueError, match="--mesh"):
      parse_mesh(bad)


def _sharded_dims(module) -> set:
  from flax import nnx
  names = set()
  for leaf in jax.tree.leaves(nnx.state(module, nnx.Param)):
    assert len(leaf.sharding.device_set) == 8
    names |= {a for a in leaf.sharding.spec if a is not None}
  return names


@pytest.mark.slow  # trains a tiny root (~1-2 min on 2 shared cores)
def test_generate_on_fsdp4_tensor2_equals_one_device(run_root):
  assert jax.device_count() == 8
  one = load_stages(run_root)
  placed = load_stages(run_root, mesh=parse_mesh(MESH))
  # Sharded like training: weights split over fsdp (embed) and tensor (heads, mlp).
  assert {"fsdp", "tensor"} <= _sharded_dims(placed.ar.model)
  assert {"fsdp", "tensor"} <= _sharded_dims(placed.renderer)
  assert "tensor" in _sharded_dims(placed.frontend.model)
  assert placed.ar.rules and placed.renderer_rules
  kw = dict(seed=3, steps=2, cfg_scale=3.0)
  a, b = generate(one, PROMPTS, **kw), generate(placed, PROMPTS, **kw)
  np.testing.assert_array_equal(a.codes, b.codes)
  # The same images up to rounding: split over devices, the renderer's and decoder's
  # sums run in another order, and a value on a uint8 boundary may land one level
  # off (64c22c1's slow run: 1 of 24,576 values). A wrong sharding moves far more.
  diff = np.abs(np.asarray(a.images, np.int32) - np.asarray(b.images, np.int32))
  assert diff.max() <= 1 and np.mean(diff > 0) <= 1e-3, (diff.max(), np.mean(diff > 0))


@pytest.mark.slow  # the tiny root above; the benchmark twice
def test_eval_sweep_on_fsdp4_tensor2_equals_one_device(run_root, tmp_path):
  """`umm eval --mesh`: the sweep restores every stage on the mesh and scores the
  same verdicts as on one device."""
  import ml_collections

  from unified_mm.eval.sweep import run_sweep
  sweep = ml_collections.ConfigDict(dict(prompts_per_category=1, binding_counts=(2,), seed=20_011,
                                         caption_scenes=2, edit_scenes=0, settings=[{}]))
  one = list(run_sweep(run_root, sweep, tmp_path / "one"))
  placed = list(run_sweep(run_root, sweep, tmp_path / "placed", mesh=parse_mesh(MESH)))
  assert len(one) == len(placed) == 1
  keys = [k for k in one[0] if k not in ("seconds", "report")]
  assert any("/" in k for k in keys)  # every path's figures, not just the best one's
  assert {k: one[0][k] for k in keys} == {k: placed[0][k] for k in keys}
