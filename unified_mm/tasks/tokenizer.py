"""Stage 1 as a Task: the image tokenizer trained on the shapes world.

Data are rendered on the fly from `scene_for_index(seed, index)`, so the
iterator's whole state is its step count: row i of step s on process p is
scene (s * P + p) * b + i. Held-out scenes use `eval.seed`, never seen in training.
With `data.source` = tfds | wds | array_record the images come from that source
through the Grain pipeline instead (tasks/image_data.py, decoded and cropped to
`data.resolution`), evaluated on its last `data.held_out_records` records
(tasks/real_evaluators.py).

Loss (both paths, pixels in [-1, 1]), with r(x) = l1_weight * |x| + mse_weight * x^2
and w = 1 + edge_weight at pixels on an edge of the target (+ tip_weight at
one-pixel tips; see `edge_weights`):
    mean w * r(latent reconstruction error)
  + code_weight * mean w * r(preview (FSQ) reconstruction error)
  + latent_reg_weight * mean(z^2)      (keeps the renderer's latent at a sane scale)
  + semantic_weight * cross-entropy of the codes' semantic head against each
    cell's kind (shapes world only, `model.semantic_classes`; off in the preset)
where the latent reconstruction decodes z + latent_noise * std(z) * N(0, 1)
(`loss.latent_noise`), so the decoder tolerates the renderer's sampling error.
`loss.freeze_encoder` fine-tunes the decoders only (with `ckpt.init_from`), so
the latents and visual tokens the other stages were trained on do not move.

L1 sharpens edges (where coarse codes leave a pixel uncertain, its optimum is
the likelier colour, not MSE's blend), MSE speeds up the early fit; measured
on this world, L1 alone learns the code path far more slowly.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from unified_mm.data.image_records import stack_images
from unified_mm.data.shapes import vocab
from unified_mm.data.shapes.render import cell_kinds, render
from unified_mm.data.step_indexed import StepIndexedIterator
from unified_mm.data.shapes.scene import scene_for_index
from unified_mm.models.image_tokenizer.autoencoder import TokenizerAutoencoder
from unified_mm.models.image_tokenizer.layers import as_signed_unit
from unified_mm.tasks.image_data import is_real, real_image_iterator, record_to_image
from unified_mm.tasks.image_task import ImageTask

IMAGE_AXES = ("batch", "height", "width", "channels")


def render_scenes(seed: int, indices, resolution: int, min_objects: int, max_objects: int,
                  align: int = 0):
  """(scenes, [N, H, W, 3] uint8) for scene indices of `seed` (`align`: scene.place_one)."""
  scenes = [scene_for_index(seed, int(i), resolution=resolution, min_objects=min_objects,
                            max_objects=max_objects, align=align) for i in indices]
  images = np.stack([render(s) for s in scenes]) if scenes else np.zeros(
      (0, resolution, resolution, 3), np.uint8)
  return scenes, images


class ShapesImageIterator(StepIndexedIterator):
  """This process's rows of an endless, seeded stream of rendered scenes."""

  def __init__(self, data_cfg, process_index: int, process_count: int, local_batch_size: int,
               kind_cell: int = 0, code_cell: int = 8):
    super().__init__(process_index, process_count, local_batch_size)
    self.seed, self.resolution = int(data_cfg.seed), int(data_cfg.resolution)
    self.min_objects, self.max_objects = int(data_cfg.min_objects), int(data_cfg.max_objects)
    self.kind_cell = kind_cell  # > 0: also each code cell's kind (`cell_kinds`)
    self.align = int(data_cfg.get("cell_align", 0))
    # `data.train_crop` > 0: each image a window of that size, at an offset on the code
    # cells' grid so an object keeps its place within its cells: a conv tokenizer
    # learns the same local task on a quarter of the pixels (docs/tokenizer.md).
    self.crop, self.code_cell = int(data_cfg.get("train_crop", 0)), code_cell

  def batch_for(self, rows: range) -> dict[str, np.ndarray]:
    scenes, images = render_scenes(self.seed, rows, self.resolution, self.min_objects,
                                   self.max_objects, self.align)
    batch = {"image": images}  # [b, H, W, 3] uint8
    if self.kind_cell:
      grid = self.resolution // self.kind_cell
      batch["cell_kind"] = np.array([cell_kinds(s, self.kind_cell) for s in scenes],
                                    np.int32).reshape(-1, grid, grid)
    if self.crop:  # the image in pixels, its cell kinds in cells
      cells = [self._crop_cells(row) for row in rows]
      batch = {k: np.stack([self._window(a, y, x, self.code_cell if k == "image" else 1)
                            for a, (y, x) in zip(v, cells)]) for k, v in batch.items()}
    return batch

  def _crop_cells(self, row: int) -> tuple[int, int]:
    """The seeded (y, x) of row's crop window, in code cells."""
    last = (self.resolution - self.crop) // self.code_cell
    y, x = np.random.default_rng((self.seed, row, 1)).integers(0, last + 1, 2)
    return int(y), int(x)

  def _window(self, a: np.ndarray, y: int, x: int, unit: int) -> np.ndarray:
    """The crop window at cell (y, x) of an array of `unit` entries a code cell."""
    size = self.crop // self.code_cell * unit
    return a[y * unit:y * unit + size, x * unit:x * unit + size]


