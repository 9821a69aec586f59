"""Stage 3b as a Task: the tokenizer's latent decoder fine-tuned on the renderer's own samples.

    umm train --config experiments/shapes.py:latent_decoder --workdir runs/shapes/tokenizer

A latent decoder trained on the encoder's latents turns the renderer's small
sampling error into blur at shape edges: through it the renderer's images were
less crisp than the preview decoder's (docs/renderer.md). This stage shows the
decoder what it is given in use: (renderer sample, original image) pairs.

Data: `data.pool_size` scenes of `data.seed` (text: the full description with
`data.description_prob`), their true visual tokens rendered once by the frozen
renderer in `data.renderer_dir` with its own preset sampler (its `sample`
config), cached in WORKDIR/renderer_latents.npz so a resumed run does not
sample them again (every process samples the same pool deterministically;
process 0 writes the cache). Row r of the stream is pool entry perm_e[r mod N] for a
seeded permutation per epoch e = r div N, so the iterator's state is its step.

Model: the whole TokenizerAutoencoder, restored from `ckpt.init_from` (the
tokenizer the renderer was trained on; its encoder also computes the pool's
tokens and plan latents). The loss reaches the latent decoder only, so the
encoder, FSQ codes and preview decoder stay bit-equal (optim.weight_decay must
be 0) and the workdir is a drop-in ROOT/tokenizer; its latent_stats.json is
the source tokenizer's, so the renderer's latent scale is unchanged.

Loss: the tokenizer's latent reconstruction term on the decoded sample:
mean w * (l1_weight |e| + mse_weight e^2), e = `saturated_error`, w = `edge_weights`.
"""

from __future__ import annotations

import functools
import json
import logging

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from unified_mm.config.loading import ConfigError
from unified_mm.data.step_indexed import StepIndexedIterator
from unified_mm.models.image_tokenizer.autoencoder import TokenizerAutoencoder
from unified_mm.models.image_tokenizer.layers import as_signed_unit
from unified_mm.tasks.image_task import ImageTask
from unified_mm.tasks.tokenizer import (IMAGE_AXES, pixel_weights, psnr_from_mse, saturated_error,
                                        weighted_pixel_loss)

log = logging.getLogger(__name__)

POOL_FILE = "renderer_latents.npz"


