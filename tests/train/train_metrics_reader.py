"""Reads a workdir's metrics.jsonl back (a module of its own: `from conftest import`
resolves to whichever conftest.py pytest loaded last in a whole-suite run)."""

from unified_mm.train.metrics import read_metrics_rows


def read_metrics(workdir) -> dict[int, list[dict]]:
  """step -> every row logged for it (a resumed run may log a step twice)."""
  rows: dict[int, list[dict]] = {}
  for row in read_metrics_rows(workdir):
    rows.setdefault(row["step"], []).append(row)
  return rows


def train_losses(workdir) -> dict[int, list[float]]:
  return {s: [r["train/loss"] for r in rs if "train/loss" in r]
          for s, rs in read_metrics(workdir).items()
          if any("train/loss" in r for r in rs)}
