"""Generation: prompt -> visual tokens (AR) -> latent (renderer) -> pixels.

    stages = load_stages("runs/shapes")
    images = generate(stages, ["a red circle left of a blue square"], seed=0)

- `plan_layouts` (planned generation): `BOS text BOL`, then the model writes
  its plan under the grammar mask (`LayoutConstraint`: a malformed plan cannot
  be sampled), CFG against `BOS BOL`; the plan is parsed into objects;
- `plan_codes`: SentencePiece ids in the caption->image layout
  `BOS text [BOL plan EOL] BOI`, then exactly the grid's count of image codes, sampled
  with the KV cache under `ImageSpanConstraint` (only image codes inside BOI...EOI) and
  classifier-free guidance against the prompt without caption or plan, `BOS BOI`;
- `render_codes`: the renderer draws a latent from those codes (and the prompt,
  when it reads text), the tokenizer's latent decoder turns it into pixels;
  `preview=True` instead decodes the codes with the tokenizer's preview decoder;
- `edit_codes`: in-context editing, `BOS BOI codes0 EOI instruction SEP BOI`;
- `caption_codes`: image -> `BOS BOI codes EOI` -> greedy text until a special.
"""

from __future__ import annotations

import dataclasses

import jax
from jax.sharding import NamedSharding, PartitionSpec
import numpy as np

from unified_mm.data.layout import MAX_LABEL_TOKENS, MAX_OBJECTS
from unified_mm.generate.stages import Stages
from unified_mm.models.transformer.loader import ArStage


# Prompt lengths are rounded up to a multiple of this, so a benchmark of varied
# prompts compiles the decoder a few times rather than once per length.
LENGTH_BUCKET = 16


