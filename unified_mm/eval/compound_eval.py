"""Compound prompts through the planned path: prompts that ask for a count, a size
and a relation at once ("two red circles left of a blue square"), which the
benchmark's six categories each ask alone.

    python -m unified_mm.eval.compound_eval --workdir ROOT [--prompts 100] [--seed 20011]

Not a benchmark category (GenEval's overall stays the mean of the six): a check
that the planner composes what each category taught it, on prompts drawn from
`data.shapes.prompts.sample_compound` on a stream of the seed that the
benchmark's own rows never draw from. Prints, overall and split into relation and list prompts,
the share drawn right (the analyzer's verdict, and the second reader's), the
share whose plan alone satisfies the prompt and the share drawn as planned
(docs/quality.md, "Compound prompts").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from unified_mm.data.shapes.prompts import sample_compound
from unified_mm.eval.benchmark import BENCHMARK_SEED, rate

# The benchmark's rows draw from default_rng([seed, j, i]) with j < 20: this stream
# is disjoint from them.
_STREAM = 99
FLAGS = ("correct", "plan_correct", "image_matches_plan")


def compound_rows(seed: int = BENCHMARK_SEED, n: int = 100) -> list[dict[str, Any]]:
  """Benchmark-style rows (id, category, prompt, spec, scene, num_objects)."""
  rows = []
  for i in range(n):
    text, spec, scene = sample_compound(np.random.default_rng([seed, _STREAM, i]))
    rows.append({"id": f"compound/{i}", "category": spec.category, "prompt": text,
                 "spec": spec.to_dict(), "scene": scene.to_dict(),
                 "num_objects": spec.num_objects})
  return rows


def compound_summary(rows: Sequence[dict[str, Any]], results: Sequence[dict[str, Any]]
                     ) -> dict[str, Any]:
  """{all, relation, list} -> {flag: rate (accuracy, n, Wilson lo / hi)}, plus the
  second reader's verdict as "second_reader"."""
  groups = {"all": list(range(len(rows))),
            "relation": [i for i, r in enumerate(rows) if r["spec"]["relations"]],
            "list": [i for i, r in enumerate(rows) if not r["spec"]["relations"]]}
  out = {}
  for name, idx in groups.items():
    out[name] = {f: rate(bool(results[i].get(f)) for i in idx) for f in FLAGS}
    out[name]["second_reader"] = rate(bool(results[i]["second_reader"]["correct"]) for i in idx)
  return out


def main(argv: list[str] | None = None) -> int:
  """Prints how the planned path draws compound prompts."""
  import json  # noqa: PLC0415

  from unified_mm.eval.shapes_benchmark import planned_eval_args, score_planned  # noqa: PLC0415
  args, stages = planned_eval_args(argv, main.__doc__, BENCHMARK_SEED, "--prompts", 100)
  rows = compound_rows(args.seed, args.prompts)
  path = score_planned(stages, rows, seed=args.seed, batch=args.batch)
  summary = compound_summary(rows, path["results"])
  brief = {g: {f: round(v["accuracy"], 3) for f, v in s.items()} | {"n": s["correct"]["n"]}
           for g, s in summary.items()}
  print(json.dumps({"workdir": str(args.workdir), "seed": args.seed, **brief}))
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
