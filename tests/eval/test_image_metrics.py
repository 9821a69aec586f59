import numpy as np

from unified_mm.data.shapes.render import render
from unified_mm.data.shapes.scene import scene_for_index
from unified_mm.eval.image_metrics import image_grid, palette_share


def test_palette_share_is_one_on_clean_renders_and_drops_with_blur():
  images = np.stack([render(scene_for_index(3, i, resolution=64, min_objects=2, max_objects=4))
                     for i in range(4)])
  assert palette_share(images) == 1.0
  # A 2-px horizontal box blur mixes colours on every vertical edge.
  blurred = ((images[:, :, 1:].astype(np.int32) + images[:, :, :-1]) // 2).astype(np.uint8)
  share = palette_share(blurred)
  assert 0.5 < share < 1.0
  # A pixel 20 RGB units off a palette colour still counts; 30 off does not.
  near = images.copy()
  near[..., 0] = np.where(near[..., 0] < 128, near[..., 0] + 20, near[..., 0] - 20)
  far = images.copy()
  far[..., 0] = np.where(far[..., 0] < 128, far[..., 0] + 30, far[..., 0] - 30)
  assert palette_share(near) == 1.0 and palette_share(far) == 0.0


def test_image_grid_places_rows_with_gaps():
  a = np.zeros((3, 4, 5, 3), np.uint8)
  b = np.full((3, 4, 5, 3), 7, np.uint8)
  grid = image_grid([a, b])
  assert grid.shape == (2 * 6, 3 * 7, 3)
  assert (grid[6:10, 0:5] == 7).all() and (grid[4:6] == 255).all()