class RenderedLatentPool(StepIndexedIterator):
  """This process's rows of an endless stream over a fixed pool of (latent, image) pairs."""

  def __init__(self, latents: np.ndarray, images: np.ndarray, seed: int, process_index: int,
               process_count: int, local_batch_size: int):
    super().__init__(process_index, process_count, local_batch_size)
    self.latents, self.images, self.seed = latents, images, seed
    self._epoch, self._perm = -1, None

  def _order(self, epoch: int) -> np.ndarray:
    if epoch != self._epoch:  # a step spans at most two epochs; rows come in order
      self._epoch, self._perm = epoch, np.random.default_rng([self.seed, epoch]).permutation(
          len(self.latents))
    return self._perm

  def batch_for(self, rows: range) -> dict[str, np.ndarray]:
    n = len(self.latents)
    idx = np.array([self._order(r // n)[r % n] for r in rows])
    return {"latent": self.latents[idx], "image": self.images[idx]}


def decoder_loss(model: TokenizerAutoencoder, latents: jax.Array, images: jax.Array, *,
                 l1_weight: float, mse_weight: float, edge_weight: float = 0.0,
                 tip_weight: float = 0.0) -> tuple[jax.Array, dict[str, jax.Array]]:
  target = as_signed_unit(images)
  err = saturated_error(model.decode_latent(latents), target)
  loss = weighted_pixel_loss(err, pixel_weights(target, edge_weight, tip_weight), l1_weight,
                             mse_weight)
  return loss, {"latent_l1": jnp.abs(err).mean(),
                "latent_psnr": psnr_from_mse(jnp.square(err).mean())}


class LatentDecoderTask(ImageTask):
  name = "latent_decoder"

  def __init__(self, config, make_evaluators=None):
    super().__init__(config, make_evaluators)
    for key, value in (("data.renderer_dir", config.data.get("renderer_dir", "")),
                       ("ckpt.init_from", config.ckpt.init_from)):
      if not value:
        raise ConfigError(f"{key} is empty: the latent_decoder stage fine-tunes the tokenizer in "
                          "ckpt.init_from on samples of the renderer in data.renderer_dir")
    if float(config.optim.get("weight_decay", 0.0)):
      raise ConfigError(f"optim.weight_decay={config.optim.weight_decay}: must be 0, decay would "
                        "move the frozen encoder and preview decoder")
    self.loss_weights = {k: float(config.loss[k]) for k in ("l1_weight", "mse_weight")}
    for k in ("edge_weight", "tip_weight"):
      self.loss_weights[k] = float(config.loss.get(k, 0.0))

  @functools.cached_property
  def renderer(self):
    """(frozen renderer, its RendererTask reading the source tokenizer's encoder)."""
    from unified_mm.models.renderer.loader import load_renderer  # noqa: PLC0415
    from unified_mm.tasks.renderer import RendererTask  # noqa: PLC0415
    model, config = load_renderer(self.config.data.renderer_dir, self.renderer_step)
    config.data.image_tokenizer_dir = str(self.config.ckpt.init_from)
    return model, RendererTask(config)

  @functools.cached_property
  def renderer_step(self) -> int:
    """The renderer checkpoint the pool is sampled from: a later one invalidates the cache."""
    from unified_mm.train.checkpoint import open_run  # noqa: PLC0415
    with open_run(self.config.data.renderer_dir, what="complete renderer") as (_, step, _):
      return int(step)

  def denormalise(self, z: np.ndarray) -> np.ndarray:
    """Renderer samples (normalised) -> the tokenizer's latent scale."""
    return np.asarray(self.renderer[1].frontend.stats.denormalise(z), np.float32)

  def _sample_pool(self, chunk: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """(unnormalised renderer samples, images) of the pool's scenes, `chunk` at a time."""
    from unified_mm.tasks.renderer import sample_latents, scene_batch  # noqa: PLC0415
    d = self.config.data
    model, task = self.renderer
    latents, images = [], []
    for start in range(0, int(d.pool_size), chunk):
      rows = range(start, min(start + chunk, int(d.pool_size)))
      _, im, batch = scene_batch(task, seed=int(d.seed), indices=rows,
                                 min_objects=int(d.min_objects), max_objects=int(d.max_objects),
                                 description_prob=float(d.description_prob))
      z = sample_latents(task, model, batch, seed=int(d.seed) + start, batch_size=chunk,
                         **task.config.sample)
      latents.append(self.denormalise(z))
      images.append(im)
    return np.concatenate(latents), np.concatenate(images)

  def _pool(self) -> tuple[np.ndarray, np.ndarray]:
    d = self.config.data
    key = json.dumps({k: str(d[k]) for k in ("renderer_dir", "seed", "pool_size", "min_objects",
                                             "max_objects", "description_prob")}
                     | {"init_from": str(self.config.ckpt.init_from),
                        "renderer_step": self.renderer_step}, sort_keys=True)
    path = self.workdir / POOL_FILE if self.workdir is not None else None
    if path is not None and path.exists():
      with np.load(path) as f:
        if str(f["key"]) == key:
          log.info("renderer latents: reusing %s", path)
          return f["latent"], f["image"]
    log.info("renderer latents: sampling %d scenes with %s", int(d.pool_size), d.renderer_dir)
    latents, images = self._sample_pool()
    if path is not None and jax.process_index() == 0:
      self.workdir.mkdir(parents=True, exist_ok=True)
      tmp = path.with_suffix(".tmp.npz")
      np.savez(tmp, key=key, latent=latents, image=images)
      tmp.rename(path)  # whole or absent: an interrupted write is sampled again
    return latents, images

  def _write_latent_stats(self) -> None:
    """The source tokenizer's statistics: the renderer's normalisation must not move."""
    stats = self.renderer[1].frontend.stats
    if self.workdir is None or jax.process_index() != 0:
      return
    self.workdir.mkdir(parents=True, exist_ok=True)
    stats.write(self.workdir, source=str(self.config.ckpt.init_from))

  def build_model(self, rngs: nnx.Rngs) -> TokenizerAutoencoder:
    return TokenizerAutoencoder(**self.config.model, rngs=rngs)

  def loss(self, model: TokenizerAutoencoder, batch, rng: jax.Array):
    del rng
    return decoder_loss(model, batch["latent"], batch["image"], **self.loss_weights)

  def batch_axes(self) -> dict[str, tuple[str | None, ...]]:
    return {"latent": IMAGE_AXES, "image": IMAGE_AXES}  # both [B, H, W, C] maps

  def make_data(self, process_index: int, process_count: int,
                local_batch_size: int) -> RenderedLatentPool:
    self._write_latent_stats()
    latents, images = self._pool()
    return RenderedLatentPool(latents, images, int(self.config.data.seed), process_index,
                              process_count, local_batch_size)

  def tokens_in(self, batch) -> int:
    return int(np.prod(np.shape(batch["image"])[:3]))  # pixels


def make_task(config, make_evaluators=None) -> LatentDecoderTask:
  return LatentDecoderTask(config, make_evaluators)
