"""The shapes benchmark as an instrument: per-prompt verdicts, per-category
accuracies with 95% Wilson intervals, the binding-vs-object-count curve, and
caption and edit accuracy on held-out scenes.

    rows = benchmark_prompts()                     # 6 categories x 50 + the curve
    results = score_images(rows, images)           # images uint8 [N, 64, 64, 3]
    summary = summarize(results)                   # JSON-ready numbers for report.py

Rules (decided here, stated once):

* **Seeds.** Training renders `scene_for_index(s, i)` = `default_rng([s, i])`
  with s in {0, 1, 777} and evaluates on s = 10_007. The benchmark draws prompt
  i of job j from `default_rng([20_011, j, i])`, caption scenes from
  `scene_for_index(20_011, i)`, edit cases from seed 20_013: disjoint seeds.
* **The binding category** is GenEval's attribute binding, which asks for two
  objects: its score uses exactly the rows generated for the category with
  two objects (ids "binding2/..."). Larger counts feed only the curve.
* **Overall** is the mean over the six categories (GenEval's rule). Its
  interval is a stratified bootstrap (each category's prompts resampled, i.e.
  one binomial draw per category); averaging the per-category Wilson bounds
  would not be an interval of anything. Like any bootstrap it collapses to a
  point when every category sits at 0 or 1; the category intervals do not.
* **Binding counts.** `BINDING_COUNTS` = (2, 4, 6, 8, 12, 16, 20, 24). Measured
  on 100 binding prompts per count at 64x64 (seeds [20_011, 99, n, i]): every
  count up to 25 places, and the analyzer reads every object of every
  reference render back right (100/100 at each of 2, 4, 6, 8, 10, 12, 14, 16,
  17, 18, 20, 24 and 25). Crowding shows in the layout: the placer falls back
  to a jittered grid in 3% of scenes at 8 objects, 42% at 10, 77% at 12 and
  100% from 16, and shrinks objects (share drawn small, 10 px, the analyzer's
  smallest reliable size: 40% at 8, 85% at 12, 100% from 17). 25 is the last
  count that fits (a 5x5 grid of 10 px cells); 26 raises "26 objects do not
  fit in a 64x64 image". 24 is the last curve point; its prompts run to ~75
  words.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np

from unified_mm.data.shapes import analyzer, edits, prompts, scorer, second_reader
from unified_mm.data.shapes.scene import Scene, scene_for_index
from unified_mm.data.shapes.spec import CATEGORIES, PromptSpec
from unified_mm.eval.caption_eval import caption_matches

BENCHMARK_SEED = 20_011
CAPTION_SEED = 20_011
EDIT_SEED = 20_013
PROMPTS_PER_CATEGORY = 50
BINDING_COUNTS: tuple[int, ...] = (2, 4, 6, 8, 12, 16, 20, 24)
# The most objects place_objects fits at 64x64 (a 5x5 grid of small shapes).
MAX_OBJECTS_64 = 25
# GenEval's attribute-binding prompts name two objects; see the module docstring.
CATEGORY_BINDING_COUNT = 2
# The scorer's own boolean keys; any other boolean key of a result (e.g. the
# lead's "plan_correct", "image_matches_plan") is an extra rate to report.
_SCORER_FLAGS = frozenset({"correct", "all_correct"})
# What a result keeps of the second reader's verdict (data/shapes/second_reader.py).
_SECOND_READER_KEYS = ("correct", "all_correct", "binding_accuracy")
_BOOTSTRAP_DRAWS = 4000


def wilson_interval(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
  """95% Wilson score interval of a binomial rate k / n; (0, 1) when n = 0.

  Unlike p +- z sqrt(p(1-p)/n), it stays inside [0, 1] and does not collapse
  to a point at k = 0 or k = n, which small categories hit often.
  """
  if n == 0:
    return 0.0, 1.0
  p = k / n
  denom = 1 + z * z / n
  centre = (p + z * z / (2 * n)) / denom
  half = z / denom * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
  # At k = 0 (k = n) the bound is exactly 0 (1); the formula reaches it only up
  # to rounding, and a report should print 1.00, not 0.99.
  lo = 0.0 if k == 0 else max(0.0, float(centre - half))
  hi = 1.0 if k == n else min(1.0, float(centre + half))
  return lo, hi


def rate(flags: Iterable[bool]) -> dict[str, Any]:
  """{accuracy, n, correct, lo, hi} of a list of verdicts (accuracy None if empty)."""
  flags = [bool(f) for f in flags]
  k, n = sum(flags), len(flags)
  lo, hi = wilson_interval(k, n)
  return {"accuracy": k / n if n else None, "n": n, "correct": k, "lo": lo, "hi": hi}


def benchmark_prompts(seed: int = BENCHMARK_SEED, per_category: int = PROMPTS_PER_CATEGORY,
                      binding_counts: Sequence[int] = BINDING_COUNTS) -> list[dict[str, Any]]:
  """The prompt rows of `prompts.benchmark` at 64x64 with this module's counts."""
  return prompts.benchmark(seed, per_category, 64, binding_counts)


