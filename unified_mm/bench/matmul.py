"""The reference: XLA matmul throughput measured in the benchmark's own process.

MFU on a shared CPU is only meaningful against a peak measured under the
same load, so the bench samples this between train steps (same process, same
moment), not once for all. On a quiet machine the samples agree.

The reference must be what the step can use: a step sharded over N devices
runs on all N at once, so `MatmulProbe(devices=...)` runs one independent
matmul chain per device, all in one sharded program, and reports their sum.
Against a one-device probe an 8-device step reported MFU 4.74 (issue #19).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec


class MatmulProbe:
  """`chain` dependent, jitted n x n matmuls on each of `devices` (default: one
  device, the default one); `sample()` -> TFLOP/s of one run, summed over the
  devices."""

  def __init__(self, n: int = 2048, dtype=jnp.float32, chain: int = 4,
               devices: Sequence | None = None):
    self.num_devices = 1 if devices is None else len(devices)
    self.flops = 2 * n ** 3 * chain * self.num_devices
    b = jax.random.normal(jax.random.key(1), (n, n), dtype) / n ** 0.5
    if devices is None:  # the single-device probe, as it always was (umm demo reports it)
      self.a = jax.random.normal(jax.random.key(0), (n, n), dtype)
      step = lambda x: x @ b
      run = jax.jit(lambda x: _chain(step, x, chain))
    else:
      # [devices, n, n], one n x n operand per device; b replicated: no communication.
      mesh = Mesh(np.asarray(list(devices)), ("probe",))
      shard = NamedSharding(mesh, PartitionSpec("probe"))
      a = jax.random.normal(jax.random.key(0), (n, n), dtype)
      self.a = jax.device_put(jnp.broadcast_to(a, (self.num_devices, n, n)), shard)
      b = jax.device_put(b, NamedSharding(mesh, PartitionSpec()))
      step = lambda x: jnp.einsum("dij,jk->dik", x, b)
      run = jax.jit(lambda x: _chain(step, x, chain), in_shardings=shard, out_shardings=shard)
    self.run = run
    self.run(self.a).block_until_ready()  # compile

  def sample(self) -> float:
    t = time.perf_counter()
    self.run(self.a).block_until_ready()
    return self.flops / (time.perf_counter() - t) / 1e12

  def best(self, repeats: int = 3) -> float:
    """Best-of-`repeats` TFLOP/s: a shared machine's dip is not its speed."""
    return max(self.sample() for _ in range(repeats))


def _chain(step, x, chain: int):
  for _ in range(chain):
    x = step(x)
  return x


def matmul_tflops(n: int = 2048, dtype=jnp.float32, chain: int = 4, repeats: int = 3,
                  devices: Sequence | None = None) -> float:
  """Best-of-`repeats` TFLOP/s (summed over `devices` when given)."""
  return MatmulProbe(n, dtype, chain, devices).best(repeats)
