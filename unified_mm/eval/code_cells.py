"""Which image codes the transformer has learned: its teacher-forced loss on each
code of held-out scenes, split into cells of pure background and cells an object
touches.

    python -m unified_mm.eval.code_cells --workdir ROOT [--scenes 100] [--seed 10007]

Each scene becomes the plain document `BOS description BOI codes EOI EOS`
(`data.sequences.caption_to_image`, as the ar stage trains it; the full
description names every object, so nothing in the image is left to guess but the
layout), and the transformer scores the scene's true codes, its logits restricted
to the code ids as the sampler restricts them. Per kind of cell it prints the
cells, the distinct codes the tokenizer wrote there, their marginal entropy (in
nats: what a model that knows only the kind of cell pays), the transformer's
mean loss and its top-1 accuracy. The plain path (caption -> codes -> preview)
draws an object only as well as the object cells are learned
(docs/quality.md, "The plain path").
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from unified_mm.data.sequences import caption_to_image

CELL_KINDS = ("background", "object")


def background_cells(images: np.ndarray, grid: tuple[int, int],
                     background: Sequence[int]) -> np.ndarray:
  """uint8 [N, H, W, 3] -> bool [N, gh, gw]: cells whose every pixel is `background`."""
  n, h, w, _ = images.shape
  gh, gw = grid
  plain = np.all(images == np.asarray(background, images.dtype), axis=-1)
  return plain.reshape(n, gh, h // gh, gw, w // gw).all(axis=(2, 4))


@functools.partial(jax.jit, static_argnames=("start", "stop"))
def _code_logprobs(model, tokens, positions, segment_ids, *, start: int, stop: int):
  """log p over the code ids [start, stop) at every position: [B, L, stop - start]."""
  logits = model(tokens, positions, segment_ids)[..., start:stop]
  return jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)


def code_losses(model, vocab, texts: Sequence[np.ndarray], codes: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
  """Teacher-forced loss and top-1 hit of each code: texts (id arrays), codes [N, g, g]
  -> (nll float [N, g*g], hit bool [N, g*g]); logits restricted to the code ids."""
  start, stop = vocab.image_range
  flat = codes.reshape(len(codes), -1)
  hw = flat.shape[1]
  rows = [np.concatenate([ids for ids, _ in caption_to_image(vocab, t, c)])
          for t, c in zip(texts, flat)]
  length = max(len(r) for r in rows)
  tokens = np.full((len(rows), length), vocab.pad, np.int32)
  segments = np.zeros((len(rows), length), np.int32)
  for i, r in enumerate(rows):
    tokens[i, :len(r)], segments[i, :len(r)] = r, 1  # padding after: never attended
  positions = np.broadcast_to(np.arange(length, dtype=np.int32), tokens.shape)
  logp = np.asarray(_code_logprobs(model, jnp.asarray(tokens), jnp.asarray(positions),
                                   jnp.asarray(segments), start=start, stop=stop))
  # The code at BOI + 1 + k is predicted at BOI + k.
  boi = np.array([len(t) + 1 for t in texts])
  at = boi[:, None] + np.arange(hw)[None]
  step = logp[np.arange(len(rows))[:, None], at]  # [N, hw, codes]
  nll = -np.take_along_axis(step, flat[..., None], axis=-1)[..., 0]
  return nll, step.argmax(-1) == flat


def cell_report(nll: np.ndarray, hit: np.ndarray, codes: np.ndarray,
                is_background: np.ndarray) -> dict[str, dict[str, float]]:
  """Per kind of cell: cells, distinct codes, marginal entropy, mean loss, accuracy."""
  codes, is_background = codes.reshape(nll.shape), is_background.reshape(nll.shape)
  out = {}
  for kind, where in zip(CELL_KINDS, (is_background, ~is_background)):
    _, counts = np.unique(codes[where], return_counts=True)
    p = counts / max(counts.sum(), 1)
    out[kind] = {"cells": int(where.sum()), "distinct_codes": int(len(counts)),
                 "marginal_entropy": float(-(p * np.log(p)).sum()),
                 "loss": float(nll[where].mean()) if where.any() else float("nan"),
                 "accuracy": float(hit[where].mean()) if where.any() else float("nan")}
  return out


def main(argv: list[str] | None = None) -> int:
  """Prints the transformer's loss on background and object cells of held-out scenes."""
  import argparse  # noqa: PLC0415
  import json  # noqa: PLC0415
  import pathlib  # noqa: PLC0415

  from unified_mm.data.shapes import captions  # noqa: PLC0415
  from unified_mm.data.shapes.render import render  # noqa: PLC0415
  from unified_mm.eval.caption_eval import held_out_scenes  # noqa: PLC0415
  from unified_mm.generate.stages import transformer_dir  # noqa: PLC0415
  from unified_mm.models.image_tokenizer.codes import TokenizerCodes  # noqa: PLC0415
  from unified_mm.models.transformer.loader import load_ar  # noqa: PLC0415
  parser = argparse.ArgumentParser(description=main.__doc__)
  parser.add_argument("--workdir", required=True, help="run root holding tokenizer/ and ar/")
  parser.add_argument("--scenes", type=int, default=100)
  parser.add_argument("--seed", type=int, default=10_007, help="scene seed (held out)")
  parser.add_argument("--max-objects", type=int, default=4)
  parser.add_argument("--batch", type=int, default=50)
  args = parser.parse_args(argv)
  # The codes the `ar` stage trained on: its data pipeline's codes_fn.
  codes_fn = TokenizerCodes(pathlib.Path(args.workdir) / "tokenizer")
  ar = load_ar(transformer_dir(args.workdir), codes_fn.codebook_size)
  scenes = held_out_scenes(args.seed, args.scenes, args.max_objects)
  images = np.stack([render(s) for s in scenes])
  codes = codes_fn(images)
  texts = [ar.text.encode(captions.caption(s, np.random.default_rng([args.seed, i]),
                                           style="full"))
           for i, s in enumerate(scenes)]
  parts = [code_losses(ar.model, ar.vocab, texts[i:i + args.batch], codes[i:i + args.batch])
           for i in range(0, len(scenes), args.batch)]
  nll, hit = (np.concatenate(p) for p in zip(*parts))
  report = cell_report(nll, hit, codes,
                       background_cells(images, codes.shape[1:], scenes[0].background))
  print(json.dumps({"workdir": args.workdir, "scenes": len(scenes), "codebook":
                    ar.vocab.image_codes, **report}))
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
