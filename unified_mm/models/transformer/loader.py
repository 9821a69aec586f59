"""Restores the trained unified transformer (the `ar` stage) from its workdir, frozen.

    ar = load_ar("runs/shapes/ar", num_codes=frontend.num_codes)
    ar.model, ar.vocab, ar.text      # Transformer, its Vocab, its SentencePiece tokenizer

The model is rebuilt from the config saved in the checkpoint, replicated on
one local device (default): generation and the renderer's `text_source="ar"`
states are latency-bound on small batches. `mesh=` (parallel/placement.py)
restores it sharded as in training instead, for a model one chip cannot hold;
`ArStage.placed()` is then the context its calls run in.
"""

from __future__ import annotations

import contextlib
import dataclasses
import pathlib

import jax
import ml_collections
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec

from unified_mm.data.vocab import Vocab
from unified_mm.parallel.mesh import make_mesh
from unified_mm.parallel.placement import stage_mesh
from unified_mm.parallel.sharding import activate, params_mesh, rules_from_config
from unified_mm.train.checkpoint import open_run
from unified_mm.train.state import abstract_model, split_params


@dataclasses.dataclass
class ArStage:
  model: nnx.Module
  config: ml_collections.ConfigDict
  vocab: Vocab
  text: object  # TextTokenizer
  rules: tuple = ()  # the logical rules of a placed (sharded) model; () when replicated

  def placed(self):
    """The context the model's calls run in: its mesh and rules when placed (the KV
    cache and activations sharded like training), else nothing (as always)."""
    if not self.rules:
      return contextlib.nullcontext()
    return activate(params_mesh(self.model), self.rules)


@dataclasses.dataclass(frozen=True)
class _SavedModel:
  """What `abstract_model` asks of a task: the model from the saved `model` kwargs."""
  kwargs: dict

  def build_model(self, rngs: nnx.Rngs):
    from unified_mm.models.transformer.model import Transformer  # noqa: PLC0415
    return Transformer(**self.kwargs, rngs=rngs)


def load_ar(workdir: str | pathlib.Path, num_codes: int, devices=None,
            step: int | None = None, mesh=None) -> ArStage:
  """The unified transformer (params at `step`, default the latest), its
  vocabulary and its text tokenizer; `mesh` (placement.CONFIG or axis sizes)
  places it sharded over `devices` (default: all) by its saved rules."""
  from unified_mm.data.pipeline import load_or_train_tokenizer  # noqa: PLC0415
  from unified_mm.models.transformer.model import Transformer  # noqa: PLC0415
  with open_run(workdir, step, "complete AR") as (ckpts, step, saved):
    config = ml_collections.ConfigDict(saved)
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in config.model.items()}
    if mesh is not None:
      model, rules = _restore_placed(ckpts, step, config, kwargs, mesh, devices)
      vocab = Vocab(int(config.data.text_vocab_size), int(num_codes),
                    layout_bins=int(config.data.get("layout_bins", 0)))
      return ArStage(model, config, vocab, load_or_train_tokenizer(config.data), rules)
    mesh = make_mesh({"data": -1}, list(devices or jax.local_devices()[:1]))
    replicated = tuple((name, None) for name, _ in rules_from_config(config.rules))
    with activate(mesh, replicated):
      abstract = nnx.eval_shape(lambda: Transformer(**kwargs, rngs=nnx.Rngs(0)))
    model_def, abstract_params = split_params(abstract)
    sharding = NamedSharding(mesh, PartitionSpec())
    params = ckpts.restore_params(step, {k: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=sharding)
                                         for k, v in abstract_params.items()})
  vocab = Vocab(int(config.data.text_vocab_size), int(num_codes),
                layout_bins=int(config.data.get("layout_bins", 0)))
  return ArStage(model_def.module(params), config, vocab, load_or_train_tokenizer(config.data))


def _restore_placed(ckpts, step, config, kwargs, mesh, devices):
  """(model, rules): params restored straight into their training shardings."""
  placed = stage_mesh(mesh, config.mesh, devices)
  rules = rules_from_config(config.rules)
  model_def, abstract_params, shardings = abstract_model(_SavedModel(kwargs), 0, placed, rules)
  params = ckpts.restore_params(step, {
      k: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=shardings[k])
      for k, v in abstract_params.items()})
  return model_def.module(params), rules
