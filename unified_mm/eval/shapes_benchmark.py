"""The shapes benchmark run on a trained root: every path, captions, edits.

    out = run_benchmark("runs/demo", per_category=50)
    write_report("runs/demo", **out, stage_times=..., probe_tflops=..., commands=[...])

Paths (each draws every benchmark prompt):
  "planned + renderer"  the transformer writes its plan, then the codes; the
                        renderer reads codes, prompt and plan
  "planned + preview"   the same codes through the tokenizer's preview decoder
  "plain + renderer"    caption -> codes with no plan; the renderer reads codes + prompt
  "plain + preview"     those codes through the preview decoder
  "text-only renderer"  ROOT/renderer_text_only (when trained): the prompt alone,
                        the Stable-Diffusion-style baseline
A preview path reuses its renderer path's codes, so a transformer sample is drawn
once per prompt and path kind. Planned results carry `plan_correct` and
`image_matches_plan` (plan_scoring.py).
"""

from __future__ import annotations

import logging
import pathlib
import time
from typing import Any

import jax
import numpy as np

from unified_mm.data.layout import MAX_OBJECTS
from unified_mm.data.shapes.spec import PromptSpec
from unified_mm.eval import benchmark
from unified_mm.eval.plan_scoring import plan_flags
from unified_mm.eval.sweep_keys import AR_KEYS, RENDER_KEYS
from unified_mm.generate.pipeline import caption_codes, generate, render_codes
from unified_mm.generate.stages import Stages, load_renderer_stage, load_stages

log = logging.getLogger("unified_mm.benchmark")
TEXT_ONLY_DIR = "renderer_text_only"


def _padded(items: list, batch: int) -> list:
  return items + [items[-1]] * (batch - len(items))


def _render_sampling(stages: Stages, sampling: dict[str, Any]) -> dict[str, Any]:
  """The renderer's preset sampler, with a setting's overrides."""
  s = stages.renderer_task.config.sample
  out = dict(steps=int(s.steps), chunks=int(s.chunks), render_cfg=float(s.cfg_scale),
             method=str(s.method), start=float(s.start))
  return out | {k: v for k, v in sampling.items() if k in RENDER_KEYS}


def _ar_sampling(sampling: dict[str, Any]) -> dict[str, Any]:
  unknown = set(sampling) - set(AR_KEYS) - set(RENDER_KEYS)
  if unknown:
    raise ValueError(f"unknown sampling keys {sorted(unknown)}; known: {AR_KEYS + RENDER_KEYS}")
  return {k: v for k, v in sampling.items() if k in AR_KEYS}


# The plan's object budget per batch, the smallest of these that covers the
# batch's prompts with room for a few unasked objects: a plan's decode runs its
# whole budget, so one-object prompts should not pay for twenty-four.
PLAN_BUDGETS = (8, 16, MAX_OBJECTS)


def plan_budget(prompts: list[str], cap: int = MAX_OBJECTS) -> int:
  from unified_mm.data.shapes.captions import parse_caption  # noqa: PLC0415
  asked = 0
  for p in prompts:
    try:
      asked = max(asked, parse_caption(p).num_objects)
    except ValueError:
      return cap
  return min(next((b for b in PLAN_BUDGETS if b >= asked + 4), cap), cap)


def draw(stages: Stages, prompts: list[str], *, planned: bool, seed: int, batch: int,
         sampling: dict[str, Any]) -> dict[str, Any]:
  """Renderer images, preview images, codes and plans for every prompt, in batches
  of one compiled size; images/s over the batches after the first."""
  render, ar = _render_sampling(stages, sampling), _ar_sampling(sampling)
  cap = int(ar.pop("max_objects", PLAN_BUDGETS[-1]))
  rendered, previews, plans, times = [], [], [], []
  for start in range(0, len(prompts), batch):
    chunk = prompts[start:start + batch]
    t0 = time.perf_counter()
    out = generate(stages, _padded(chunk, batch), seed=seed + start, planned=planned,
                   max_objects=plan_budget(chunk, cap), **render, **ar)
    rendered.extend(np.asarray(out.images)[:len(chunk)])
    previews.extend(np.asarray(stages.frontend.decode_codes(out.codes))[:len(chunk)])
    plans.extend((out.plans or [None] * batch)[:len(chunk)])
    times.append((time.perf_counter() - t0, len(chunk)))
  warm = times[1:] or times
  return {"renderer": np.stack(rendered), "preview": np.stack(previews), "plans": plans,
          "images_per_s": sum(n for _, n in warm) / sum(t for t, _ in warm)}


