"""`umm eval`: one row per (AR checkpoint, sampling setting) on the shapes benchmark.

The tokenizer and renderer are loaded once; each listed AR checkpoint is
restored in turn and every setting of the sweep draws the same benchmark
prompts, which the scene analyzer scores (GenEval-style categories, binding
accuracy vs object count). The AR's own held-out losses at that step come
from its metrics.jsonl (`eval/ar/...`), so a row also carries text and
image-token loss.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import time

import numpy as np

from unified_mm.data.shapes.preview import preview_grid
from unified_mm.data.shapes.prompts import sample_prompt
from unified_mm.data.shapes.scorer import score, summarize
from unified_mm.generate.pipeline import generate
from unified_mm.generate.stages import load_stages
from unified_mm.models.transformer.loader import load_ar
from unified_mm.train.checkpoint import Checkpoints, checkpoint_dir

BATCH = 8


def benchmark_prompts(sweep) -> list[tuple[str, object]]:
  """(prompt, spec) pairs, the same for every checkpoint and setting."""
  rng = np.random.default_rng(int(sweep.seed))
  asked = []
  for category in sweep.categories:
    counts = sweep.binding_counts if category == "binding" else (None,)
    for n in counts:
      asked += [sample_prompt(rng, category, n)[:2] for _ in range(sweep.prompts_per_category)]
  return asked


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
  path = ar_workdir / "metrics.jsonl"
  if not path.exists():
    return {}
  rows = [json.loads(line) for line in path.read_text().splitlines()]
  found = [r for r in rows if r.get("step") == step and any(k.startswith("eval/") for k in r)]
  return {k: v for k, v in found[-1].items() if k.startswith("eval/")} if found else {}


def _draw(stages, prompts: list[str], setting: dict, seed: int) -> tuple[np.ndarray, float]:
  """Images for all prompts, and images/s after the first (compiling) batch."""
  images, times = [], []
  for start in range(0, len(prompts), BATCH):
    chunk = prompts[start:start + BATCH]
    padded = chunk + [chunk[-1]] * (BATCH - len(chunk))  # one compiled shape
    t0 = time.perf_counter()
    out = generate(stages, padded, seed=seed + start, cfg_scale=float(setting["cfg"]),
                      temperature=float(setting.get("temperature", 1.0)),
                      preview=bool(setting.get("preview", False)),
                      steps=int(setting.get("steps", 8)), chunks=int(setting.get("chunks", 1)),
                      render_cfg=float(setting.get("render_cfg", 1.0)),
                      method=str(setting.get("method", "heun")))
    out = np.asarray(out.images)
    times.append((time.perf_counter() - t0, len(chunk)))
    images.extend(out[:len(chunk)])
  warm = times[1:] or times
  return np.stack(images), sum(n for _, n in warm) / sum(t for t, _ in warm)


def run_sweep(root, sweep, out_dir, checkpoints: str = "latest"):
  """Yields one result row (a flat dict) per (checkpoint, setting)."""
  root, out_dir = pathlib.Path(root), pathlib.Path(out_dir)
  (out_dir / "grids").mkdir(parents=True, exist_ok=True)
  base = load_stages(root, need_ar=False)
  asked = benchmark_prompts(sweep)
  prompts = [text for text, _ in asked]
  for step in select_steps(root / "ar", checkpoints):
    stages = dataclasses.replace(base, ar=load_ar(root / "ar", base.frontend.num_codes, step=step))
    losses = ar_eval_metrics(root / "ar", step)
    for index, setting in enumerate(sweep.settings):
      setting = dict(setting)
      images, rate = _draw(stages, prompts, setting, int(sweep.seed))
      summary = summarize(score(spec, image) for (_, spec), image in zip(asked, images))
      name = f"step{step}_setting{index}"
      preview_grid(images, prompts, out_dir / "grids" / f"{name}.png", cols=8, tile=128)
      yield {"checkpoint": step, "setting": index, **setting, **summary,
             "images_per_s": rate, **losses, "grid": f"grids/{name}.png"}
