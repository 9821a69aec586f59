"""Caption accuracy: what counts as a matching caption, and the `ar` stage's evaluator."""

import numpy as np
from flax import nnx

from unified_mm.config.loading import load_config
from unified_mm.data.shapes.captions import caption
from unified_mm.data.shapes.scene import scene_for_index
from unified_mm.eval.caption_eval import CaptionMatch, caption_matches
from unified_mm.tasks import make_task


def test_only_whole_scene_captions_match():
  scene = scene_for_index(0, 7, min_objects=2, max_objects=2)
  a, b = scene.objects
  both = f"a {a.colour} {a.kind} and a {b.colour} {b.kind}"
  assert caption_matches(both, scene)
  assert caption_matches(caption(scene, np.random.default_rng(0), style="full"), scene)
  assert not caption_matches(f"a {a.colour} {a.kind}", scene)  # true but partial
  assert not caption_matches(f"a {a.colour} {a.kind} and a {a.colour} {a.kind}", scene)
  assert not caption_matches(f"a {a.kind} and a {b.kind}", scene)  # no colours
  other = "red" if a.colour != "red" else "blue"
  assert not caption_matches(f"a {other} {a.kind} and a {b.colour} {b.kind}", scene)
  assert not caption_matches("colourless green ideas", scene)


def test_evaluator_captions_held_out_scenes():
  config = load_config("experiments/shapes.py:ar", [
      "model.d_model=32", "model.num_layers=1", "model.num_heads=2", "model.num_kv_heads=1",
      "model.head_dim=16", "model.mlp_dim=64", "eval.caption_scenes=3"])
  task = make_task(config)
  evaluator = CaptionMatch(task, num_scenes=3, seed=5)
  assert [len(s.objects) for s in evaluator.scenes] and \
      all(1 <= len(s.objects) <= 2 for s in evaluator.scenes)
  (name, value), = evaluator.run(task.build_model(nnx.Rngs(0)))
  assert name == "match" and value == 0.0  # an untrained model writes no valid caption
