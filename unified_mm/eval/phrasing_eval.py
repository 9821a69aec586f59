"""The benchmark's prompts as people type them, through the planned path.

    python -m unified_mm.eval.phrasing_eval --workdir ROOT [--per-category 50] [--seed 52711]

The benchmark writes its prompts the way the shapes captions are written: lower
case, counts in words, no full stop. People type "A red circle left of a blue
square." and "3 green stars". Each row here is one such rewrite of every prompt
of the six categories (on a seed the benchmark never uses), scored by the
analyzer against the unchanged spec; a rewrite the model reads as the original
scores as the original does (docs/quality.md, "Prompts as people type them").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from unified_mm.data.shapes.captions import with_digits, without_prefix
from unified_mm.data.shapes.spec import CATEGORIES
from unified_mm.eval.benchmark import benchmark_prompts, rate

DEFAULT_SEED = 52_711  # neither the benchmark's, the captioning's, the edits' nor GRPO's


def _sentence(text: str) -> str:
  return text[:1].upper() + text[1:] + "."


def _photo(text: str) -> str:
  return "a photo of " + without_prefix(text)  # GenEval's own template


REWRITES: dict[str, Callable[[str], str]] = {
    "as written": lambda t: t,
    "sentence case, full stop": _sentence,
    "upper case": str.upper,
    "a photo of ...": _photo,
    "counts in digits": with_digits,
}


def phrasing_summary(rows: Sequence[dict[str, Any]], results: Sequence[dict[str, Any]]
                     ) -> dict[str, Any]:
  """{category: accuracy} for one rewrite, plus "overall" (the mean of the six) and
  "plan_correct" (the share of plans that satisfy their prompt)."""
  cats = {c: rate(bool(r["correct"]) for r, row in zip(results, rows, strict=True)
                  if row["category"] == c)["accuracy"] for c in CATEGORIES}
  return {**cats, "overall": float(np.mean(list(cats.values()))),
          "plan_correct": rate(bool(r.get("plan_correct")) for r in results)["accuracy"]}


def main(argv: list[str] | None = None) -> int:
  """Prints, per rewrite, how the planned path draws the rewritten prompts."""
  import json  # noqa: PLC0415

  from unified_mm.eval.shapes_benchmark import planned_eval_args, score_planned  # noqa: PLC0415
  args, stages = planned_eval_args(argv, main.__doc__, DEFAULT_SEED, "--per-category", 50)
  rows = benchmark_prompts(args.seed, args.per_category, (2,))
  for name, rewrite in REWRITES.items():
    prompts = [rewrite(r["prompt"]) for r in rows]
    path = score_planned(stages, rows, seed=args.seed, batch=args.batch, prompts=prompts)
    summary = phrasing_summary(rows, path["results"])
    print(json.dumps({"rewrite": name, "example": prompts[2 * args.per_category],
                      **{k: round(v, 3) for k, v in summary.items()}}), flush=True)
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