def score_path(rows, images, plans=None, bins: int = 0) -> dict[str, Any]:
  """One path's verdicts on benchmark-style rows: {summary, results, images, prompts};
  with plans, each result also says whether its plan was right and drawn as planned."""
  results = benchmark.score_images(rows, images)
  if plans is not None:
    from unified_mm.data.shapes.scene import Scene  # noqa: PLC0415
    for r, row, plan in zip(results, rows, plans):
      r.update(plan_flags(PromptSpec.from_dict(row["spec"]), plan or [],
                          Scene.from_dict(r["detected"]), bins))
  return {"summary": benchmark.summarize(results), "results": results, "images": images,
          "prompts": [row["prompt"] for row in rows]}


def planned_eval_args(argv: list[str] | None, description: str, seed: int, count: str,
                      count_default: int):
  """(args, stages) of a `python -m unified_mm.eval.X --workdir ROOT` check of the
  planned path: --workdir, --seed, --batch and its prompt count `count`."""
  import argparse  # noqa: PLC0415

  from unified_mm.generate.stages import load_stages  # noqa: PLC0415
  parser = argparse.ArgumentParser(description=description)
  parser.add_argument("--workdir", required=True, help="run root (tokenizer/, ar/, renderer/)")
  parser.add_argument(count, type=int, default=count_default)
  parser.add_argument("--seed", type=int, default=seed)
  parser.add_argument("--batch", type=int, default=50)
  args = parser.parse_args(argv)
  return args, load_stages(args.workdir)


def score_planned(stages: Stages, rows, *, seed: int, batch: int,
                  prompts: list[str] | None = None) -> dict[str, Any]:
  """`score_path` of the rows drawn through the planned path with the benchmark's
  sampling; `prompts` (a rewrite of each row's) are drawn in their place."""
  drawn = draw(stages, prompts or [r["prompt"] for r in rows], planned=True, seed=seed,
               batch=batch, sampling=benchmark_sampling(stages))
  return score_path(rows, drawn["renderer"], drawn["plans"], stages.ar.vocab.layout_bins)


def text_only_images(root: pathlib.Path, stages: Stages, prompts: list[str], *, seed: int,
                     batch: int) -> np.ndarray:
  """The text-only renderer's images (ROOT/renderer_text_only) through the same decoder."""
  model, task = load_renderer_stage(root, TEXT_ONLY_DIR, stages.frontend)
  baseline = Stages(stages.frontend, None, model, task)
  grid = stages.frontend.code_grid
  s = task.config.sample
  images = []
  for start in range(0, len(prompts), batch):
    chunk = _padded(prompts[start:start + batch], batch)
    codes = np.zeros((batch, grid, grid), np.int32)  # not read: the baseline has no visual tokens
    out = render_codes(baseline, codes, chunk, jax.random.key(seed + start), steps=int(s.steps),
                       chunks=int(s.chunks), cfg_scale=float(s.cfg_scale), method=str(s.method),
                       start=float(s.start))
    images.extend(np.asarray(out)[:min(batch, len(prompts) - start)])
  return np.stack(images)


def captioning(stages: Stages, n: int, seed: int = benchmark.CAPTION_SEED) -> dict[str, Any]:
  from unified_mm.data.shapes.render import render  # noqa: PLC0415
  scenes = benchmark.caption_scenes(seed, n)
  _, codes = stages.frontend.encode(np.stack([render(s) for s in scenes]))
  texts = caption_codes(stages.ar, np.asarray(codes), jax.random.key(seed))
  return benchmark.caption_accuracy_rows(scenes, texts)


