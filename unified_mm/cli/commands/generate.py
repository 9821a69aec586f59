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

Inputs are checked before anything loads, each failure one line (exit 2): no
prompt, a prompt file that is missing, empty or not UTF-8, an --init-image PIL
cannot read, an --out that cannot be written, a run root missing a stage. An
--init-image of another size or mode is converted and resized, with a note; a
long prompt, unknown words or an empty prompt (`--prompt ""`: an unconditional
sample) are drawn, with a note (generate/prompt_notes.py).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

from unified_mm.cli.main import UsageError

HELP = "Generate images from a prompt with a trained run root (tokenizer/, ar/, renderer/)."

# A note quotes at most this much of a prompt (a prompt file may hold long ones).
QUOTED_CHARS = 60


def positive_int(text: str) -> int:
  """argparse type: an int >= 1 (a zero batch or count has nothing to make)."""
  import argparse  # noqa: PLC0415
  try:
    value = int(text)
  except ValueError:
    raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
  if value < 1:
    raise argparse.ArgumentTypeError(f"{value} is not >= 1")
  return value


def add_arguments(parser) -> None:
  parser.add_argument("--workdir", required=True, help="run root holding tokenizer/, ar/, renderer/")
  parser.add_argument("--prompt", default=None,
                      help="text prompt (or edit instruction); an empty one draws unconditionally")
  parser.add_argument("--prompt-file", default="", help="one prompt per line (UTF-8)")
  parser.add_argument("--out", required=True, help="PNG file (or a directory with --prompt-file)")
  parser.add_argument("--num", type=positive_int, default=1, help="samples per prompt")
  parser.add_argument("--seed", type=int, default=0)
  # The transformer's sampling defaults to its preset's `sample` (what `umm demo` and
  # `umm eval` measure); these flags override it.
  parser.add_argument("--cfg", type=float, default=None,
                      help="transformer CFG scale on the codes (1: off)")
  parser.add_argument("--temperature", type=float, default=None)
  parser.add_argument("--top-k", type=int, default=None)
  parser.add_argument("--plan-cfg", type=float, default=None, help="CFG scale of the plan")
  parser.add_argument("--plan-temperature", type=float, default=None)
  parser.add_argument("--plan-gap", type=int, default=None,
                      help="free bins kept between planned boxes (-1: boxes may overlap)")
  parser.add_argument("--plan-min-box", type=int, default=None,
                      help="with a plan gap: the smallest planned box side, in bins")
  parser.add_argument("--plan-fit", action=argparse.BooleanOptionalAction, default=None,
                      help="with a plan gap: each box holds the object its label names "
                           "(shapes-world labels), while one fits")
  parser.add_argument("--steps", type=positive_int, default=None, help="renderer ODE steps")
  parser.add_argument("--chunks", type=positive_int, default=None,
                      help="renderer stripes K (1: whole image)")
  parser.add_argument("--render-cfg", type=float, default=None, help="renderer CFG scale")
  parser.add_argument("--method", default=None, choices=("euler", "heun"))
  parser.add_argument("--start", type=float, default=None,
                      help="renderer ODE start time (< 1: refine the noised plan latent)")
  parser.add_argument("--preview", action="store_true", help="skip the renderer")
  parser.add_argument("--init-image", default="",
                      help="image to edit in context (made RGB at the model's size)")
  parser.add_argument("--batch-size", type=positive_int, default=8)
  parser.add_argument("--show-plan", action="store_true", help="print the written plans")
  parser.add_argument("--no-plan", action="store_true", help="draw without writing a plan")
  add_mesh_argument(parser)


MESH_HELP = ("restore every stage sharded as in training: `config` (each stage's own mesh "
             "and rules over all devices) or axis sizes, e.g. fsdp=4,tensor=2 "
             "(default: replicated on one device)")


def add_mesh_argument(parser) -> None:
  parser.add_argument("--mesh", default="", help=MESH_HELP)


def mesh_arg(args):
  """The parsed `--mesh` (None: one device, as always); a malformed one is exit 2."""
  from unified_mm.parallel.placement import parse_mesh  # noqa: PLC0415
  try:
    return parse_mesh(getattr(args, "mesh", ""))
  except ValueError as e:
    raise UsageError(str(e)) from None


def quoted(prompt: str) -> str:
  """repr of the prompt, cut short: a note line stays one readable line."""
  if len(prompt) <= QUOTED_CHARS:
    return repr(prompt)
  return f"{prompt[:QUOTED_CHARS]!r}... ({len(prompt):,} characters)"


