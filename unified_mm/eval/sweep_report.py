"""Writes sweep rows as JSONL (as they come), CSV, a Markdown table, PNG plots
and TensorBoard scalars."""

from __future__ import annotations

import csv
import json
import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from unified_mm.eval.sweep_keys import AR_KEYS, RENDER_KEYS  # noqa: E402

SETTING_KEYS = ("checkpoint", "setting", *AR_KEYS, *RENDER_KEYS)


class SweepReport:
  def __init__(self, out_dir):
    self.out_dir = pathlib.Path(out_dir)
    self.out_dir.mkdir(parents=True, exist_ok=True)
    self.rows: list[dict] = []
    self._jsonl = open(self.out_dir / "results.jsonl", "a")

  def add(self, row: dict) -> None:
    self.rows.append(row)
    self._jsonl.write(json.dumps(row) + "\n")
    self._jsonl.flush()

  def close(self) -> None:
    self._jsonl.close()
    if not self.rows:
      return
    columns = list(dict.fromkeys(k for r in self.rows for k in r))
    with open(self.out_dir / "results.csv", "w", newline="") as f:
      writer = csv.DictWriter(f, fieldnames=columns)
      writer.writeheader()
      writer.writerows(self.rows)
    (self.out_dir / "results.md").write_text(self.markdown(columns))
    self._plots()
    self._tensorboard()

  def markdown(self, columns: list[str]) -> str:
    # Per-path columns ("<path>/<metric>") stay in the CSV; the table shows each path's overall.
    shown = [c for c in columns if c not in ("grid", "report")
             and ("/" not in c or c.count("/") == 1 and c.endswith("/overall"))]
    lines = ["| " + " | ".join(shown) + " |", "|" + "---|" * len(shown)]
    for r in self.rows:
      cells = [f"{r[c]:.3f}" if isinstance(r.get(c), float) else str(r.get(c, ""))
               for c in shown]
      lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"

  def _plots(self) -> None:
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    labels = [f"ckpt {r['checkpoint']} #{r['setting']}" for r in self.rows]
    left.bar(range(len(self.rows)), [r.get("overall", 0.0) for r in self.rows])
    left.set_xticks(range(len(self.rows)), labels, rotation=60, ha="right", fontsize=7)
    left.set_ylabel("overall (mean over categories)")
    for r, label in zip(self.rows, labels):
      counts = sorted(int(k.rsplit("_", 1)[1]) for k in r if k.startswith("binding/accuracy_at_"))
      if counts:
        right.plot(counts, [r[f"binding/accuracy_at_{n}"] for n in counts], marker="o", label=label)
    right.set_xlabel("objects in the prompt")
    right.set_ylabel("binding accuracy")
    right.set_ylim(0, 1)
    if right.lines:
      right.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(self.out_dir / "results.png", dpi=110)
    plt.close(fig)

  def _tensorboard(self) -> None:
    from tensorboardX import SummaryWriter  # noqa: PLC0415
    with SummaryWriter(str(self.out_dir / "tb")) as writer:
      for r in self.rows:
        prefix = f"sweep/setting{r['setting']}"
        for k, v in r.items():
          if isinstance(v, float) and k not in SETTING_KEYS:
            writer.add_scalar(f"{prefix}/{k}", v, global_step=int(r["checkpoint"]))
