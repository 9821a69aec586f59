"""A process of a local multi-process job: joins through `distributed.initialize`
(UMM_* variables), then all-gathers a counter forever, printing `step N`."""

import time

from unified_mm.parallel import distributed

distributed.initialize()

import jax  # noqa: E402
import numpy as np  # noqa: E402
from jax.experimental import multihost_utils  # noqa: E402

print("joined", jax.process_index(), jax.process_count(), flush=True)
step = 0
while True:
  multihost_utils.process_allgather(np.asarray([step]))
  step += 1
  print("step", step, flush=True)
  time.sleep(0.05)