def _utf8(text: str, what: str) -> str:
  # argv that is not UTF-8 arrives with surrogate escapes, which fail only much later.
  try:
    text.encode("utf-8")
  except UnicodeEncodeError:
    raise UsageError(f"{what} is not UTF-8 text; give it in UTF-8") from None
  return text


def read_prompts(path: str) -> list[str]:
  """The non-blank lines of a UTF-8 file (a leading byte-order mark is dropped)."""
  try:
    data = pathlib.Path(path).read_bytes()
  except OSError as e:
    raise UsageError(f"--prompt-file {path}: {e.strerror or e}") from None
  try:
    text = data.decode("utf-8-sig")
  except UnicodeDecodeError as e:
    line = data[:e.start].count(b"\n") + 1
    raise UsageError(f"--prompt-file {path}: not UTF-8 text (byte 0x{data[e.start]:02x} on line "
                     f"{line}); save it as UTF-8, one prompt per line") from None
  prompts = [p.strip() for p in text.splitlines() if p.strip()]
  if not prompts:
    raise UsageError(f"--prompt-file {path}: no prompts in it (one per line)")
  return prompts


def _prompts(args) -> list[str]:
  if args.prompt is not None and args.prompt_file:
    raise UsageError("give --prompt or --prompt-file, not both")
  if args.prompt_file:
    return read_prompts(args.prompt_file)
  if args.prompt is None:
    raise UsageError("no prompt: give --prompt TEXT (or --prompt-file FILE, one prompt per line)")
  # `--prompt ""` is asked for, not forgotten: an unconditional sample (prompt_notes says so).
  return [_utf8(args.prompt, "--prompt")]


def _jobs(args, prompts: list[str]) -> list[tuple[str, pathlib.Path]]:
  """(prompt, output path) per image."""
  out = pathlib.Path(args.out)
  if args.prompt_file:
    if out.exists() and not out.is_dir():
      raise UsageError(f"--out {out}: a file; with --prompt-file, --out names a directory")
    return [(p, out / f"{i:03d}_{j}.png" if args.num > 1 else out / f"{i:03d}.png")
            for i, p in enumerate(prompts) for j in range(args.num)]
  from PIL import Image  # noqa: PLC0415
  if out.is_dir():
    raise UsageError(f"--out {out}: a directory; give a file such as {out / 'image.png'} "
                     "(a directory is for --prompt-file)")
  if out.suffix.lower() not in Image.registered_extensions():
    raise UsageError(f"--out {out}: give a file name ending in .png (or another image type)")
  return [(prompts[0], out if j == 0 else out.with_name(f"{out.stem}_{j}{out.suffix}"))
          for j in range(args.num)]


def _make_dirs(jobs: list[tuple[str, pathlib.Path]]) -> None:
  for directory in dict.fromkeys(path.parent for _, path in jobs):
    try:
      directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
      raise UsageError(f"--out: cannot create {directory}: {e.strerror or e}") from None


def open_image(path: str, what: str):
  """The PIL image at `path`, read in full now, so a bad file fails before the models load."""
  from PIL import Image, UnidentifiedImageError  # noqa: PLC0415
  try:
    with Image.open(path) as image:
      image.load()
  except UnidentifiedImageError:
    raise UsageError(f"{what} {path}: not an image file PIL can read") from None
  except OSError as e:
    raise UsageError(f"{what} {path}: {e.strerror or e}") from None
  return image


def fit_image(image, size: int):
  """uint8 [size, size, 3] from any PIL image, and what was changed (for a note):
  other modes become RGB, transparency drawn over the shapes world's grey
  background, and another size is resized (squashed, not cropped: every object
  stays in the picture)."""
  import numpy as np  # noqa: PLC0415
  from PIL import Image  # noqa: PLC0415

  from unified_mm.data.shapes.vocab import BACKGROUND  # noqa: PLC0415
  changes = []
  if image.mode != "RGB":
    changes.append(f"{image.mode} converted to RGB")
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
      rgba = image.convert("RGBA")
      image = Image.alpha_composite(Image.new("RGBA", rgba.size, (*BACKGROUND, 255)), rgba)
      changes[-1] += " (transparency over the grey background)"
    image = image.convert("RGB")
  if image.size != (size, size):
    w, h = image.size
    changes.append(f"{w}x{h} resized to {size}x{size}" + (" (aspect not kept)" if w != h else ""))
    image = image.resize((size, size), Image.Resampling.LANCZOS)
  return np.asarray(image, np.uint8), changes


