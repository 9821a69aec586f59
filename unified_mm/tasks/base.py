"""The contract between a stage and the generic trainer.

A stage never owns a loop. It says how to build its model, how to compute
its loss on a batch, what its batches look like (logical axes per entry, so
the trainer can shard them), where its data comes from and how to evaluate.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Protocol

import jax
import numpy as np
from flax import nnx

Batch = Mapping[str, Any]  # name -> array; numpy on the host, jax.Array in the step


class DataIterator(Protocol):
  """A host-local iterator of numpy batches whose position can be saved.

  `get_state()` returns a JSON-serialisable object; `set_state(state)` makes
  the iterator yield exactly what it would have yielded after that point.
  """

  def __iter__(self) -> Iterator[Batch]: ...
  def __next__(self) -> Batch: ...
  def get_state(self) -> Any: ...
  def set_state(self, state: Any) -> None: ...


class Evaluator(Protocol):
  """big_vision-style: built once, `run(model)` yields (metric_name, value)."""

  name: str

  def run(self, model: nnx.Module) -> Iterator[tuple[str, float]]: ...


class Task(Protocol):
  name: str

  def build_model(self, rngs: nnx.Rngs) -> nnx.Module:
    """Constructs the model from config.model (called under the mesh + rules)."""

  def loss(self, model: nnx.Module, batch: Batch, rng: jax.Array
           ) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Scalar loss and a flat dict of scalar metrics (names without `train/`)."""

  def batch_axes(self) -> dict[str, tuple[str | None, ...]]:
    """Logical axis names for each batch entry (first is always `batch`)."""

  def make_data(self, process_index: int, process_count: int,
                local_batch_size: int) -> DataIterator:
    """This host's share of the training data, `local_batch_size` rows per step."""

  def evaluators(self) -> list[Evaluator]:
    """Evaluators run every `train.eval_every_steps` (may be empty): the task's
    own held-out loss, and those it was handed (`make_evaluators(task)`; an
    evaluator sits above the task and is never imported by it)."""

  def tokens_in(self, batch: Batch) -> int:
    """Work units per batch for throughput (tokens, pixels/patches, ...)."""


def numpy_batch_spec(batch: Batch) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
  return {k: (np.shape(v), np.asarray(v).dtype) for k, v in batch.items()}
