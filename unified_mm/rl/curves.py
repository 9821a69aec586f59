"""Reward and KL curves of a grpo workdir as one PNG (TensorBoard has the same
scalars; this is the picture for docs/):

    python -m unified_mm.rl.curves runs/demo_rl/ar docs/images/rl_curves.png
"""

from __future__ import annotations

import pathlib
import sys

import numpy as np

from unified_mm.rl.prompts import PROMPT_KINDS
from unified_mm.train.metrics import read_metrics_rows


def plot_curves(workdir, out) -> pathlib.Path:
  import matplotlib  # noqa: PLC0415
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # noqa: PLC0415
  rows = [r for r in read_metrics_rows(workdir) if "train/reward" in r]
  if not rows:
    raise ValueError(f"{workdir}: no train/reward rows (not a grpo workdir?)")
  steps = np.array([r["step"] for r in rows])
  fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
  left.plot(steps, [r["train/reward"] for r in rows], color="black", lw=2, label="all")
  for c in PROMPT_KINDS:
    key = f"train/reward/{c}"
    if key in rows[0]:
      left.plot(steps, [r[key] for r in rows], lw=1, label=c)
  left.set(xlabel="step", ylabel="mean reward", title="reward (sampled plans, drawn)")
  left.legend(fontsize=7, ncol=2)
  right.plot(steps, [r["train/kl"] for r in rows], color="tab:red")
  right.set(xlabel="step", ylabel="KL to the reference (per token)", title="KL")
  fig.tight_layout()
  out = pathlib.Path(out)
  out.parent.mkdir(parents=True, exist_ok=True)
  fig.savefig(out, dpi=110)
  plt.close(fig)
  return out


if __name__ == "__main__":
  print(plot_curves(sys.argv[1], sys.argv[2]))