def run(args) -> int:
  prompts = _prompts(args)
  jobs = _jobs(args, prompts)
  mesh = mesh_arg(args)
  init_image = open_image(args.init_image, "--init-image") if args.init_image else None

  from unified_mm.generate.stages import load_stages, missing_stage  # noqa: PLC0415
  problem = missing_stage(args.workdir, ("tokenizer", "ar") + ("renderer",) * (not args.preview))
  if problem:
    raise UsageError(problem)
  _make_dirs(jobs)

  import numpy as np  # noqa: PLC0415
  from PIL import Image  # noqa: PLC0415

  from unified_mm.data.layout import layout_text  # noqa: PLC0415
  from unified_mm.generate.pipeline import generate  # noqa: PLC0415
  from unified_mm.generate.prompt_notes import prompt_notes  # noqa: PLC0415

  stages = load_stages(args.workdir, need_renderer=not args.preview, mesh=mesh)
  planned = bool(stages.ar.vocab.layout_bins) and not args.no_plan and not args.init_image
  # The text a caption->image document had room for beside the codes (BOS BOI .. EOI).
  grid = stages.frontend.code_grid
  edit = init_image is not None
  max_tokens = 0 if edit else int(stages.ar.config.data.get("seq_len", 0)) - grid * grid - 3
  notes = {p: prompt_notes(p, stages.ar.text, max_tokens=max_tokens, edit=edit)
           for p in dict.fromkeys(p for p, _ in jobs)}
  for prompt, lines in notes.items():
    for line in lines:
      print(f"note: {quoted(prompt)}: {line}", file=sys.stderr)
  ar_sample = dict(cfg_scale=3.0, temperature=1.0, top_k=0, plan_cfg=1.0, plan_temperature=1.0,
                   plan_gap=-1, plan_min_box=1, plan_fit=False)
  ar_sample.update(stages.ar.config.get("sample", {}))
  for key, value in (("cfg_scale", args.cfg), ("temperature", args.temperature),
                     ("top_k", args.top_k), ("plan_cfg", args.plan_cfg),
                     ("plan_temperature", args.plan_temperature), ("plan_gap", args.plan_gap),
                     ("plan_min_box", args.plan_min_box), ("plan_fit", args.plan_fit)):
    if value is not None:
      ar_sample[key] = value
  sample = dict(stages.renderer_task.config.sample) if stages.renderer_task else {}
  for key, value in (("steps", args.steps), ("chunks", args.chunks),
                     ("cfg_scale", args.render_cfg), ("method", args.method),
                     ("start", args.start)):
    if value is not None:
      sample[key] = value
  init = None
  if init_image is not None:
    init, changes = fit_image(init_image, stages.frontend.image_size)
    init = init[None]
    if changes:
      print(f"note: --init-image {args.init_image}: {'; '.join(changes)}", file=sys.stderr)
  b = args.batch_size
  times = []
  for start in range(0, len(jobs), b):
    chunk = jobs[start:start + b]
    rows = [p for p, _ in chunk] + [chunk[-1][0]] * (b - len(chunk))  # one compiled shape
    t0 = time.perf_counter()
    out = generate(
        stages, rows, seed=args.seed + start, cfg_scale=float(ar_sample["cfg_scale"]),
        temperature=float(ar_sample["temperature"]), top_k=int(ar_sample["top_k"]),
        plan_cfg=float(ar_sample["plan_cfg"]),
        plan_temperature=float(ar_sample["plan_temperature"]),
        plan_gap=int(ar_sample["plan_gap"]), plan_min_box=int(ar_sample["plan_min_box"]),
        plan_fit=bool(ar_sample["plan_fit"]),
        preview=args.preview,
        steps=int(sample.get("steps", 8)),
        chunks=int(sample.get("chunks", 1)), render_cfg=float(sample.get("cfg_scale", 1.0)),
        method=sample.get("method", "heun"), start=sample.get("start"),
        init_images=None if init is None else np.repeat(init, b, axis=0), planned=planned)
    times.append((time.perf_counter() - t0, len(chunk)))
    for i, ((prompt, path), image) in enumerate(zip(chunk, out.images)):
      Image.fromarray(np.asarray(image)).save(path)
      if args.show_plan and out.plans is not None:
        print(f"plan for {quoted(prompt)} ({path.name}):\n{layout_text(out.plans[i])}",
              file=sys.stderr)
  warm = times[1:] or times
  rate = sum(n for _, n in warm) / sum(t for t, _ in warm)
  print(json.dumps({"images": len(jobs), "renderer": not args.preview, "planned": planned,
                    "notes": {p: n for p, n in notes.items() if n}, "batch_size": b,
                    "images_per_s": round(rate, 3), "first_batch_s": round(times[0][0], 2),
                    "out": str(args.out)}), file=sys.stdout)
  return 0