# ----------------------------------------------------------------- scoring --

def score_images(rows: Sequence[dict[str, Any]], images: np.ndarray) -> list[dict[str, Any]]:
  """One result per row: `scorer.score` of the image read back by the analyzer,
  plus the row's id, category, prompt and num_objects, the detected scene (as a
  dict, so a report can show what the analyzer saw) and, under "second_reader",
  the verdict on what `second_reader.read` sees (`second_reader_summary`)."""
  images = np.asarray(images)
  if len(images) != len(rows):
    raise ValueError(f"{len(rows)} prompt rows but {len(images)} images")
  results = []
  for row, image in zip(rows, images):  # image: [H, W, 3] uint8
    detected = analyzer.analyze(image)
    spec = PromptSpec.from_dict(row["spec"])
    verdict = scorer.score(spec, detected)
    second = scorer.score(spec, second_reader.read(image))
    results.append(verdict | {"id": row["id"], "category": row["category"],
                              "prompt": row["prompt"], "num_objects": row["num_objects"],
                              "detected": detected.to_dict(),
                              "second_reader": {k: second[k] for k in _SECOND_READER_KEYS}})
  return results


def second_reader_summary(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
  """`summarize` of the same prompts with every verdict the second reader's,
  plus "agreement": the share of prompts on which the two readers agree."""
  swapped = [r | r["second_reader"] for r in results]
  agree = [r["correct"] == s["correct"] for r, s in zip(results, swapped)]
  return summarize(swapped, extra_keys=()) | {"agreement": float(np.mean(agree)) if agree else None}


def in_category(result: dict[str, Any], category: str) -> bool:
  """Whether a result counts toward a category's score (binding: two-object rows only)."""
  if result["category"] != category:
    return False
  return category != "binding" or result["id"].startswith(f"binding{CATEGORY_BINDING_COUNT}/")


def extra_flags(results: Sequence[dict[str, Any]]) -> list[str]:
  """Boolean keys besides the scorer's, in first-seen order (the plan diagnostics)."""
  keys = dict.fromkeys(k for r in results for k, v in r.items()
                       if isinstance(v, (bool, np.bool_)) and k not in _SCORER_FLAGS)
  return list(keys)


def _with_extras(group: Sequence[dict[str, Any]], keys: Sequence[str]) -> dict[str, Any]:
  out = rate(r["correct"] for r in group)
  if keys:
    # A result without the key (e.g. a path that writes no plan) is left out of its rate.
    out["extras"] = {k: rate(r[k] for r in group if k in r) for k in keys}
  return out


def overall_interval(categories: dict[str, dict[str, Any]], *, draws: int = _BOOTSTRAP_DRAWS,
                     seed: int = 0) -> tuple[float, float]:
  """95% stratified-bootstrap interval of the mean over categories.

  Resampling a category's n prompts with replacement gives Binomial(n, p)
  correct ones, so each draw is one binomial per category; seeded, so a report
  is reproducible.
  """
  rng = np.random.default_rng(seed)
  used = [c for c in categories.values() if c["n"]]
  if not used:
    return 0.0, 1.0
  means = np.mean([rng.binomial(c["n"], c["accuracy"], draws) / c["n"] for c in used], axis=0)
  lo, hi = np.percentile(means, [2.5, 97.5])
  return float(lo), float(hi)


def binding_curve(results: Sequence[dict[str, Any]],
                  keys: Sequence[str] = ()) -> list[dict[str, Any]]:
  """Per object count of the binding rows: mean binding_accuracy (share of the
  asked objects present with their colour) and the all-correct rate with its
  Wilson interval."""
  by_count: dict[int, list[dict[str, Any]]] = {}
  for r in results:
    if r["category"] == "binding":
      by_count.setdefault(int(r["num_objects"]), []).append(r)
  curve = []
  for n, group in sorted(by_count.items()):
    point = _with_extras(group, keys)
    point["all_correct"] = point.pop("accuracy")
    curve.append({"num_objects": n,
                  "binding_accuracy": float(np.mean([r["binding_accuracy"] for r in group]))}
                 | point)
  return curve


def summarize(results: Sequence[dict[str, Any]],
              extra_keys: Sequence[str] | None = None) -> dict[str, Any]:
  """{categories: {name: {accuracy, n, correct, lo, hi[, extras]}}, overall,
  overall_lo, overall_hi, curve: [...], extra_keys}.

  Extra boolean keys of the results (found by `extra_flags` unless given) are
  reported as rates per category and per curve point under "extras".
  """
  keys = list(extra_flags(results) if extra_keys is None else extra_keys)
  categories = {c: _with_extras([r for r in results if in_category(r, c)], keys)
                for c in CATEGORIES}
  scored = [c["accuracy"] for c in categories.values() if c["n"]]
  lo, hi = overall_interval(categories)
  return {"categories": categories,
          "overall": float(np.mean(scored)) if scored else None,
          "overall_lo": lo, "overall_hi": hi,
          "overall_categories": [c for c, v in categories.items() if v["n"]],
          "curve": binding_curve(results, keys), "extra_keys": keys}


def flat_metrics(summary: dict[str, Any]) -> dict[str, float]:
  """The summary as flat sweep-row scalars: "<category>/accuracy", "overall",
  "binding/accuracy_at_<n>" (mean share, as scorer.summarize names it) and
  "binding/all_correct_at_<n>"."""
  out = {f"{c}/accuracy": v["accuracy"] for c, v in summary["categories"].items() if v["n"]}
  if summary["overall"] is not None:
    out["overall"] = summary["overall"]
  for p in summary["curve"]:
    out[f"binding/accuracy_at_{p['num_objects']}"] = p["binding_accuracy"]
    out[f"binding/all_correct_at_{p['num_objects']}"] = p["all_correct"]
  return out


# ------------------------------------------------------ captions and edits --

def caption_scenes(seed: int = CAPTION_SEED, n: int = PROMPTS_PER_CATEGORY) -> list[Scene]:
  """Held-out scenes of 1-2 objects to caption (`caption_eval.held_out_scenes`' rule)."""
  return [scene_for_index(seed, i, min_objects=1, max_objects=2) for i in range(n)]


def caption_accuracy_rows(scenes: Sequence[Scene], captions: Sequence[str]) -> dict[str, Any]:
  """{accuracy, n, correct, lo, hi, rows} of generated captions against their
  scenes, by `caption_eval.caption_matches` (a colour for every object, the
  exact multiset, true sizes and relations)."""
  if len(scenes) != len(captions):
    raise ValueError(f"{len(scenes)} scenes but {len(captions)} captions")
  rows = [{"index": i, "caption": text, "correct": caption_matches(text, scene),
           "objects": [f"{o.colour} {o.kind}" for o in scene.objects]}
          for i, (scene, text) in enumerate(zip(scenes, captions))]
  return rate(r["correct"] for r in rows) | {"rows": rows}


def edit_cases(seed: int = EDIT_SEED, n: int = PROMPTS_PER_CATEGORY,
               max_objects: int = 4) -> list[dict[str, Any]]:
  """n held-out edit cases {id, op, source, instruction, edit, target}.

  Sources are scenes of 1..max_objects objects as in the training edit
  documents; the ops take turns (recolour, move, add, remove) so each gets a
  quarter of the cases, falling back to any op that applies.
  """
  cases = []
  for i in range(n):
    source = scene_for_index(seed, i, min_objects=1, max_objects=max_objects)
    rng = np.random.default_rng([seed, i, 2])
    try:
      edit, target = edits.plan_edit(source, rng, edits.OPS[i % len(edits.OPS)])
    except ValueError:
      edit, target = edits.plan_edit(source, rng)
    cases.append({"id": f"edit/{i}", "op": edit.op, "source": source,
                  "instruction": edits.instruction(edit, rng), "edit": edit, "target": target})
  return cases


def edit_accuracy(cases: Sequence[dict[str, Any]], images: np.ndarray) -> dict[str, Any]:
  """{accuracy, n, correct, lo, hi, per_op, rows}: whether each result image
  (uint8 [N, H, W, 3]), read back by the analyzer, is the case's source with
  the edit done and nothing else changed (`edits.check_edit`). The source is
  the true scene: its clean render, the model's input, reads back exactly."""
  images = np.asarray(images)
  if len(images) != len(cases):
    raise ValueError(f"{len(cases)} edit cases but {len(images)} images")
  rows = []
  for case, image in zip(cases, images):
    detected = analyzer.analyze(image)
    rows.append({"id": case["id"], "op": case["op"], "instruction": case["instruction"],
                 "correct": edits.check_edit(case["source"], case["edit"], detected),
                 "detected": detected.to_dict()})
  per_op = {op: rate(r["correct"] for r in rows if r["op"] == op)
            for op in edits.OPS if any(r["op"] == op for r in rows)}
  return rate(r["correct"] for r in rows) | {"per_op": per_op, "rows": rows}
