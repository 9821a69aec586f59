"""Loads the three trained stages of a run root for generation.

    ROOT/tokenizer   image tokenizer (latent decoder, preview decoder, encoders)
    ROOT/ar          unified transformer (plans visual tokens, writes captions)
    ROOT/renderer    latent diffusion renderer (EMA weights)

Every model is restored replicated on one local device: generation is
latency-bound on small batches, and the renderer has its own config anyway.
"""

from __future__ import annotations

import dataclasses
import pathlib

import jax
import ml_collections
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec

from unified_mm.data.vocab import Vocab
from unified_mm.parallel.mesh import make_mesh
from unified_mm.parallel.sharding import activate, rules_from_config
from unified_mm.train.checkpoint import open_run
from unified_mm.train.state import split_params


@dataclasses.dataclass
class ArStage:
  model: nnx.Module
  config: ml_collections.ConfigDict
  vocab: Vocab
  text: object  # TextTokenizer


def load_ar(workdir: str | pathlib.Path, num_codes: int, devices=None,
            step: int | None = None) -> ArStage:
  """The unified transformer (params at `step`, default the latest), its
  vocabulary and its text tokenizer."""
  from unified_mm.data.pipeline import load_or_train_tokenizer  # noqa: PLC0415
  from unified_mm.models.transformer.model import Transformer  # noqa: PLC0415
  with open_run(workdir, step, "complete AR") as (ckpts, step, saved):
    config = ml_collections.ConfigDict(saved)
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in config.model.items()}
    mesh = make_mesh({"data": -1}, list(devices or jax.local_devices()[:1]))
    replicated = tuple((name, None) for name, _ in rules_from_config(config.rules))
    with activate(mesh, replicated):
      abstract = nnx.eval_shape(lambda: Transformer(**kwargs, rngs=nnx.Rngs(0)))
    model_def, abstract_params = split_params(abstract)
    sharding = NamedSharding(mesh, PartitionSpec())
    params = ckpts.restore_params(step, {k: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=sharding)
                                         for k, v in abstract_params.items()})
  vocab = Vocab(int(config.data.text_vocab_size), int(num_codes))
  return ArStage(model_def.module(params), config, vocab, load_or_train_tokenizer(config.data))


@dataclasses.dataclass
class Stages:
  frontend: object                # renderer.latents.TrainedFrontend
  ar: ArStage | None
  renderer: nnx.Module | None
  renderer_task: object | None    # tasks.renderer.RendererTask (text ids, context inputs)


def load_stages(root: str | pathlib.Path, *, need_ar: bool = True,
                need_renderer: bool = True) -> Stages:
  from unified_mm.models.renderer.latents import TrainedFrontend  # noqa: PLC0415
  root = pathlib.Path(root)
  frontend = TrainedFrontend(root / "tokenizer", devices=jax.local_devices()[:1])
  ar = load_ar(root / "ar", frontend.num_codes) if need_ar else None
  renderer = task = None
  if need_renderer:
    from unified_mm.models.renderer.loader import load_renderer  # noqa: PLC0415
    from unified_mm.tasks.renderer import RendererTask  # noqa: PLC0415
    renderer, config = load_renderer(root / "renderer")
    config.data.image_tokenizer_dir = str(root / "tokenizer")
    if config.model.text_source == "ar":
      config.data.ar_dir = str(root / "ar")
    task = RendererTask(config)
    task.__dict__["frontend"] = frontend  # share the loaded stages (cached_properties)
    if ar is not None and config.model.text_source == "ar":
      from unified_mm.models.renderer.ar_text import ArTextEncoder  # noqa: PLC0415
      task.__dict__["ar_text"] = ArTextEncoder(ar, int(config.model.text_len))
  return Stages(frontend, ar, renderer, task)
