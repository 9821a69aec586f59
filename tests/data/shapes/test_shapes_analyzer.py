"""The analyzer reads renders back into scene graphs (the acceptance test)."""

import numpy as np
import pytest
from PIL import Image, ImageFilter

from unified_mm.data.shapes import analyzer, masks, vocab
from unified_mm.data.shapes.render import render
from unified_mm.data.shapes.scene import Scene, make_obj, scene_for_index
from unified_mm.data.shapes.scorer import multiset_match

# Seed never used while the analyzer was tuned: these scenes are fresh.
_FRESH_SEED = 20261123


def _recovered(truth: Scene, found: Scene, centre_tol: float = 1.0) -> bool:
  """Same objects one to one: kind, colour, and centre within centre_tol px."""
  left = list(found.objects)
  for t in truth.objects:
    hits = [f for f in left if (f.kind, f.colour) == (t.kind, t.colour)
            and abs(f.cx - t.cx) <= centre_tol and abs(f.cy - t.cy) <= centre_tol]
    if not hits:
      return False
    left.remove(hits[0])
  return not left


def test_acceptance_1000_fresh_scenes_at_64():
  scenes = [scene_for_index(_FRESH_SEED, i, resolution=64, min_objects=1, max_objects=8)
            for i in range(1000)]
  found = [analyzer.analyze(render(s)) for s in scenes]
  exact = np.mean([_recovered(s, f) for s, f in zip(scenes, found)])
  assert exact >= 0.995, f"exact multiset + counts + centres on {exact:.2%} of scenes"
  # Sizes are not part of the acceptance bar but should be just as exact.
  sizes = np.mean([sorted((o.cx, o.cy, o.size) for o in s.objects)
                   == sorted((o.cx, o.cy, o.size) for o in f.objects)
                   for s, f in zip(scenes, found)])
  assert sizes >= 0.995


@pytest.mark.parametrize("resolution", [32, 128, 256])
def test_other_resolutions(resolution):
  scenes = [scene_for_index(_FRESH_SEED + 1, i, resolution=resolution, max_objects=8)
            for i in range(60)]
  exact = np.mean([_recovered(s, analyzer.analyze(render(s))) for s in scenes])
  assert exact >= 0.98


@pytest.mark.parametrize("resolution", [64, 128])
def test_every_kind_colour_and_size_alone(resolution):
  for kind in vocab.KINDS:
    for size in vocab.SIZE_NAMES:
      for colour in vocab.COLOURS:
        scene = Scene((make_obj(kind, colour, size, 3, 4, resolution),), resolution)
        (obj,) = analyzer.analyze(render(scene)).objects
        assert (obj.kind, obj.colour, obj.size) == (kind, colour, size)


def test_classify_every_kind_at_every_width():
  # Width 6 is the one width where a star and a diamond rasterise to blobs;
  # 41, 59 and 82 are the medium and large widths at 128 and 256.
  for width in [5] + list(range(7, 40)) + [41, 59, 82]:
    for kind in vocab.KINDS:
      assert analyzer.classify(masks.mask(kind, width))[0] == kind, (kind, width)


def test_empty_image_gives_empty_scene():
  image = render(Scene((), 64))
  assert analyzer.analyze(image).objects == ()


def test_snap_colours_threshold():
  image = np.array([[vocab.COLOURS["red"], (230, 30, 20), (191, 64, 64), vocab.BACKGROUND]],
                   dtype=np.uint8)  # [1, 4, 3]
  red = vocab.COLOUR_NAMES.index("red")
  assert analyzer.snap_colours(image).tolist() == [[red, red, -1, -1]]


def _degrade(image: np.ndarray, rng: np.random.Generator, noise: float, blur: float) -> np.ndarray:
  if blur:
    image = np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(blur)))
  return np.clip(image + rng.normal(0, noise, image.shape), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("noise,blur", [(20.0, 0.0), (10.0, 0.6)])
def test_tolerates_noise_and_soft_edges(noise, blur):
  rng = np.random.default_rng(0)
  scenes = [scene_for_index(_FRESH_SEED + 2, i, max_objects=8) for i in range(200)]
  ok = [multiset_match(s, analyzer.analyze(_degrade(render(s), rng, noise, blur)))
        for s in scenes]
  assert np.mean(ok) >= 0.98


def test_speckle_is_dropped():
  rng = np.random.default_rng(1)
  scene = scene_for_index(_FRESH_SEED + 3, 0, max_objects=4)
  image = render(scene)
  background = (image == vocab.BACKGROUND).all(-1)
  ys, xs = np.nonzero(background)
  pick = rng.choice(len(ys), 15, replace=False)
  image[ys[pick], xs[pick]] = vocab.COLOURS["yellow"]  # isolated single pixels
  assert multiset_match(scene, analyzer.analyze(image))
