"""`umm data {preview,tokenizer,build,tfds,bench}`: look at, prepare and time the data.

    umm data preview   --out grid.png [--n 16 --seed 0 --edits] [--source wds --path 'shards/*.tar']
    umm data tokenizer --out DIR [--corpus FILE | --source wds --path 'shards/*.tar'] [--vocab-size 512]
    umm data tfds      --images DIR --out DATA_DIR          (NAME.png + NAME.txt -> TFDS ArrayRecord)
    umm data build     --source {shapes,tfds,wds,array_record} [--path P] --out FILE.array_record
                       [--limit N] [--codes stand_in | --codes ROOT/tokenizer]
    umm data bench     [--batches 30 --batch-size 8] [--config.data.num_workers=2 ...]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

HELP = "Preview, tokenize, build and benchmark training data."


def add_arguments(parser) -> None:
  sub = parser.add_subparsers(dest="action", required=True)
  p = sub.add_parser("preview", help="PNG grid of records with their captions")
  p.add_argument("--out", required=True)
  p.add_argument("--n", type=int, default=16)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--edits", action="store_true", help="show each scene next to its edit")
  p.add_argument("--documents", action="store_true",
                 help="show packed training documents, images drawn from their (stand-in) codes")
  _source_args(p)
  p = sub.add_parser("tokenizer", help="train the SentencePiece text tokenizer")
  p.add_argument("--out", required=True, help="directory for text_tokenizer.model")
  p.add_argument("--corpus", default="", help="UTF-8 text, one sentence a line (default: shapes)")
  p.add_argument("--vocab-size", type=int, default=512)
  p.add_argument("--records", type=int, default=1500, help="shapes records in the default corpus")
  p.add_argument("--fold-case", action=argparse.BooleanOptionalAction, default=None,
                 help="read text case-folded and single-spaced (SentencePiece's nmt_nfkc_cf); "
                      "default: on for the shapes corpus, which is written that way")
  _source_args(p)  # --source wds|tfds|array_record --path P: the captions of those records
  p = sub.add_parser("tfds", help="build a TFDS data set from NAME.png + NAME.txt files")
  p.add_argument("--images", required=True)
  p.add_argument("--out", required=True, help="TFDS data_dir")
  p = sub.add_parser("build", help="materialise a source to one ArrayRecord file")
  p.add_argument("--out", required=True)
  p.add_argument("--limit", type=int, default=None, help="records (required for shapes)")
  p.add_argument("--image-format", choices=("png", "raw"), default="png")
  p.add_argument("--codes", default="none",
                 help="also store pre-tokenised image codes: none, stand_in, or the "
                      "workdir of a trained image tokenizer (codes and the renderer's "
                      "latents, at the tokenizer's image size)")
  _source_args(p)
  p = sub.add_parser("bench", help="examples/s of the training pipeline")
  p.add_argument("--batches", type=int, default=30)
  p.add_argument("--warmup", type=int, default=3)
  p.add_argument("--batch-size", type=int, default=8)
  p.add_argument("--stage-config", default="",
                 help="time this stage's own input path instead (e.g. experiments/real.py:renderer; "
                      "--config.* overrides apply to it)")


def _source_args(p) -> None:
  p.add_argument("--source", default="shapes", choices=("shapes", "array_record", "tfds", "wds"))
  p.add_argument("--path", default="", help="files/globs (comma-separated) or a TFDS dir")
  p.add_argument("--image-size", type=int, default=64)
  p.add_argument("--max-objects", type=int, default=4)
  p.add_argument("--edit-turns", type=int, default=1)
  p.add_argument("--data-seed", type=int, default=0, help="shapes world seed")


def _data_config(args, overrides=()):
  from unified_mm.config.loading import apply_overrides  # noqa: PLC0415
  from unified_mm.data.config import default_data_config  # noqa: PLC0415
  kw = {}
  if hasattr(args, "source"):
    kw = dict(source=args.source, path=args.path, image_size=args.image_size,
              max_objects=args.max_objects, edit_turns=args.edit_turns, seed=args.data_seed)
  data = default_data_config(**kw)
  if overrides:
    import ml_collections  # noqa: PLC0415
    data = apply_overrides(ml_collections.ConfigDict({"data": data}), overrides).data
  return data


def _preview(args) -> int:
  import numpy as np  # noqa: PLC0415

  from unified_mm.data.decode import decode_image  # noqa: PLC0415
  from unified_mm.data.record_codec import edits_of  # noqa: PLC0415
  from unified_mm.data.shapes.preview import preview_grid  # noqa: PLC0415
  from unified_mm.data.sources.registry import make_source  # noqa: PLC0415
  data = _data_config(args)
  source = make_source(data)
  rng = np.random.default_rng(args.seed)
  indices = rng.choice(len(source), size=min(args.n, len(source)), replace=False)
  images, captions = [], []
  for i in indices:
    r = source[int(i)]
    try:
      image = decode_image(r["image"], data.image_size)
    except Exception as e:  # noqa: BLE001 (a preview shows bad records, it does not stop)
      image, r = np.zeros((data.image_size,) * 2 + (3,), np.uint8), {"caption": f"[{e}]"}
    images.append(image)
    captions.append(f"#{int(i)}: {r.get('caption') or r.get('error', '')}")
    if args.edits:
      for e in edits_of(r):
        images.append(decode_image(e["image"], data.image_size))
        captions.append(f"-> {e['instruction']}")
  preview_grid(images, captions, args.out, cols=4 if not args.edits else 2 * (1 + data.edit_turns))
  print(f"wrote {args.out}: {len(images)} images")
  return 0


def _preview_documents(args) -> int:
  """What the model is trained on: documents of the first batch, read back from ids."""
  import numpy as np  # noqa: PLC0415

  from unified_mm.data.packing import unpack_row  # noqa: PLC0415
  from unified_mm.data.pipeline import load_or_train_tokenizer, make_train_iterator  # noqa: PLC0415
  from unified_mm.data.sequences import parse  # noqa: PLC0415
  from unified_mm.data.shapes.preview import preview_grid  # noqa: PLC0415
  from unified_mm.data.stand_in_codes import StandInCodes  # noqa: PLC0415
  from unified_mm.data.vocab import Vocab  # noqa: PLC0415
  data = _data_config(args)
  data.seed = args.seed
  tok = load_or_train_tokenizer(data)
  codes_fn = StandInCodes(data.stand_in_grid, data.stand_in_levels)
  vocab = Vocab(text_size=tok.vocab_size, image_codes=codes_fn.num_codes)
  images, captions = [], []
  with make_train_iterator(data, vocab, codes_fn, 0, 1, 4, tokenizer=tok) as it:
    while len(images) < args.n:
      batch = next(it)
      for r in range(len(batch["tokens"])):
        for doc in unpack_row({k: v[r] for k, v in batch.items()}):
          ids = np.append(doc["tokens"], doc["targets"][-1])
          text = ""
          for kind, part in parse(vocab, ids):
            if kind == "text":
              text += tok.decode(part)
              continue
            grid = codes_fn.to_image(part.reshape(1, data.stand_in_grid, -1), data.image_size)
            images.append(grid[0])
            captions.append(f"row {r}, doc: {text!r}" if text else f"row {r}, doc: (no text yet)")
            text = ""
          if text:  # image -> caption: the text follows the image
            captions[-1] += f" -> {text!r}"
  preview_grid(images[:args.n], captions[:args.n], args.out)
  print(f"wrote {args.out}: {min(len(images), args.n)} document images")
  return 0


def _tokenizer(args) -> int:
  from unified_mm.data.sources.shapes_source import shapes_corpus  # noqa: PLC0415
  from unified_mm.data.text_tokenizer import read_corpus, train_tokenizer  # noqa: PLC0415
  if args.corpus:
    corpus = read_corpus(args.corpus)
  elif args.source != "shapes":
    corpus = _source_captions(args)
  else:
    corpus = shapes_corpus(args.records)
  shapes = not args.corpus and args.source == "shapes"
  fold_case = shapes if args.fold_case is None else args.fold_case
  tok = train_tokenizer(corpus, args.vocab_size, fold_case=fold_case)
  path = tok.save(args.out)
  print(f"wrote {path}: {tok.vocab_size} pieces")
  return 0


def _source_captions(args) -> list[str]:
  """Every readable caption of the source's records (bad ones are the reader's to count)."""
  from unified_mm.data.sources.registry import make_source  # noqa: PLC0415
  source = make_source(_data_config(args))
  captions = [r["caption"] for r in (source[i] for i in range(len(source)))
              if isinstance(r.get("caption"), str) and r["caption"].strip()]
  print(f"{len(captions)} captions of {len(source)} records")
  return captions


def _build(args) -> int:
  from unified_mm.data.build import build_array_record  # noqa: PLC0415
  from unified_mm.data.sources.registry import make_source  # noqa: PLC0415
  data = _data_config(args)
  if args.source == "shapes" and args.limit is None:
    print("umm data build: the shapes source is endless; pass --limit N", file=sys.stderr)
    return 2
  codes_fn = None
  if args.codes == "stand_in":
    from unified_mm.data.stand_in_codes import StandInCodes  # noqa: PLC0415
    codes_fn = StandInCodes(data.stand_in_grid, data.stand_in_levels)
  encode_fn = None
  if args.codes not in ("none", "stand_in"):
    # The trained tokenizer's codes (the transformer's and renderer's visual tokens)
    # and its normalised latents (the renderer's target), at the tokenizer's own size.
    from unified_mm.models.renderer.latents import TrainedFrontend  # noqa: PLC0415
    frontend = TrainedFrontend(args.codes)
    data.image_size = frontend.image_size

    def encode_fn(images):
      z, ids = frontend.encode(images)
      return {"codes": ids, "latent": z}
  t = time.perf_counter()
  n = build_array_record(make_source(data), args.out, limit=args.limit,
                         image_format=args.image_format, codes_fn=codes_fn,
                         encode_fn=encode_fn, image_size=data.image_size, resize=data.resize)
  what = " with codes + latents" if encode_fn else " with codes" if codes_fn else ""
  print(f"wrote {args.out}: {n} records{what} in {time.perf_counter() - t:.1f}s")
  return 0


def _tfds(args) -> int:
  from unified_mm.data.sources.tfds_builder import build_tfds  # noqa: PLC0415
  path = build_tfds(args.images, args.out)
  print(f"built {path} (read it with --source tfds --path {path})")
  return 0


def _bench_stage(args) -> int:
  """Examples/s of a stage's `make_data` iterator: what its trainer would read."""
  from unified_mm.config.loading import load_config  # noqa: PLC0415
  from unified_mm.tasks import make_task  # noqa: PLC0415
  config = load_config(args.stage_config, args.overrides)
  task = make_task(config)
  t0 = time.perf_counter()
  it = task.make_data(0, 1, args.batch_size)
  try:
    for _ in range(args.warmup):
      next(it)
    stats = getattr(it, "stats", dict)
    start = stats().get("data/examples", 0)
    t1, c1 = time.perf_counter(), time.process_time()
    for _ in range(args.batches):
      next(it)
    dt, cpu = time.perf_counter() - t1, time.process_time() - c1
    examples = (stats().get("data/examples", 0) - start) or args.batches * args.batch_size
  finally:
    getattr(it, "close", lambda: None)()
  print(json.dumps({"stage": config.stage, "source": config.data.get("source", "shapes"),
                    "batch_size": args.batch_size, "batches": args.batches,
                    "startup_s": round(t1 - t0, 2), "examples_per_s": round(examples / dt, 2),
                    "examples_per_cpu_s": round(examples / max(cpu, 1e-9), 2)}))
  return 0