def code_cell(model_cfg) -> int:
  """Pixels a side of one code cell: stem_patch * 2**code_stage (the model's code_downsample)."""
  return int(model_cfg.stem_patch) * 2**int(model_cfg.code_stage)


def psnr_from_mse(mse: jax.Array) -> jax.Array:
  """PSNR in dB for an MSE measured on the [-1, 1] scale (peak-to-peak 2)."""
  return 10.0 * jnp.log10(4.0 / jnp.maximum(mse, 1e-10))


def saturated_error(recon: jax.Array, target: jax.Array) -> jax.Array:
  """recon - target, except that overshooting a target at the edge of the range
  (+-1, i.e. pixel 0 or 255) costs nothing: outputs are clipped to [-1, 1] in
  use, and the palette's channels are mostly 0 or 255, so the decoder may
  saturate instead of landing exactly on the boundary."""
  err = recon - target
  free = ((target >= 1.0) & (err > 0)) | ((target <= -1.0) & (err < 0))
  return jnp.where(free, 0.0, err)


def edge_weights(target: jax.Array, edge_weight: float, tip_weight: float = 0.0,
                 threshold: float = 0.1) -> jax.Array:
  """[B, H, W, 1]: 1 + edge_weight where a pixel differs from a 4-neighbour,
  + tip_weight where it differs from 3 or 4 of them (1-px tips and points).

  Edges and corners are a few per cent of pixels yet decide whether a shape
  reads back as a diamond or a circle; without the extra weight the decoders
  learn them last, and the one-pixel tips of small stars and diamonds last of
  all. Computed from the target alone, so it applies to any image.
  """
  padded = jnp.pad(target, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")
  h, w = target.shape[1:3]
  shifts = [padded[:, 1 + dy:1 + dy + h, 1 + dx:1 + dx + w] for dy, dx in
            ((-1, 0), (1, 0), (0, -1), (0, 1))]
  differs = jnp.stack([jnp.abs(target - s).max(-1) > threshold for s in shifts])  # [4, B, H, W]
  count = differs.sum(0).astype(target.dtype)[..., None]  # [B, H, W, 1]
  return 1.0 + edge_weight * (count >= 1) + tip_weight * (count >= 3)


def pixel_weights(target: jax.Array, edge_weight: float, tip_weight: float):
  """`edge_weights`, or 1 when neither weight is set."""
  return edge_weights(target, edge_weight, tip_weight) if edge_weight or tip_weight else 1.0


def weighted_pixel_loss(err: jax.Array, weight, l1_weight: float, mse_weight: float) -> jax.Array:
  """mean weight * (l1_weight |err| + mse_weight err^2)."""
  return (weight * (l1_weight * jnp.abs(err) + mse_weight * jnp.square(err))).mean()


def reconstruction_loss(model: TokenizerAutoencoder, images: jax.Array, *, l1_weight: float,
                        mse_weight: float, code_weight: float, latent_reg_weight: float,
                        edge_weight: float = 0.0, tip_weight: float = 0.0,
                        latent_noise: float = 0.0, rng: jax.Array | None = None,
                        freeze_encoder: bool = False, semantic_weight: float = 0.0,
                        cell_kind: jax.Array | None = None
                        ) -> tuple[jax.Array, dict[str, jax.Array]]:
  out = model(images, latent_noise, rng, freeze_encoder)
  target = as_signed_unit(images)  # [B, H, W, 3]
  weight = pixel_weights(target, edge_weight, tip_weight)
  err_latent = saturated_error(out["latent_recon"], target)
  err_code = saturated_error(out["code_recon"], target)
  l1_latent, mse_latent = jnp.abs(err_latent).mean(), jnp.square(err_latent).mean()
  l1_code, mse_code = jnp.abs(err_code).mean(), jnp.square(err_code).mean()
  z_ms = jnp.square(out["z"]).mean()
  loss = (weighted_pixel_loss(err_latent, weight, l1_weight, mse_weight)
          + code_weight * weighted_pixel_loss(err_code, weight, l1_weight, mse_weight)
          + latent_reg_weight * z_ms)
  metrics = {
      "latent_l1": l1_latent, "latent_psnr": psnr_from_mse(mse_latent),
      "code_l1": l1_code, "code_psnr": psnr_from_mse(mse_code),
      "z_rms": jnp.sqrt(z_ms),
  }
  if semantic_weight:
    logits = out["semantic_logits"]  # [B, h, w, classes]
    nll = -jnp.take_along_axis(jax.nn.log_softmax(logits), cell_kind[..., None], -1).mean()
    loss = loss + semantic_weight * nll
    metrics["semantic_nll"] = nll
    metrics["semantic_accuracy"] = (logits.argmax(-1) == cell_kind).mean()
  return loss, metrics


class TokenizerTask(ImageTask):
  name = "tokenizer"

  def __init__(self, config, make_evaluators=None):
    super().__init__(config, make_evaluators)
    self.loss_weights = {k: float(config.loss[k]) for k in (
        "l1_weight", "mse_weight", "code_weight", "latent_reg_weight", "edge_weight")}
    self.loss_weights["tip_weight"] = float(config.loss.get("tip_weight", 0.0))
    self.loss_weights["latent_noise"] = float(config.loss.get("latent_noise", 0.0))
    self.loss_weights["freeze_encoder"] = bool(config.loss.get("freeze_encoder", False))
    self.loss_weights["semantic_weight"] = float(config.loss.get("semantic_weight", 0.0))
    self._check_semantic(config)
    self._check_crop(config)
    if self.loss_weights["freeze_encoder"] and float(config.optim.get("weight_decay", 0.0)):
      from unified_mm.config.loading import ConfigError  # noqa: PLC0415
      # Zero gradients leave Adam's update at exactly zero; weight decay would not.
      raise ConfigError("loss.freeze_encoder=True needs optim.weight_decay=0 "
                        f"(got {config.optim.weight_decay}): decay would move the frozen encoder")

  @staticmethod
  def _check_semantic(config) -> None:
    """loss.semantic_weight needs the head, of one class per kind plus background,
    and labels, which only the shapes world has."""
    from unified_mm.config.loading import ConfigError  # noqa: PLC0415
    if not float(config.loss.get("semantic_weight", 0.0)):
      return
    classes = int(config.model.get("semantic_classes", 0))
    if classes != 1 + len(vocab.KINDS):
      raise ConfigError(f"loss.semantic_weight needs model.semantic_classes="
                        f"{1 + len(vocab.KINDS)} (background + each kind), got {classes}")
    if is_real(config.data):
      raise ConfigError("loss.semantic_weight needs per-cell kinds, which only the shapes "
                        f"world has (data.source={config.data.source!r})")

  @staticmethod
  def _check_crop(config) -> None:
    """data.train_crop: whole code cells of the shapes world's scenes."""
    from unified_mm.config.loading import ConfigError  # noqa: PLC0415
    crop, data, cell = int(config.data.get("train_crop", 0)), config.data, code_cell(config.model)
    if not crop:
      return
    if is_real(data):
      raise ConfigError(f"data.train_crop={crop} crops the shapes world's scenes; a real "
                        f"source (data.source={data.source!r}) is cropped to data.resolution")
    if crop > int(data.resolution) or crop % cell:
      raise ConfigError(f"data.train_crop={crop}: give a multiple of the code cell ({cell} px) "
                        f"no larger than data.resolution={data.resolution}")

  @property
  def semantic(self) -> bool:
    return bool(self.loss_weights["semantic_weight"])

  def build_model(self, rngs: nnx.Rngs) -> TokenizerAutoencoder:
    return TokenizerAutoencoder(**self.config.model, rngs=rngs)

  def loss(self, model: TokenizerAutoencoder, batch, rng: jax.Array):
    return reconstruction_loss(model, batch["image"], rng=rng, cell_kind=batch.get("cell_kind"),
                               **self.loss_weights)

  def batch_axes(self) -> dict[str, tuple[str | None, ...]]:
    semantic = {"cell_kind": ("batch", "height", "width")} if self.semantic else {}
    return {"image": IMAGE_AXES} | semantic

  def make_data(self, process_index: int, process_count: int, local_batch_size: int):
    data = self.config.data
    if is_real(data):
      return real_image_iterator(data, record_to_image(data, need_caption=False), stack_images,
                                 stage=self.name, process_index=process_index,
                                 process_count=process_count, local_batch_size=local_batch_size)
    cell = code_cell(self.config.model)
    return ShapesImageIterator(data, process_index, process_count, local_batch_size,
                               cell if self.semantic else 0, cell)

  def _real_evaluators(self) -> list:
    """Reconstruction and code usage on the source's held-out records (on the
    shapes world the experiment's `make_evaluators`: 500 held-out scenes)."""
    from unified_mm.data.image_records import held_out_rows, image_source  # noqa: PLC0415
    from unified_mm.tasks.real_evaluators import TokenizerHeldOut  # noqa: PLC0415
    data, e = self.config.data, self.config.get("eval", {})
    rows = held_out_rows(data, record_to_image(data, need_caption=False), image_source(data))
    if not rows:
      return []
    return [TokenizerHeldOut(stack_images(rows)["image"], batch_size=int(e.get("batch_size", 16)),
                             grid_images=int(e.get("grid_images", 8)), out_dir=self.workdir)]

  def tokens_in(self, batch) -> int:
    return int(np.prod(np.shape(batch["image"])[:3]))  # pixels


def make_task(config, make_evaluators=None) -> TokenizerTask:
  return TokenizerTask(config, make_evaluators)
