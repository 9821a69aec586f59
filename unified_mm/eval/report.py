"""The benchmark report a person reads: report.md with relative image links,
report.json with the same numbers, and the PNGs they link.

    write_report(root, paths={"transformer + renderer": {"summary": s, "results": r,
                                                         "images": x, "prompts": p}},
                 captioning=caption_summary, editing=edit_summary,
                 stage_times={"tokenizer": 1830.0, ...}, probe_tflops=0.44,
                 commands=["umm demo --workdir runs/demo"])

`summary` is `benchmark.summarize(results)`, `results` the matching
`benchmark.score_images` list and `images` uint8 [N, H, W, 3] in the same
order. `captioning` / `editing` are `benchmark.caption_accuracy_rows` /
`edit_accuracy` outputs, or {name: output} when several models were scored.
"""

from __future__ import annotations

import json
import pathlib
import re
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from unified_mm.data.shapes.preview import preview_grid  # noqa: E402
from unified_mm.data.shapes.spec import CATEGORIES  # noqa: E402
from unified_mm.eval import benchmark  # noqa: E402
from unified_mm.eval.benchmark import CATEGORY_BINDING_COUNT, in_category  # noqa: E402

CURVE_PNG = "binding_curve.png"
# A grid beyond ~24 tiles is too small to read in a Markdown viewer.
MAX_GRID_IMAGES = 24
_GRID_PER_CATEGORY = 2


def slug(name: str) -> str:
  """A file-name-safe form of a path name: "transformer + renderer" -> "transformer_renderer"."""
  return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "path"


def interval_cell(stats: dict[str, Any] | None, key: str = "accuracy") -> str:
  """ "0.84 [0.72, 0.91]", or "-" when nothing was scored."""
  if not stats or not stats.get("n") or stats.get(key) is None:
    return "-"
  return f"{stats[key]:.2f} [{stats['lo']:.2f}, {stats['hi']:.2f}]"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  return lines + ["| " + " | ".join(r) + " |" for r in rows] + [""]