def _left_padded(rows: list[np.ndarray], pad: int) -> tuple[np.ndarray, np.ndarray]:
  length = -(-max(len(r) for r in rows) // LENGTH_BUCKET) * LENGTH_BUCKET
  tokens = np.full((len(rows), length), pad, np.int32)
  mask = np.zeros((len(rows), length), bool)
  for i, r in enumerate(rows):
    tokens[i, length - len(r):] = r
    mask[i, length - len(r):] = True
  return tokens, mask


def _sample_image(ar: ArStage, prompts: list[np.ndarray], uncond: list[np.ndarray], rng, *,
                  grid: int, cfg_scale: float, temperature: float, top_k: int) -> np.ndarray:
  from unified_mm.models.transformer.sampling import ImageSpanConstraint, sample  # noqa: PLC0415
  v = ar.vocab
  start, stop = v.image_range
  constraint = ImageSpanConstraint(boi=v.boi, eoi=v.eoi, image_start=start, image_stop=stop,
                                   grid_count=grid * grid)
  tokens, mask = _left_padded(prompts, v.pad)
  guided = {}
  if cfg_scale != 1.0:
    u_tokens, u_mask = _left_padded(uncond, v.pad)
    guided = dict(cfg_scale=cfg_scale, uncond_tokens=u_tokens, uncond_mask=u_mask)
  with ar.placed():
    out = np.asarray(sample(ar.model, tokens, grid * grid, rng, temperature=temperature,
                            top_k=top_k, constraint=constraint, prompt_mask=mask, pad_id=v.pad,
                            **guided))
  return v.ids_to_codes(out).reshape(len(prompts), grid, grid)


def label_side_ids(ar: ArStage) -> tuple[tuple[int, int, int, int], ...]:
  """The shapes world's least box per label (`grounding.label_sides`) as the
  grammar reads it: (size word id, kind word id, w, h); words the text tokenizer
  splits into several pieces are left out."""
  from unified_mm.data.shapes.grounding import label_sides  # noqa: PLC0415
  single = lambda word: ids[0] if len(ids := list(ar.text.encode(word))) == 1 else None
  resolution = int(ar.config.data.get("image_size", 64))
  out = []
  for size, kind, w, h in label_sides(ar.vocab.layout_bins, resolution):
    a, b = single(size), single(kind)
    if a is not None and b is not None:
      out.append((int(a), int(b), w, h))
  return tuple(out)


def plan_layouts(ar: ArStage, prompts: list[str], rng, *, max_objects: int = MAX_OBJECTS,
                 cfg_scale: float = 1.0, temperature: float = 1.0, top_k: int = 0,
                 gap: int = -1, min_box: int = 1, fit: bool = False) -> list[np.ndarray]:
  """The written plan of each prompt: ids BOL ... EOL (always well-formed; with
  `gap` >= 0 its boxes keep that many free bins between them and are at least
  `min_box` bins a side; with `fit` too, at least the size of the object their
  label names while one is free: `label_side_ids`)."""
  from unified_mm.models.transformer.layout_constraint import layout_constraint  # noqa: PLC0415
  from unified_mm.models.transformer.sampling import sample  # noqa: PLC0415
  v = ar.vocab
  if not v.layout_bins:
    raise ValueError("this transformer was trained without plans (data.layout_bins=0)")
  rows = [np.concatenate([[v.bos], ar.text.encode(p), [v.bol]]).astype(np.int32) for p in prompts]
  tokens, mask = _left_padded(rows, v.pad)
  guided = {}
  if cfg_scale != 1.0:
    u_tokens, u_mask = _left_padded([np.array([v.bos, v.bol], np.int32)] * len(prompts), v.pad)
    guided = dict(cfg_scale=cfg_scale, uncond_tokens=u_tokens, uncond_mask=u_mask)
  steps = max_objects * (MAX_LABEL_TOKENS + 5) + 1
  with ar.placed():
    out = np.asarray(sample(ar.model, tokens, steps, rng, temperature=temperature, top_k=top_k,
                            constraint=layout_constraint(
                                v, max_objects=max_objects, gap=gap, min_box=min_box,
                                label_sides=label_side_ids(ar) if fit else ()),
                            prompt_mask=mask, pad_id=v.pad, stop_id=v.eol, **guided))
  plans = []
  for row in out:
    end = int(np.flatnonzero(row == v.eol)[0]) if (row == v.eol).any() else len(row) - 1
    plans.append(np.concatenate([[v.bol], row[:end], [v.eol]]).astype(np.int32))
  return plans


def plan_codes(ar: ArStage, prompts: list[str], rng, *, grid: int, cfg_scale: float = 3.0,
               temperature: float = 1.0, top_k: int = 0,
               plans: list[np.ndarray] | None = None) -> np.ndarray:
  """[B, grid, grid] visual-token ids for text prompts (drawn after each row's
  written plan, BOL ... EOL ids, when `plans` are given)."""
  v = ar.vocab
  plans = plans or [np.zeros((0,), np.int32)] * len(prompts)
  rows = [np.concatenate([[v.bos], ar.text.encode(p), plan, [v.boi]]).astype(np.int32)
          for p, plan in zip(prompts, plans)]
  uncond = [np.array([v.bos, v.boi], np.int32)] * len(prompts)
  return _sample_image(ar, rows, uncond, rng, grid=grid, cfg_scale=cfg_scale,
                       temperature=temperature, top_k=top_k)


def edit_codes(ar: ArStage, codes: np.ndarray, instructions: list[str], rng, *,
               cfg_scale: float = 3.0, temperature: float = 1.0, top_k: int = 0) -> np.ndarray:
  """[B, g, g] codes of the edited images, from source codes and instructions."""
  v = ar.vocab
  grid = codes.shape[1]
  def image(c):
    return [v.boi, *v.codes_to_ids(c.reshape(-1)), v.eoi]
  rows = [np.array([v.bos, *image(c), *ar.text.encode(t), v.sep, v.boi], np.int32)
          for c, t in zip(codes, instructions)]
  uncond = [np.array([v.bos, *image(c), v.sep, v.boi], np.int32) for c in codes]
  return _sample_image(ar, rows, uncond, rng, grid=grid, cfg_scale=cfg_scale,
                       temperature=temperature, top_k=top_k)


def caption_codes(ar: ArStage, codes: np.ndarray, rng, *, max_tokens: int = 48) -> list[str]:
  """Greedy captions of images given as [B, g, g] codes."""
  from unified_mm.models.transformer.sampling import sample, vocab_range_mask  # noqa: PLC0415
  v = ar.vocab
  start, stop = v.image_range
  rows = [np.array([v.bos, v.boi, *v.codes_to_ids(c.reshape(-1)), v.eoi], np.int32) for c in codes]
  with ar.placed():
    out = np.asarray(sample(ar.model, np.stack(rows), max_tokens, rng, temperature=0.0,
                            logit_mask_fn=vocab_range_mask(start, stop, allow=False)))
  texts = []
  for row in out:
    end = np.flatnonzero(row >= v.text_size)
    texts.append(ar.text.decode(row[:end[0] if len(end) else len(row)]))
  return texts


def render_codes(stages: Stages, codes: np.ndarray, prompts: list[str], rng, *, steps: int = 8,
                 chunks: int = 1, cfg_scale: float = 1.0, method: str = "heun",
                 start: float | None = None, layouts: list | None = None) -> np.ndarray:
  """uint8 [B, H, W, 3]: the renderer's latent for the codes (and each row's parsed
  plan, a list of LayoutObject or None), through the latent decoder."""
  from unified_mm.models.renderer.rendering import render_latents  # noqa: PLC0415
  from unified_mm.parallel.sharding import params_mesh  # noqa: PLC0415
  task = stages.renderer_task
  grid = stages.frontend.code_grid
  if np.shape(codes)[1:] != (grid, grid):
    raise ValueError(f"codes of shape {np.shape(codes)}: the tokenizer's grid is {grid} x {grid}")
  inputs = task.context_inputs(task.conditioning(np.asarray(codes, np.int32), prompts, layouts))
  with stages.renderer_placed():
    # The key may come from another mesh (GRPO's, whose policy sampled with it).
    rng = jax.device_put(rng, NamedSharding(params_mesh(stages.renderer), PartitionSpec()))
    z = render_latents(stages.renderer, rng, steps=steps, chunks=chunks,
                       cfg_scale=float(cfg_scale), method=method,
                       shift=float(task.config.sample.shift),
                       start=float(task.config.sample.get("start", 1.0) if start is None else start),
                       **inputs)
  return stages.frontend.decode_latent(jax.device_get(z))


@dataclasses.dataclass
class Generated:
  images: np.ndarray                    # uint8 [B, H, W, 3]
  codes: np.ndarray                     # [B, g, g] visual tokens
  plans: list | None = None             # per row: parsed LayoutObjects (planned generation)


def generate(stages: Stages, prompts: list[str], *, seed: int = 0, cfg_scale: float = 3.0,
             temperature: float = 1.0, top_k: int = 0, preview: bool = False,
             steps: int = 8, chunks: int = 1, render_cfg: float = 1.0, method: str = "heun",
             start: float | None = None, init_images: np.ndarray | None = None,
             planned: bool = False, plan_cfg: float = 1.0, plan_temperature: float = 1.0,
             plan_gap: int = -1, plan_min_box: int = 1, plan_fit: bool = False,
             max_objects: int = MAX_OBJECTS) -> Generated:
  """Images for prompts (or edit instructions when `init_images` [B, H, W, 3] are
  given). `planned`: the transformer writes its plan first, then draws; the
  renderer reads the plan too."""
  code_rng, render_rng = jax.random.split(jax.random.key(seed))
  plan_rng = jax.random.fold_in(code_rng, 1)  # the plain path keeps its keys
  grid = stages.frontend.code_grid
  plans = None
  if init_images is not None:
    _, source = stages.frontend.encode(init_images)
    codes = edit_codes(stages.ar, source, prompts, code_rng, cfg_scale=cfg_scale,
                       temperature=temperature, top_k=top_k)
  else:
    plan_ids = None
    if planned:
      from unified_mm.data.layout import parse_layout  # noqa: PLC0415
      plan_ids = plan_layouts(stages.ar, prompts, plan_rng, max_objects=max_objects,
                              cfg_scale=plan_cfg, temperature=plan_temperature, top_k=top_k,
                              gap=plan_gap, min_box=plan_min_box, fit=plan_fit)
      plans = [parse_layout(stages.ar.vocab, stages.ar.text, ids) for ids in plan_ids]
    codes = plan_codes(stages.ar, prompts, code_rng, grid=grid, cfg_scale=cfg_scale,
                       temperature=temperature, top_k=top_k, plans=plan_ids)
  # A layout renderer draws from plans only: without one (plain prompts, edits)
  # the codes are shown through the preview decoder.
  if preview or (plans is None and not stages.renderer_reads_codes):
    return Generated(stages.frontend.decode_codes(codes), codes, plans)
  images = render_codes(stages, codes, prompts, render_rng, steps=steps, chunks=chunks,
                        cfg_scale=render_cfg, method=method, start=start, layouts=plans)
  return Generated(images, codes, plans)
