"""The reference: XLA matmul throughput measured in the benchmark's own process.

MFU on a shared CPU is only meaningful against a peak measured under the
same load, so the bench times this next to the train step, not once for all.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp


def matmul_tflops(n: int = 2048, dtype=jnp.float32, chain: int = 4, repeats: int = 3) -> float:
  """Best-of-`repeats` TFLOP/s of `chain` jitted dependent n x n matmuls."""
  a = jax.random.normal(jax.random.key(0), (n, n), dtype)
  b = jax.random.normal(jax.random.key(1), (n, n), dtype) / n ** 0.5

  @jax.jit
  def f(x):
    for _ in range(chain):
      x = x @ b
    return x

  f(a).block_until_ready()
  best = float("inf")
  for _ in range(repeats):
    t = time.perf_counter()
    f(a).block_until_ready()
    best = min(best, time.perf_counter() - t)
  return 2 * n ** 3 * chain / best / 1e12
