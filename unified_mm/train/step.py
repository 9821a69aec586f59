"""The pure train step: (state, global batch) -> (new state, metrics).

The state is donated, so a step updates params and moments in place. The step
RNG is `fold_in(key(seed), step)`: it depends only on the step number, which
makes an interrupted-and-resumed run draw the same numbers as a straight one.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from unified_mm.parallel.sharding import constrain
from unified_mm.train.compile_options import train_step_options
from unified_mm.train.optim import ema_update
from unified_mm.train.state import ModelDef, TrainState


def _micro_batches(batch, accum: int):
  """[B, ...] -> [A, B/A, ...]: micro-batch j holds rows j, A+j, 2A+j, ...

  Splitting the batch dimension this way keeps every device's rows on that
  device (each micro-batch takes B/A/devices rows from every shard).
  """
  return {k: v.reshape(v.shape[0] // accum, accum, *v.shape[1:]).swapaxes(0, 1)
          for k, v in batch.items()}


def make_train_step(task, model_def: ModelDef, tx: optax.GradientTransformation,
                    schedule: optax.Schedule, *, seed: int, grad_accum_steps: int = 1,
                    ema_decay: float = 0.0):
  batch_axes = task.batch_axes()

  def loss_fn(params, batch, rng):
    loss, metrics = task.loss(model_def.module(params), batch, rng)
    return loss, metrics

  grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

  def accumulate(params, batch, rng):
    if grad_accum_steps == 1:
      return grad_fn(params, batch, rng)
    micro = _micro_batches(batch, grad_accum_steps)

    def body(carry, xs):
      index, mb = xs
      mb = {k: constrain(v, batch_axes[k]) for k, v in mb.items()}
      out = grad_fn(params, mb, jax.random.fold_in(rng, index))
      return jax.tree.map(jnp.add, carry, out), None

    first = jax.tree.map(lambda x: x[0], micro)
    zeros = jax.tree.map(jnp.zeros_like, jax.eval_shape(grad_fn, params, first, rng))
    total, _ = jax.lax.scan(body, zeros, (jnp.arange(grad_accum_steps), micro))
    return jax.tree.map(lambda x: x / grad_accum_steps, total)

  def train_step(state: TrainState, batch):
    rng = jax.random.fold_in(jax.random.key(seed), state.step)
    (loss, metrics), grads = accumulate(state.params, batch, rng)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    ema = ema_update(state.ema, params, ema_decay) if state.ema is not None else None
    metrics = dict(metrics, loss=loss, grad_norm=optax.tree.norm(grads),
                   lr=schedule(state.step))
    new_state = TrainState(step=state.step + 1, params=params, opt_state=opt_state, ema=ema)
    return new_state, metrics

  return train_step


def jit_train_step(train_step, state_shardings: TrainState, batch_shardings, *,
                   xla_defaults: bool = False):
  """The jitted step (state donated). `xla_defaults`: without the platform's
  options of train/compile_options.py (`umm bench train --against-xla-defaults`)."""
  options = None if xla_defaults else train_step_options(state_shardings)
  return jax.jit(train_step, in_shardings=(state_shardings, batch_shardings),
                 out_shardings=(state_shardings, None), donate_argnums=0,
                 compiler_options=options)
