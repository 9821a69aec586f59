"""The evaluator every loss-trained stage can use: its own metrics, averaged
over held-out batches fixed when the evaluator is built."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import jax
from flax import nnx


class HeldOutLoss:
  """`run(model)` yields (metric, mean over the batches); counts (`*tokens`) are left out."""

  def __init__(self, name: str, loss_fn: Callable, batches: Sequence[dict]):
    self.name = name
    self.batches = list(batches)
    self._metrics = jax.jit(lambda model, batch: loss_fn(model, batch, jax.random.key(0))[1])

  def run(self, model: nnx.Module) -> Iterator[tuple[str, float]]:
    sums: dict[str, float] = {}
    for batch in self.batches:
      for k, v in self._metrics(model, batch).items():
        sums[k] = sums.get(k, 0.0) + float(v)
    for k in sorted(sums):
      if not k.endswith("tokens"):
        yield k, sums[k] / len(self.batches)
