"""A tiny stand-in stage for trainer tests: a next-token MLP over random ids.

Its data iterator is a pure function of (seed, rows served), so its state is
one integer and resuming is exact. Rows whose index is in `nan_at_rows` carry
a NaN loss weight, to test the trainer's divergence stop.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx

from unified_mm.config.base import base_config

VOCAB, LENGTH = 16, 8


class ToyModel(nnx.Module):
  def __init__(self, vocab: int, width: int, extra_head: bool = False, *, rngs: nnx.Rngs):
    self.embed = nnx.Embed(vocab, width, rngs=rngs, embedding_init=nnx.with_partitioning(
        nnx.initializers.normal(0.5), ("vocab", "embed")))
    self.hidden = nnx.Linear(width, 2 * width, rngs=rngs, kernel_init=nnx.with_partitioning(
        nnx.initializers.lecun_normal(), ("embed", "mlp")))
    self.out = nnx.Linear(2 * width, vocab, rngs=rngs, kernel_init=nnx.with_partitioning(
        nnx.initializers.lecun_normal(), ("mlp", None)))
    self.norm = nnx.RMSNorm(width, rngs=rngs)
    # An unused extra module: what `ckpt.init_partial` adds on top of a loaded run.
    self.extra = nnx.Linear(width, 3, rngs=rngs) if extra_head else None

  def __call__(self, tokens):  # [B, T] -> [B, T, V]
    x = self.norm(self.embed(tokens))
    return self.out(jax.nn.gelu(self.hidden(x)))


class ToyData:
  def __init__(self, seed: int, process_index: int, rows: int, nan_at_step: int = 0):
    self.seed, self.process_index, self.rows = seed, process_index, rows
    self.nan_at_step = nan_at_step
    self.served = 0

  def __iter__(self):
    return self

  def __next__(self):
    rng = np.random.default_rng([self.seed, self.process_index, self.served])
    start = rng.integers(0, VOCAB, size=(self.rows, 1))
    tokens = (start + np.arange(LENGTH + 1)) % VOCAB  # learnable: next = current + 1
    noise = rng.random(tokens.shape) < 0.1
    tokens = np.where(noise, rng.integers(0, VOCAB, tokens.shape), tokens).astype(np.int32)
    self.served += 1
    weight = np.ones((self.rows,), np.float32)
    if self.served == self.nan_at_step:
      weight[:] = np.nan
    return {"tokens": tokens, "weight": weight}

  def get_state(self):
    return {"served": self.served}

  def set_state(self, state):
    self.served = int(state["served"])


class ToyEvaluator:
  name = "toy"

  def __init__(self, seed: int):
    self.batch = next(ToyData(seed + 1000, 0, 8))

  def run(self, model):
    tokens = jnp.asarray(self.batch["tokens"])
    logits = model(tokens[:, :-1])
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, tokens[:, 1:]).mean()
    yield "loss", float(loss)


class ToyTask:
  name = "toy"

  def __init__(self, config):
    self.config = config

  def build_model(self, rngs):
    return ToyModel(**self.config.model, rngs=rngs)

  def loss(self, model, batch, rng):
    tokens = batch["tokens"]
    logits = model(tokens[:, :-1])
    per_row = optax.softmax_cross_entropy_with_integer_labels(logits, tokens[:, 1:]).mean(-1)
    loss = (per_row * batch["weight"]).mean()
    return loss, {"toy_loss": loss}

  def batch_axes(self):
    return {"tokens": ("batch", "length"), "weight": ("batch",)}

  def make_data(self, process_index, process_count, local_batch_size):
    return ToyData(self.config.seed, process_index, local_batch_size,
                   self.config.data.get("nan_at_step", 0))

  def evaluators(self):
    return [ToyEvaluator(self.config.seed)]

  def tokens_in(self, batch):
    return int(np.size(batch["tokens"]))


def toy_config(**train) -> ml_collections.ConfigDict:
  c = base_config("toy")
  c.model = ml_collections.ConfigDict(dict(vocab=VOCAB, width=16))
  c.data = ml_collections.ConfigDict(dict(nan_at_step=0))
  c.train.update(dict(steps=12, batch_size=8, log_every_steps=1, progress=False))
  c.train.update(train)
  c.optim.update(dict(lr=1e-2, warmup_steps=2, ema_decay=0.5))
  c.ckpt.update(dict(save_every_steps=4, max_to_keep=5))
  c.mesh.update(dict(data=-1, fsdp=2, tensor=2))
  return c