def _as_named(section: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
  """A single accuracy summary or {name: summary}, as {name: summary}."""
  if not section:
    return {}
  return {"": section} if "accuracy" in section else dict(section)


# -------------------------------------------------------------- sections --

def _category_section(paths: dict[str, dict[str, Any]]) -> list[str]:
  rows = []
  for name, p in paths.items():
    s = p["summary"]
    overall = "-" if s["overall"] is None else (
        f"{s['overall']:.2f} [{s['overall_lo']:.2f}, {s['overall_hi']:.2f}]")
    rows.append([name] + [interval_cell(s["categories"][c]) for c in CATEGORIES] + [overall])
    counts = {c: s["categories"][c]["n"] for c in CATEGORIES}
    rows[-1][0] += f" (n = {_counts_text(counts)})"
  return (["## Compositional accuracy", "",
           "Share of prompts whose image shows everything asked, read back by the analyzer; "
           "[95% Wilson interval]. *binding* scores the two-object binding prompts "
           f"(GenEval's), larger counts are in the curve below. *overall* is the mean over "
           "the six categories (GenEval's rule), with a stratified-bootstrap interval.", ""]
          + _table(["path", *CATEGORIES, "overall"], rows))


def _second_reader_summaries(paths: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
  """{path: benchmark.second_reader_summary}, for the paths whose results carry one."""
  return {name: benchmark.second_reader_summary(p["results"]) for name, p in paths.items()
          if p["results"] and "second_reader" in p["results"][0]}


def _second_reader_section(summaries: dict[str, dict[str, Any]]) -> list[str]:
  rows = []
  for name, s in summaries.items():
    overall = "-" if s["overall"] is None else f"{s['overall']:.2f}"
    curve = ", ".join(f"{pt['num_objects']}: {pt['all_correct']:.2f}" for pt in s["curve"])
    rows.append([name] + [f"{s['categories'][c]['accuracy']:.2f}" for c in CATEGORIES]
                + [overall, curve or "-", f"{s['agreement']:.2f}"])
  if not rows:
    return []
  return (["## Read by a second reader", "",
           "The same images and prompts, scored by the same rules, read by "
           "`data/shapes/second_reader.py` instead of the analyzer: a reader that shares none "
           "of its steps (foreground against the grey, shape features voted by neighbours "
           "in a bank of drawn shapes, no palette snapping, no templates). *agree* is the "
           "share of prompts on which the two verdicts are the same.", ""]
          + _table(["path", *CATEGORIES, "overall", "binding all correct by objects", "agree"],
                   rows))


def _counts_text(counts: dict[str, int]) -> str:
  values = set(counts.values())
  return str(values.pop()) if len(values) == 1 else ", ".join(f"{c} {n}" for c, n in counts.items())


def _plan_section(paths: dict[str, dict[str, Any]]) -> list[str]:
  """Rates of the extra per-result flags (e.g. plan_correct), where a path has them."""
  lines: list[str] = []
  for name, p in paths.items():
    s = p["summary"]
    if not s.get("extra_keys"):
      continue
    counts = [pt["num_objects"] for pt in s["curve"]]
    rows = [[k] + [interval_cell(s["categories"][c].get("extras", {}).get(k)) for c in CATEGORIES]
            for k in s["extra_keys"]]
    lines += [f"### {name}", ""] + _table(["flag", *CATEGORIES], rows)
    if counts:
      rows = [[k] + [interval_cell(pt.get("extras", {}).get(k)) for pt in s["curve"]]
              for k in s["extra_keys"]]
      lines += _table(["flag \\ objects", *map(str, counts)], rows)
  if not lines:
    return []
  return ["## Plan diagnostics", "",
          "Where the planner and the drawer part ways: the rate of each flag per category "
          "and per object count [95% Wilson interval].", ""] + lines


def _plot_curve(out_dir: pathlib.Path, paths: dict[str, dict[str, Any]]) -> None:
  fig, ax = plt.subplots(figsize=(6.4, 4.0))
  for i, (name, p) in enumerate(paths.items()):
    curve = p["summary"]["curve"]
    if not curve:
      continue
    colour = f"C{i}"
    x = np.array([pt["num_objects"] for pt in curve])
    y = np.array([pt["all_correct"] for pt in curve])
    err = np.array([[pt["all_correct"] - pt["lo"] for pt in curve],
                    [pt["hi"] - pt["all_correct"] for pt in curve]])  # [2, counts]
    ax.errorbar(x, y, yerr=err, marker="o", capsize=3, color=colour, label=f"{name}: all correct")
    ax.plot(x, [pt["binding_accuracy"] for pt in curve], "--", marker=".", color=colour,
            label=f"{name}: share of objects right")
  counts = sorted({pt["num_objects"] for p in paths.values() for pt in p["summary"]["curve"]})
  if counts:
    ax.set_xticks(counts)
  ax.set_xlabel("objects in the prompt")
  ax.set_ylabel("binding accuracy")
  ax.set_ylim(-0.03, 1.03)
  ax.grid(alpha=0.3)
  if ax.lines:
    ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(out_dir / CURVE_PNG, dpi=110)
  plt.close(fig)


def _curve_section(paths: dict[str, dict[str, Any]]) -> list[str]:
  counts = sorted({pt["num_objects"] for p in paths.values() for pt in p["summary"]["curve"]})
  rows = []
  for name, p in paths.items():
    by_count = {pt["num_objects"]: pt for pt in p["summary"]["curve"]}
    rows.append([name] + [f"{interval_cell(by_count[n], 'all_correct')} / "
                          f"{by_count[n]['binding_accuracy']:.2f}" if n in by_count else "-"
                          for n in counts])
  return (["## Binding vs object count", "",
           f"![binding accuracy vs object count]({CURVE_PNG})", "",
           "Per cell: share of prompts with every object in its colour [95% Wilson "
           "interval] / mean share of the asked objects present in their colour.", ""]
          + _table(["path \\ objects", *map(str, counts)], rows))


def _accuracy_section(title: str, section: dict[str, Any] | None, text: str) -> list[str]:
  named = _as_named(section)
  if not named:
    return []
  ops = list(dict.fromkeys(op for s in named.values() for op in s.get("per_op", {})))
  rows = [[name or "this run", interval_cell(s), str(s["n"])]
          + [interval_cell(s["per_op"].get(op)) for op in ops] for name, s in named.items()]
  return [f"## {title}", "", text, ""] + _table(["model", "accuracy", "n", *ops], rows)


def sample_indices(results: Sequence[dict[str, Any]], *, per_category: int = _GRID_PER_CATEGORY,
                   max_images: int = MAX_GRID_IMAGES) -> list[int]:
  """Which results a grid shows: the first few of each category, then the first
  prompt of every curve count beyond the category's, at most max_images."""
  picked = []
  for c in CATEGORIES:
    picked += [i for i, r in enumerate(results) if in_category(r, c)][:per_category]
  seen = {CATEGORY_BINDING_COUNT}
  for i, r in enumerate(results):
    if r["category"] == "binding" and r["num_objects"] not in seen:
      seen.add(r["num_objects"])
      picked.append(i)
  return picked[:max_images]


def _grids_section(out_dir: pathlib.Path, paths: dict[str, dict[str, Any]]) -> list[str]:
  lines = ["## Samples", "",
           "The prompt under each image, after OK (the analyzer finds everything asked) or NO.", ""]
  for name, p in paths.items():
    results = p["results"]
    prompts = p.get("prompts") or [r["prompt"] for r in results]
    picked = sample_indices(results)
    file = f"grid_{slug(name)}.png"
    preview_grid([np.asarray(p["images"][i]) for i in picked],
                 [f"{'OK' if results[i]['correct'] else 'NO'} {prompts[i]}" for i in picked],
                 out_dir / file, cols=6, tile=160)
    lines += [f"### {name}", "", f"![{name} samples]({file})", ""]
  return lines


REFERENCE_PROBE_TFLOPS = 0.2  # the main job's budget machine (30 minutes at this probe)


def _machine_section(stage_times: dict[str, float], probe_tflops: float | None) -> list[str]:
  rows = [[stage, f"{seconds / 60:.1f}"] for stage, seconds in stage_times.items()]
  # Stages that ran side by side overlap: a measured wall total, when given, is the total.
  if not any("(wall)" in stage for stage in stage_times):
    rows.append(["**total**", f"**{sum(stage_times.values()) / 60:.1f}**"])
  probe = "not measured" if probe_tflops is None else f"{probe_tflops:.3f} TFLOP/s"
  lines = ["## Wall time and machine", "", f"Matmul probe of this machine: {probe}."]
  whole = stage_times.get("whole job (wall)")
  if whole is not None and probe_tflops:
    # Machines differ by more than 2x: the budget is held in minutes of a machine
    # whose probe reads REFERENCE_PROBE_TFLOPS (wall x probe / reference).
    lines.append(f"Whole job normalised to a {REFERENCE_PROBE_TFLOPS} TFLOP/s probe: "
                 f"{whole / 60 * probe_tflops / REFERENCE_PROBE_TFLOPS:.1f} minutes.")
  return lines + [""] + _table(["stage", "minutes"], rows)


def _commands_section(commands: Sequence[str], notes: Sequence[str] | None) -> list[str]:
  lines = ["## Commands", "", "```sh", *commands, "```", ""]
  if notes:
    lines += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
  return lines


# ----------------------------------------------------------------- entry --

def write_report(out_dir, *, paths: dict[str, dict[str, Any]],
                 captioning: dict[str, Any] | None, editing: dict[str, Any] | None,
                 stage_times: dict[str, float], probe_tflops: float | None,
                 commands: Sequence[str], extra_notes: Sequence[str] | None = None) -> pathlib.Path:
  """Writes out_dir/report.md (+ report.json, binding_curve.png, grid_<path>.png,
  results_<path>.jsonl); returns the report.md path."""
  if len({slug(n) for n in paths}) != len(paths):
    raise ValueError(f"path names {list(paths)} collide as file names")
  out_dir = pathlib.Path(out_dir)
  out_dir.mkdir(parents=True, exist_ok=True)
  _plot_curve(out_dir, paths)
  lines = ["# Shapes benchmark", ""]
  lines += _category_section(paths)
  lines += _plan_section(paths)
  second = _second_reader_summaries(paths)
  lines += _second_reader_section(second)
  lines += _curve_section(paths)
  lines += _accuracy_section(
      "Captioning", captioning,
      "Share of held-out scenes whose greedy caption names every object with its colour, "
      "and nothing else [95% Wilson interval].")
  lines += _accuracy_section(
      "Editing", editing,
      "Share of held-out edits whose result shows the instruction carried out and every "
      "other object kept in place [95% Wilson interval]; per operation on the right.")
  lines += _grids_section(out_dir, paths)
  lines += _machine_section(stage_times, probe_tflops)
  lines += _commands_section(commands, extra_notes)
  report = out_dir / "report.md"
  report.write_text("\n".join(lines))
  _write_json(out_dir, paths, second, captioning, editing, stage_times, probe_tflops, commands,
              extra_notes)
  return report


def _write_json(out_dir: pathlib.Path, paths, second, captioning, editing, stage_times,
                probe_tflops, commands, notes) -> None:
  """report.json holds the numbers; per-prompt verdicts go to results_<path>.jsonl."""
  for name, p in paths.items():
    with open(out_dir / f"results_{slug(name)}.jsonl", "w") as f:
      f.writelines(json.dumps(r, default=_jsonable) + "\n" for r in p["results"])
  doc = {"paths": {name: p["summary"] for name, p in paths.items()},
         "second_reader": second,
         "captioning": _as_named(captioning), "editing": _as_named(editing),
         "stage_seconds": dict(stage_times),
         "stage_minutes": {k: v / 60 for k, v in stage_times.items()},
         "probe_tflops": probe_tflops, "commands": list(commands), "notes": list(notes or [])}
  (out_dir / "report.json").write_text(json.dumps(doc, indent=1, default=_jsonable))


def _jsonable(value: Any) -> Any:
  """numpy scalars and arrays, as a caller's results may hold them."""
  if isinstance(value, np.generic):
    return value.item()
  if isinstance(value, np.ndarray):
    return value.tolist()
  raise TypeError(f"not JSON serialisable: {type(value).__name__}")
