"""The reference: XLA matmul throughput measured in the benchmark's own process.

MFU on a shared CPU is only meaningful against a peak measured under the
same load, so the bench samples this between train steps (same process, same
moment), not once for all. On a quiet machine the samples agree.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp


class MatmulProbe:
  """`chain` dependent, jitted n x n matmuls; `sample()` -> TFLOP/s of one run."""

  def __init__(self, n: int = 2048, dtype=jnp.float32, chain: int = 4):
    self.flops = 2 * n ** 3 * chain
    self.a = jax.random.normal(jax.random.key(0), (n, n), dtype)
    b = jax.random.normal(jax.random.key(1), (n, n), dtype) / n ** 0.5

    @jax.jit
    def run(x):
      for _ in range(chain):
        x = x @ b
      return x

    self.run = run
    self.run(self.a).block_until_ready()  # compile

  def sample(self) -> float:
    t = time.perf_counter()
    self.run(self.a).block_until_ready()
    return self.flops / (time.perf_counter() - t) / 1e12


def matmul_tflops(n: int = 2048, dtype=jnp.float32, chain: int = 4, repeats: int = 3) -> float:
  """Best-of-`repeats` TFLOP/s."""
  probe = MatmulProbe(n, dtype, chain)
  return max(probe.sample() for _ in range(repeats))
