"""The second reader reads renders back as exactly as the analyzer, on its own
steps, and agrees with it where both should be right."""

import numpy as np
import pytest
from scipy import ndimage

from unified_mm.data.shapes import analyzer, second_reader, vocab
from unified_mm.data.shapes.render import render
from unified_mm.data.shapes.scene import Scene, make_obj, scene_for_index

# A seed neither reader was built on: these scenes are fresh.
_FRESH_SEED = 20261205


def _objects(scene: Scene, with_size: bool = True) -> list[tuple]:
  return sorted((o.kind, o.colour, o.size, round(o.cx), round(o.cy)) if with_size
                else (o.kind, o.colour) for o in scene.objects)


@pytest.fixture(scope="module")
def scenes():
  return [scene_for_index(_FRESH_SEED, i, resolution=64, min_objects=1, max_objects=8)
          for i in range(300)]


def test_clean_renders_read_exactly(scenes):
  exact = np.mean([_objects(second_reader.read(render(s))) == _objects(s) for s in scenes])
  assert exact >= 0.99, f"kind, colour, size and centre exact on {exact:.1%} of scenes"


def test_blurred_noisy_renders_read_as_the_scene(scenes):
  rng = np.random.default_rng(0)
  read = []
  for s in scenes:
    image = ndimage.gaussian_filter(render(s).astype(np.float32), (0.6, 0.6, 0))
    image = np.clip(image + rng.normal(0.0, 10.0, image.shape), 0, 255)
    read.append(_objects(second_reader.read(image), False) == _objects(s, False))
  assert np.mean(read) >= 0.97, f"kind and colour exact on {np.mean(read):.1%} of scenes"


def test_every_kind_at_every_size_alone():
  for kind in vocab.KINDS:
    for size in vocab.SIZE_NAMES:
      obj = make_obj(kind, "red", size, 20, 20, 64)
      (found,) = second_reader.read(render(Scene((obj,), 64))).objects
      assert (found.kind, found.size, found.box) == (kind, size, obj.box)


def test_touching_objects_of_two_colours_are_two_objects():
  image = np.full((64, 64, 3), vocab.BACKGROUND, np.uint8)
  image[20:35, 10:25] = vocab.COLOURS["blue"]
  image[20:35, 25:40] = vocab.COLOURS["yellow"]
  found = second_reader.read(image).objects
  assert [(o.kind, o.colour, o.box) for o in found] == [
      ("square", "blue", (10, 20, 25, 35)), ("square", "yellow", (25, 20, 40, 35))]
  # The analyzer, on its own steps, sees the same two squares.
  assert [(o.kind, o.colour) for o in analyzer.analyze(image).objects] == [
      ("square", "blue"), ("square", "yellow")]


def test_colour_drift_keeps_the_nearest_colour_and_background_is_empty():
  image = np.full((64, 64, 3), vocab.BACKGROUND, np.uint8)
  assert second_reader.read(image).objects == ()
  obj = make_obj("circle", "purple", "large", 30, 30, 64)
  drifted = render(Scene((obj,), 64)).astype(np.int32)
  inside = (drifted != vocab.BACKGROUND).any(-1)
  drifted[inside] += np.array([40, 30, -40])  # purple (128, 0, 255) pushed towards blue-ish
  (found,) = second_reader.read(np.clip(drifted, 0, 255)).objects
  assert (found.kind, found.colour) == ("circle", "purple")
