"""Image -> caption accuracy of the unified transformer on held-out shapes scenes.

A caption *matches* its scene when the caption parser reads it back to a spec
that names a colour for every item, whose (kind, colour) multiset is the
scene's, and that the true scene satisfies (the scorer's verdict: sizes and
relations, when stated). A true but partial caption ("a red circle" for a red
circle and a blue star) does not match, nor does "a blue star and a blue star".

    evaluator = CaptionMatch(task, num_scenes=50)    # yields eval/caption/match
    caption_accuracy(ar_stage, scene_codes(codes_fn, scenes), scenes)  # on a loaded run root
"""

from __future__ import annotations

import collections
from collections.abc import Iterator, Sequence

import jax
import numpy as np

from unified_mm.data.shapes.captions import parse_caption
from unified_mm.data.shapes.render import render
from unified_mm.data.shapes.scene import Scene, scene_for_index
from unified_mm.data.shapes.scorer import multiset, score


def caption_matches(text: str, scene: Scene) -> bool:
  try:
    spec = parse_caption(text)
  except ValueError:
    return False
  stated = collections.Counter()
  for item in spec.items:
    stated[(item.kind, item.colour)] += item.count
  # The multiset pins kinds, colours and counts ("a blue star and a blue star"
  # is not a blue star and a green triangle); the scorer checks sizes and relations.
  return (all(item.colour for item in spec.items) and stated == multiset(scene)
          and score(spec, scene)["correct"])


def held_out_scenes(seed: int, num_scenes: int, max_objects: int = 2) -> list[Scene]:
  """The single- and two-object scenes captioning is graded on."""
  return [scene_for_index(seed, i, min_objects=1, max_objects=max_objects)
          for i in range(num_scenes)]


def scene_codes(codes_fn, scenes: Sequence[Scene]) -> np.ndarray:
  """[N, h, w] visual tokens of the rendered scenes (`codes_fn`: uint8 images -> ids)."""
  return np.asarray(codes_fn(np.stack([render(s) for s in scenes])))


def caption_accuracy(ar_stage, codes: np.ndarray, scenes: Sequence[Scene], *,
                     batch_size: int = 50) -> tuple[float, list[str]]:
  """(share of matching captions, the captions) for `scenes` given as their codes."""
  from unified_mm.generate.pipeline import caption_codes  # noqa: PLC0415
  texts: list[str] = []
  for start in range(0, len(scenes), batch_size):
    texts += caption_codes(ar_stage, codes[start:start + batch_size], jax.random.key(0))
  hits = [caption_matches(t, s) for t, s in zip(texts, scenes)]
  return float(np.mean(hits)), texts


class CaptionMatch:
  """Evaluator of the `ar` stage: greedy captions of held-out scenes of 1-2 objects."""

  name = "caption"

  def __init__(self, task, *, num_scenes: int, seed: int):
    self.task = task
    self.scenes = held_out_scenes(seed, num_scenes)
    self.codes = scene_codes(task.codes_fn, self.scenes)  # the tokenizer is frozen: once

  def run(self, model) -> Iterator[tuple[str, float]]:
    from unified_mm.models.transformer.loader import ArStage  # noqa: PLC0415
    t = self.task
    stage = ArStage(model, t.config, t.vocab, t.tokenizer)
    accuracy, _ = caption_accuracy(stage, self.codes, self.scenes)
    yield "match", accuracy


def main(argv: list[str] | None = None) -> int:
  """Captions fresh scenes of 1-2 objects through the real `umm caption` command.

      python -m unified_mm.eval.caption_eval --workdir ROOT --out DIR [--num 20] [--seed 20011]

  writes DIR/scene_NN.png, runs `umm caption --workdir ROOT` on them and prints
  one line per image (OK / --, the true objects, the caption) and a JSON summary.
  """
  import argparse  # noqa: PLC0415
  import json  # noqa: PLC0415
  import pathlib  # noqa: PLC0415
  import subprocess  # noqa: PLC0415
  import sys  # noqa: PLC0415

  from PIL import Image  # noqa: PLC0415
  parser = argparse.ArgumentParser(description=main.__doc__.split("\n\n")[0])
  parser.add_argument("--workdir", required=True, help="run root holding tokenizer/ and ar/")
  parser.add_argument("--out", required=True, help="directory for the scene PNGs")
  parser.add_argument("--num", type=int, default=20)
  parser.add_argument("--seed", type=int, default=20_011)
  args = parser.parse_args(argv)
  out = pathlib.Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  scenes = {}
  for i, scene in enumerate(held_out_scenes(args.seed, args.num)):
    path = out / f"scene_{i:02d}.png"
    Image.fromarray(render(scene)).save(path)
    scenes[str(path)] = scene
  result = subprocess.run([sys.executable, "-m", "unified_mm.cli.main", "caption", "--workdir",
                           args.workdir, *scenes], capture_output=True, text=True, check=True)
  hits = 0
  for line in result.stdout.strip().splitlines():
    path, text = line.split("\t", 1)
    ok = caption_matches(text, scenes[path])
    hits += ok
    objects = [(o.colour, o.kind) for o in scenes[path].objects]
    print("OK" if ok else "--", objects, "|", text)
  print(json.dumps({"workdir": args.workdir, "images": len(scenes), "match": hits,
                    "share": hits / max(len(scenes), 1)}))
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
