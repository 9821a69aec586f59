"""`umm eval`: one row per (AR checkpoint, sampling setting) on the shapes benchmark.

The tokenizer and renderer are loaded once; each listed AR checkpoint is
restored in turn and every setting of the sweep (transformer and renderer
sampling, eval/sweep_keys.py's keys) runs the benchmark on every path
(planned and plain, renderer and preview, and the text-only renderer when the
root has one): GenEval-style categories with Wilson intervals, binding vs
object count, plan diagnostics. Each row also gets its own report.md. The AR's own held-out losses at that step come
from its metrics.jsonl (`eval/ar/...`), so a row also carries text and
image-token loss.
"""

from __future__ import annotations

import dataclasses
import pathlib
import time


from unified_mm.eval.benchmark import flat_metrics
from unified_mm.eval.report import write_report
from unified_mm.eval.shapes_benchmark import run_benchmark
from unified_mm.generate.stages import load_stages, transformer_dir
from unified_mm.models.transformer.loader import load_ar
from unified_mm.train.checkpoint import Checkpoints, checkpoint_dir
from unified_mm.train.metrics import read_metrics_rows

def select_steps(ar_workdir: pathlib.Path, which: str) -> list[int]:
  """`latest`, `all`, or a comma-separated list of steps."""
  ckpts = Checkpoints(checkpoint_dir(ar_workdir), read_only=True)
  try:
    steps = ckpts.steps()
  finally:
    ckpts.close()
  if not steps:
    raise FileNotFoundError(f"{ar_workdir}: no complete checkpoint")
  if which == "latest":
    return [max(steps)]
  if which == "all":
    return sorted(steps)
  wanted = [int(s) for s in which.split(",")]
  missing = sorted(set(wanted) - set(steps))
  if missing:
    raise ValueError(f"--checkpoints: no checkpoint for steps {missing} (have {sorted(steps)})")
  return wanted


def ar_eval_metrics(ar_workdir: pathlib.Path, step: int) -> dict[str, float]:
  rows = read_metrics_rows(ar_workdir / "metrics.jsonl")
  found = [r for r in rows if r.get("step") == step and any(k.startswith("eval/") for k in r)]
  return {k: v for k, v in found[-1].items() if k.startswith("eval/")} if found else {}


def run_sweep(root, sweep, out_dir, checkpoints: str = "latest", transformer: str = "",
              mesh=None):
  """Yields one result row (a flat dict) per (checkpoint, setting); each row's full
  report (every path, intervals, curve, grids) is written to OUT/<row name>/report.md.
  `transformer`: the stage directory whose checkpoints are swept ("": ar_rl when
  the root has it, else ar). `mesh` (parallel/placement.py): every stage restored
  sharded on it, as `umm generate --mesh` does; None: one device, replicated."""
  root, out_dir = pathlib.Path(root), pathlib.Path(out_dir)
  ar_dir = transformer_dir(root, transformer)
  base = load_stages(root, need_ar=False, mesh=mesh)
  for step in select_steps(ar_dir, checkpoints):
    stages = dataclasses.replace(base, ar=load_ar(ar_dir, base.frontend.num_codes, step=step,
                                                  mesh=mesh))
    losses = ar_eval_metrics(ar_dir, step)
    for index, setting in enumerate(sweep.settings):
      setting = dict(setting)
      name = f"step{step}_setting{index}"
      t0 = time.perf_counter()
      out = run_benchmark(root, stages=stages, sampling=setting,
                          per_category=int(sweep.prompts_per_category),
                          binding_counts=tuple(sweep.binding_counts), seed=int(sweep.seed),
                          caption_scenes=int(sweep.get("caption_scenes", 0)),
                          edit_scenes=int(sweep.get("edit_scenes", 0)))
      seconds = time.perf_counter() - t0
      write_report(out_dir / name, paths=out["paths"], captioning=out["captioning"],
                   editing=out["editing"], stage_times={"benchmark": seconds},
                   probe_tflops=None, commands=[f"umm eval --workdir {root} (checkpoint {step}, "
                                                f"setting {index}: {setting})"])
      metrics = {f"{path}/{k}": v for path, p in out["paths"].items()
                 for k, v in flat_metrics(p["summary"]).items()}
      best = max(out["paths"], key=lambda path: out["paths"][path]["summary"]["overall"])
      yield {"checkpoint": step, "setting": index, **setting, "best_path": best,
             **flat_metrics(out["paths"][best]["summary"]), **metrics, "seconds": seconds,
             **losses, "report": f"{name}/report.md"}