def editing(stages: Stages, n: int, *, batch: int, sampling: dict[str, Any],
            seed: int = benchmark.EDIT_SEED) -> dict[str, Any]:
  from unified_mm.data.shapes.render import render  # noqa: PLC0415
  cases = benchmark.edit_cases(seed, n)
  ar = {k: v for k, v in _ar_sampling(sampling).items() if k in ("cfg_scale", "temperature",
                                                                  "top_k")}
  images = []
  for start in range(0, n, batch):
    chunk = _padded(cases[start:start + batch], batch)
    out = generate(stages, [c["instruction"] for c in chunk], seed=seed + start,
                   init_images=np.stack([render(c["source"]) for c in chunk]),
                   **_render_sampling(stages, sampling), **ar)
    images.extend(np.asarray(out.images)[:min(batch, n - start)])
  return benchmark.edit_accuracy(cases, np.stack(images))


def default_sampling(stages: Stages) -> dict[str, Any]:
  """The transformer's preset sampling (`sample` in its config), if it has one."""
  return dict(stages.ar.config.get("sample", {}))


def benchmark_sampling(stages: Stages, setting: dict[str, Any] | None = None) -> dict[str, Any]:
  """The preset with a sweep setting's keys over it: a setting names only what it
  varies (`{}` is the preset, as `umm demo` samples), never generate()'s defaults."""
  return default_sampling(stages) | dict(setting or {})


def run_benchmark(root, *, per_category: int = benchmark.PROMPTS_PER_CATEGORY,
                  binding_counts=benchmark.BINDING_COUNTS, seed: int = benchmark.BENCHMARK_SEED,
                  batch: int = 50, sampling: dict[str, Any] | None = None,
                  caption_scenes: int = 50, edit_scenes: int = 50,
                  stages: Stages | None = None) -> dict[str, Any]:
  """{"paths": {name: path}, "captioning", "editing", "timings"} for `report.write_report`.

  `sampling` (keys: eval/sweep_keys.py) overrides the transformer's preset."""
  root = pathlib.Path(root)
  stages = stages or load_stages(root)
  sampling = benchmark_sampling(stages, sampling)
  rows = benchmark.benchmark_prompts(seed, per_category, binding_counts)
  prompts = [row["prompt"] for row in rows]
  paths, timings = {}, {}
  kinds = (("planned", True), ("plain", False)) if stages.ar.vocab.layout_bins else (
      ("plain", False),)
  for name, planned in kinds:
    t0 = time.perf_counter()
    drawn = draw(stages, prompts, planned=planned, seed=seed, batch=batch, sampling=sampling)
    bins = stages.ar.vocab.layout_bins
    if planned or stages.renderer_reads_codes:  # a layout renderer needs a plan
      paths[f"{name} + renderer"] = score_path(rows, drawn["renderer"],
                                               drawn["plans"] if planned else None, bins)
    paths[f"{name} + preview"] = score_path(rows, drawn["preview"],
                                            drawn["plans"] if planned else None, bins)
    timings[name] = time.perf_counter() - t0
    log.info("%s: %d prompts in %.0f s (%.2f images/s)", name, len(prompts), timings[name],
             drawn["images_per_s"])
  if (root / TEXT_ONLY_DIR).exists():
    t0 = time.perf_counter()
    images = text_only_images(root, stages, prompts, seed=seed, batch=batch)
    paths["text-only renderer"] = score_path(rows, images)
    timings["text-only"] = time.perf_counter() - t0
  t0 = time.perf_counter()
  captions = captioning(stages, caption_scenes) if caption_scenes else None
  edits = editing(stages, edit_scenes, batch=batch, sampling=sampling) if edit_scenes else None
  timings["captions + edits"] = time.perf_counter() - t0
  return {"paths": paths, "captioning": captions, "editing": edits, "timings": timings}
