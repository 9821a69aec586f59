"""Scene sampling and rendering: determinism, layout invariants, exact pixels."""

import json

import numpy as np
import pytest

from unified_mm.data.shapes import masks, vocab
from unified_mm.data.shapes.render import render
from unified_mm.data.shapes.scene import GAP, Scene, make_obj, sample_scene, scene_for_index


def _assert_layout_ok(scene: Scene) -> None:
  """In bounds, boxes match the drawn masks, and every pair is >= GAP apart."""
  r = scene.resolution
  for o in scene.objects:
    x0, y0, x1, y1 = o.box
    assert 0 <= x0 < x1 <= r and 0 <= y0 < y1 <= r
    assert masks.mask(o.kind, vocab.size_px(o.size, r)).shape == (y1 - y0, x1 - x0)
    assert (o.cx, o.cy) == ((x0 + x1) / 2, (y0 + y1) / 2)
  for i, a in enumerate(scene.objects):
    for b in scene.objects[i + 1:]:
      apart_x = a.box[2] + GAP <= b.box[0] or b.box[2] + GAP <= a.box[0]
      apart_y = a.box[3] + GAP <= b.box[1] or b.box[3] + GAP <= a.box[1]
      assert apart_x or apart_y, (a, b)


def test_same_seed_same_scene_and_image():
  a, b = sample_scene(42, max_objects=8), sample_scene(42, max_objects=8)
  assert a == b
  np.testing.assert_array_equal(render(a), render(b))
  assert sample_scene(43, max_objects=8) != a


def test_scene_for_index_is_random_access():
  forward = [scene_for_index(7, i) for i in range(20)]
  assert scene_for_index(7, 13) == forward[13]
  assert len({json.dumps(s.to_dict()) for s in forward}) == 20
  assert scene_for_index(8, 13) != forward[13]


def test_json_round_trip():
  scene = scene_for_index(1, 2, resolution=128, max_objects=10)
  text = json.dumps(scene.to_dict())
  assert Scene.from_dict(json.loads(text)) == scene


@pytest.mark.parametrize("resolution", [32, 64, 96, 128, 256])
def test_layouts_valid_at_every_resolution(resolution):
  for i in range(100):
    scene = scene_for_index(3, i, resolution=resolution, min_objects=0, max_objects=8)
    _assert_layout_ok(scene)
    image = render(scene)
    assert image.shape == (resolution, resolution, 3) and image.dtype == np.uint8


def test_aligned_scenes_keep_their_invariants_and_sit_on_the_lattice():
  off = 0
  for i in range(100):
    scene = scene_for_index(3, i, max_objects=4, align=8)
    _assert_layout_ok(scene)
    off += sum((o.box[0] - 1) % 8 or (o.box[1] - 1) % 8 for o in scene.objects)
  assert off == 0
  # align=0 draws exactly what scenes drew before the option: runs keep their records.
  assert scene_for_index(3, 5, max_objects=4, align=0) == scene_for_index(3, 5, max_objects=4)


def test_object_counts_follow_the_request():
  counts = [len(scene_for_index(5, i, min_objects=2, max_objects=6).objects) for i in range(300)]
  assert set(counts) == {2, 3, 4, 5, 6}


def test_twenty_objects_fit_at_128():
  for i in range(30):
    scene = scene_for_index(11, i, resolution=128, num_objects=20)
    assert len(scene.objects) == 20
    _assert_layout_ok(scene)


def test_too_many_objects_is_an_error_not_a_silent_drop():
  with pytest.raises(ValueError, match="do not fit"):
    sample_scene(0, resolution=32, num_objects=60)


@pytest.mark.parametrize("size", vocab.SIZE_NAMES)
def test_every_kind_and_colour_renders_exact_palette_pixels(size):
  r = 64
  for kind in vocab.KINDS:
    for colour in vocab.COLOURS:
      obj = make_obj(kind, colour, size, 5, 7, r)
      image = render(Scene((obj,), r))
      drawn = (image != vocab.BACKGROUND).any(-1)  # [H, W]
      expected = masks.mask(kind, vocab.size_px(size, r))
      assert drawn.sum() == expected.sum() > 0
      np.testing.assert_array_equal(drawn[7:obj.box[3], 5:obj.box[2]], expected)
      assert (image[drawn] == vocab.COLOURS[colour]).all()


def test_no_anti_aliasing_only_palette_colours_appear():
  allowed = {tuple(c) for c in vocab.palette_array()}
  for i in range(50):
    image = render(scene_for_index(9, i, resolution=128, max_objects=12))
    assert {tuple(p) for p in image.reshape(-1, 3)} <= allowed


def test_kinds_sizes_and_colours_are_all_sampled():
  objs = [o for i in range(400) for o in scene_for_index(2, i, max_objects=4).objects]
  assert {o.kind for o in objs} == set(vocab.KINDS)
  assert {o.colour for o in objs} == set(vocab.COLOURS)
  assert {o.size for o in objs} == set(vocab.SIZE_NAMES)


def test_sizes_are_distinct_and_ordered_at_supported_resolutions():
  for r in (32, 64, 128, 256):
    px = [vocab.size_px(s, r) for s in vocab.SIZE_NAMES]
    assert px == sorted(set(px)), (r, px)


def test_background_is_far_from_every_palette_colour():
  palette = vocab.palette_array()[:-1].astype(float)
  gaps = np.linalg.norm(palette[:, None] - palette[None], axis=-1)
  closest_pair = gaps[~np.eye(len(palette), dtype=bool)].min()
  to_background = np.linalg.norm(palette - np.array(vocab.BACKGROUND), axis=-1).min()
  assert to_background > closest_pair > 2 * 60  # 60: the analyzer's threshold


def test_kind_map_matches_the_render_and_cells_name_their_kind():
  from unified_mm.data.shapes.render import cell_kinds, render_kinds
  scene = scene_for_index(3, 5, resolution=64, min_objects=3, max_objects=5)
  image, labels = render(scene), render_kinds(scene)
  drawn = (image != np.array(vocab.BACKGROUND, np.uint8)).any(-1)
  np.testing.assert_array_equal(labels > 0, drawn)  # labelled exactly where drawn
  for obj in scene.objects:  # the kind of the object on top at its box's pixels
    x0, y0, x1, y1 = obj.box
    top = labels[y0:y1, x0:x1][masks.mask(obj.kind, vocab.size_px(obj.size, 64))]
    assert (top == 1 + vocab.KINDS.index(obj.kind)).mean() > 0.5
  cells = cell_kinds(scene, 8)
  assert cells.shape == (8, 8)
  touched = labels.reshape(8, 8, 8, 8).transpose(0, 2, 1, 3).reshape(8, 8, 64)
  np.testing.assert_array_equal(cells > 0, (touched > 0).any(-1))  # any object pixel
  for i, j in zip(*np.nonzero(cells)):
    assert cells[i, j] in touched[i, j]
