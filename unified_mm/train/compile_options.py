"""XLA compile options for the train step, by the platform its mesh is on.

XLA:CPU hands dots, reductions and elementwise subgraphs to YNNPACK fusions by
default. Inside a whole train step XLA's own kernels beat them: measured with
the two compiles of one step alternating in one process (docs/bench_train.md,
"XLA:CPU options and grouped query heads"), the shapes transformer's step
5-8% faster without them, the layout renderer's 8%, the tokenizer's on two
devices the same (30% on one). A lone large matmul is the other way round, so
the matmul probe (bench/matmul.py), the yardstick of every wall time, keeps
XLA's defaults.
TPU and GPU compiles get no options.
"""

from __future__ import annotations

import jax

CPU_TRAIN_STEP = {"xla_cpu_experimental_ynn_fusion_type": ""}  # "": no YNNPACK fusion kind


def train_step_options(shardings) -> dict[str, str]:
  """Options for a train step whose state is laid out as `shardings` (a pytree)."""
  first = next((s for s in jax.tree.leaves(shardings) if hasattr(s, "device_set")), None)
  platforms = {d.platform for d in first.device_set} if first is not None else set()
  return dict(CPU_TRAIN_STEP) if platforms == {"cpu"} else {}
