"""A latent decoder scored on what it is given in use: the renderer's samples.

Built once from a RendererEvaluator over held-out scenes (their originals,
true tokens, preview metrics) and the frozen renderer's samples for them
(unnormalised latents); each run only decodes those samples with the model
being trained and reports the renderer path's metrics (renderer_eval.py):
`roundtrip`, `palette_share`, `psnr`, next to the unchanged `preview_*`.
"""

from __future__ import annotations

from collections.abc import Iterator

import jax
import numpy as np
from flax import nnx

from unified_mm.eval.image_metrics import analyzer_roundtrip, palette_share, psnr_uint8
from unified_mm.models.image_tokenizer.layers import to_uint8


@nnx.jit
def _decode(model, latents):
  return to_uint8(model.decode_latent(latents))


class RenderedLatentEvaluator:
  name = "rendered"

  def __init__(self, held_out, latents: np.ndarray):
    self.held_out, self.latents = held_out, latents

  def decode(self, model) -> np.ndarray:
    n = self.held_out.batch_size
    return np.concatenate([np.asarray(jax.device_get(_decode(model, self.latents[i:i + n])))
                           for i in range(0, len(self.latents), n)])

  def run(self, model) -> Iterator[tuple[str, float]]:
    images = self.decode(model)
    yield "roundtrip", analyzer_roundtrip(images, self.held_out.scenes)
    yield "palette_share", palette_share(images)
    yield "psnr", float(psnr_uint8(images, self.held_out.images).mean())
    yield from self.held_out.preview_metrics.items()
    if self.held_out.out_dir is not None and jax.process_index() == 0:
      self.held_out.write_grid(images)
