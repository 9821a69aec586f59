"""Loads the three trained stages of a run root for generation.

    ROOT/tokenizer   image tokenizer (latent decoder, preview decoder, encoders)
    ROOT/ar          unified transformer (plans visual tokens, writes captions)
    ROOT/renderer    latent diffusion renderer (EMA weights)

Each stage's loader lives beside its model (`models/*/loader.py`); this module
puts them together. Every model is restored replicated on one local device:
generation is latency-bound on small batches, and the renderer has its own
config anyway.
"""

from __future__ import annotations

import dataclasses
import pathlib

import jax
from flax import nnx

from unified_mm.models.transformer.loader import ArStage, load_ar


@dataclasses.dataclass
class Stages:
  frontend: object                # renderer.latents.TrainedFrontend
  ar: ArStage | None
  renderer: nnx.Module | None
  renderer_task: object | None    # tasks.renderer.RendererTask (text ids, context inputs)

  @property
  def renderer_reads_codes(self) -> bool:
    """False for a layout renderer (it draws from the written plan, not the codes)."""
    return self.renderer_task is not None and bool(self.renderer_task.config.model.visual_codes)


def load_stages(root: str | pathlib.Path, *, need_ar: bool = True,
                need_renderer: bool = True) -> Stages:
  from unified_mm.models.renderer.latents import TrainedFrontend  # noqa: PLC0415
  root = pathlib.Path(root)
  frontend = TrainedFrontend(root / "tokenizer", devices=jax.local_devices()[:1])
  ar = load_ar(root / "ar", frontend.num_codes) if need_ar else None
  renderer = task = None
  if need_renderer:
    renderer, task = load_renderer_stage(root, "renderer", frontend, ar)
  return Stages(frontend, ar, renderer, task)


def load_renderer_stage(root: pathlib.Path, name: str, frontend, ar: ArStage | None = None):
  """(renderer, its RendererTask) from ROOT/<name>, sharing the loaded tokenizer
  (and transformer, for a renderer reading its text states)."""
  from unified_mm.models.renderer.loader import load_renderer  # noqa: PLC0415
  from unified_mm.tasks.renderer import RendererTask  # noqa: PLC0415
  renderer, config = load_renderer(root / name)
  config.data.image_tokenizer_dir = str(root / "tokenizer")
  if config.model.text_source == "ar":
    config.data.ar_dir = str(root / "ar")
  task = RendererTask(config)
  task.__dict__["frontend"] = frontend  # share the loaded stages (cached_properties)
  if ar is not None and config.model.text_source == "ar":
    from unified_mm.models.renderer.ar_text import ArTextEncoder  # noqa: PLC0415
    task.__dict__["ar_text"] = ArTextEncoder(ar, int(config.model.text_len))
  return renderer, task
