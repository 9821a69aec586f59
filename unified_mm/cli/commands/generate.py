"""`umm generate --workdir ROOT --prompt "..." --out FILE.png [options]`

prompt -> SentencePiece -> unified transformer (its written plan under the
grammar mask, then exactly the grid's count of visual tokens, logit-masked,
CFG) -> renderer (reads codes, prompt and plan) -> tokenizer latent decoder -> PNG.

    --show-plan      print each image's plan (label and box per object) to stderr
    --no-plan        the plain path: codes straight after the caption

    --num N          N samples of the prompt (FILE.png, FILE_1.png, ...)
    --prompt-file F  one prompt per line; writes OUT/000.png, ... (OUT a directory)
    --preview        decode the visual tokens directly (no renderer)
    --init-image P   in-context edit: --prompt is the instruction applied to P
    --batch-size B   images per generation call (default 8)

Prints one JSON line: images written, and images/s after the first batch
(which carries the compilation).
"""

from __future__ import annotations

import json
import pathlib
import sys
import time

HELP = "Generate images from a prompt with a trained run root (tokenizer/, ar/, renderer/)."


def add_arguments(parser) -> None:
  parser.add_argument("--workdir", required=True, help="run root holding tokenizer/, ar/, renderer/")
  parser.add_argument("--prompt", default="", help="text prompt (or edit instruction)")
  parser.add_argument("--prompt-file", default="", help="one prompt per line")
  parser.add_argument("--out", required=True, help="PNG file (or a directory with --prompt-file)")
  parser.add_argument("--num", type=int, default=1, help="samples per prompt")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--cfg", type=float, default=3.0, help="transformer CFG scale (1: off)")
  parser.add_argument("--temperature", type=float, default=1.0)
  parser.add_argument("--top-k", type=int, default=0)
  parser.add_argument("--steps", type=int, default=None, help="renderer ODE steps")
  parser.add_argument("--chunks", type=int, default=None, help="renderer stripes K (1: whole image)")
  parser.add_argument("--render-cfg", type=float, default=None, help="renderer CFG scale")
  parser.add_argument("--method", default=None, choices=("euler", "heun"))
  parser.add_argument("--start", type=float, default=None,
                      help="renderer ODE start time (< 1: refine the noised plan latent)")
  parser.add_argument("--preview", action="store_true", help="skip the renderer")
  parser.add_argument("--init-image", default="", help="PNG to edit in context")
  parser.add_argument("--batch-size", type=int, default=8)
  parser.add_argument("--show-plan", action="store_true", help="print the written plans")
  parser.add_argument("--no-plan", action="store_true", help="draw without writing a plan")


def _jobs(args) -> list[tuple[str, pathlib.Path]]:
  """(prompt, output path) per image."""
  out = pathlib.Path(args.out)
  if args.prompt_file:
    prompts = [p.strip() for p in pathlib.Path(args.prompt_file).read_text().splitlines() if p.strip()]
    out.mkdir(parents=True, exist_ok=True)
    return [(p, out / f"{i:03d}_{j}.png" if args.num > 1 else out / f"{i:03d}.png")
            for i, p in enumerate(prompts) for j in range(args.num)]
  if not args.prompt:
    raise SystemExit("umm generate: give --prompt or --prompt-file")
  out.parent.mkdir(parents=True, exist_ok=True)
  return [(args.prompt, out if j == 0 else out.with_name(f"{out.stem}_{j}{out.suffix}"))
          for j in range(args.num)]


def run(args) -> int:
  import numpy as np
  from PIL import Image

  from unified_mm.generate.pipeline import generate
  from unified_mm.generate.stages import load_stages

  from unified_mm.data.layout import layout_text
  from unified_mm.generate.prompt_notes import prompt_notes

  jobs = _jobs(args)
  stages = load_stages(args.workdir, need_renderer=not args.preview)
  planned = bool(stages.ar.vocab.layout_bins) and not args.no_plan and not args.init_image
  notes = {p: prompt_notes(p, stages.ar.text) for p in dict.fromkeys(p for p, _ in jobs)}
  for prompt, lines in notes.items():
    for line in lines:
      print(f"note: {prompt!r}: {line}", file=sys.stderr)
  sample = dict(stages.renderer_task.config.sample) if stages.renderer_task else {}
  for key, value in (("steps", args.steps), ("chunks", args.chunks),
                     ("cfg_scale", args.render_cfg), ("method", args.method),
                     ("start", args.start)):
    if value is not None:
      sample[key] = value
  init = None
  if args.init_image:
    init = np.asarray(Image.open(args.init_image).convert("RGB"))[None]
  b = args.batch_size
  times = []
  for start in range(0, len(jobs), b):
    chunk = jobs[start:start + b]
    prompts = [p for p, _ in chunk] + [chunk[-1][0]] * (b - len(chunk))  # one compiled shape
    t0 = time.perf_counter()
    out = generate(
        stages, prompts, seed=args.seed + start, cfg_scale=args.cfg, temperature=args.temperature,
        top_k=args.top_k, preview=args.preview, steps=int(sample.get("steps", 8)),
        chunks=int(sample.get("chunks", 1)), render_cfg=float(sample.get("cfg_scale", 1.0)),
        method=sample.get("method", "heun"), start=sample.get("start"),
        init_images=None if init is None else np.repeat(init, b, axis=0), planned=planned)
    times.append((time.perf_counter() - t0, len(chunk)))
    for i, ((prompt, path), image) in enumerate(zip(chunk, out.images)):
      Image.fromarray(np.asarray(image)).save(path)
      if args.show_plan and out.plans is not None:
        print(f"plan for {prompt!r} ({path.name}):\n{layout_text(out.plans[i])}", file=sys.stderr)
  warm = times[1:] or times
  rate = sum(n for _, n in warm) / sum(t for t, _ in warm)
  print(json.dumps({"images": len(jobs), "renderer": not args.preview, "planned": planned,
                    "notes": {p: n for p, n in notes.items() if n}, "batch_size": b,
                    "images_per_s": round(rate, 3), "first_batch_s": round(times[0][0], 2),
                    "out": str(args.out)}), file=sys.stdout)
  return 0