def _bench(args) -> int:
  if args.stage_config:
    return _bench_stage(args)
  from unified_mm.data.pipeline import load_or_train_tokenizer, make_train_iterator  # noqa: PLC0415
  from unified_mm.data.stand_in_codes import StandInCodes  # noqa: PLC0415
  from unified_mm.data.vocab import Vocab  # noqa: PLC0415
  data = _data_config(args, args.overrides)
  tok = load_or_train_tokenizer(data)
  codes_fn = StandInCodes(data.stand_in_grid, data.stand_in_levels)
  vocab = Vocab(text_size=tok.vocab_size, image_codes=codes_fn.num_codes)
  t0 = time.perf_counter()
  with make_train_iterator(data, vocab, codes_fn, 0, 1, args.batch_size, tokenizer=tok) as it:
    for _ in range(args.warmup):
      next(it)
    start = it.stats()
    t1, c1 = time.perf_counter(), time.process_time()
    used = 0
    for _ in range(args.batches):
      used += int((next(it)["segment_ids"] > 0).sum())
    dt, cpu = time.perf_counter() - t1, time.process_time() - c1
    end = it.stats()
  examples = end["data/examples"] - start["data/examples"]
  result = {"source": data.source, "num_workers": data.num_workers, "seq_len": data.seq_len,
            "batch_size": args.batch_size, "batches": args.batches,
            "startup_s": round(t1 - t0, 2), "examples_per_s": round(examples / dt, 1),
            # CPU seconds of this process only: with workers, most work is theirs.
            "examples_per_main_cpu_s": round(examples / max(cpu, 1e-9), 1),
            "rows_per_s": round(args.batches * args.batch_size / dt, 1),
            "tokens_per_s": round(used / dt), "fill": round(used / (args.batches * args.batch_size
                                                                     * data.seq_len), 3)}
  print(json.dumps(result))
  return 0


def run(args) -> int:
  if args.action != "bench" and args.overrides:
    print(f"umm data {args.action}: --config.* overrides apply to bench only", file=sys.stderr)
    return 2
  if args.action == "preview" and args.documents:
    return _preview_documents(args)
  return {"preview": _preview, "tokenizer": _tokenizer, "build": _build, "tfds": _tfds,
          "bench": _bench}[args.action](args)
