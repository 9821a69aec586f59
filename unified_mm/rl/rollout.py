"""A rollout: sample G answers per prompt with the policy, score them, and lay them
out as training rows (prompt + answer, loss on the answer only) with the log-probs
the GRPO loss needs.

An answer is a plan (`rl.answer = "plan"`: BOL ... EOL) or the image codes of the
plain path (`"codes"`: BOI ... EOI, no plan). Both are sampled by the samplers
`umm generate` uses (`generate.pipeline.plan_layouts` with the plan's grammar
mask, `plan_codes` with the image-span mask; KV cache, CFG), so what RL optimises
is what generation draws.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

from unified_mm.data.layout import parse_layout
from unified_mm.generate.pipeline import plan_codes, plan_layouts
from unified_mm.models.transformer.loader import ArStage
from unified_mm.rl.grpo_loss import flat_groups, group_advantages
from unified_mm.rl.prompts import PROMPT_KINDS
from unified_mm.rl.rewards import Sample

ANSWER_KEYS = ("ref_logp", "token_advantage", "token_weight")  # [rows, L] f32
ROW_KEYS = ("advantage", "reward", "plan_correct", "image_correct", "flat", "category")  # [answers]


@dataclasses.dataclass(frozen=True)
class SamplingSettings:
  group_size: int
  max_objects: int
  temperature: float
  plan_cfg: float
  seq_len: int
  plan_gap: int = -1  # free bins between planned boxes (-1: they may overlap)
  plan_min_box: int = 1  # with a gap: the smallest box side, in bins
  plan_fit: bool = False  # with a gap: each box holds the object its label names, while one fits


def sample_plans(ar: ArStage, texts: list[str], rng, s: SamplingSettings) -> list[np.ndarray]:
  """G plans (ids BOL ... EOL) per prompt, a prompt's group consecutive."""
  repeated = [t for t in texts for _ in range(s.group_size)]
  return plan_layouts(ar, repeated, rng, max_objects=s.max_objects, cfg_scale=s.plan_cfg,
                      temperature=s.temperature, gap=s.plan_gap,
                      min_box=s.plan_min_box, fit=s.plan_fit)


def sample_codes(ar: ArStage, texts: list[str], rng, s: SamplingSettings, grid: int,
                 cfg_scale: float) -> np.ndarray:
  """[B * G, grid, grid] codes of the plain path (caption -> codes), a group consecutive."""
  repeated = [t for t in texts for _ in range(s.group_size)]
  return plan_codes(ar, repeated, rng, grid=grid, cfg_scale=cfg_scale, temperature=s.temperature)


def code_answers(ar: ArStage, codes: np.ndarray) -> list[np.ndarray]:
  """Per row of `codes`: its answer ids BOI ... EOI, as the plain document holds them."""
  v = ar.vocab
  return [np.array([v.boi, *v.codes_to_ids(c.reshape(-1)), v.eoi], np.int32) for c in codes]


def parse_plans(ar: ArStage, plans: list[np.ndarray]) -> list:
  out = []
  for ids in plans:
    try:
      out.append(parse_layout(ar.vocab, ar.text, ids))
    except ValueError:  # the grammar mask makes this rare: a label that decodes oddly
      out.append(None)
  return out


def render_plans(drawer, texts: list[str], objects: list, group_size: int, rng) -> np.ndarray:
  """uint8 [B, H, W, 3]: each plan drawn by the run root's layout renderer, with the
  benchmark's renderer settings (`drawer`: generate.stages.Stages without the ar)."""
  from unified_mm.generate.pipeline import render_codes  # noqa: PLC0415
  s = drawer.renderer_task.config.sample
  grid = drawer.frontend.code_grid
  codes = np.zeros((len(objects), grid, grid), np.int32)  # a layout renderer reads no codes
  repeated = [t for t in texts for _ in range(group_size)]
  return render_codes(drawer, codes, repeated, rng, steps=int(s.steps), chunks=int(s.chunks),
                      cfg_scale=float(s.cfg_scale), method=str(s.method), start=float(s.start),
                      layouts=[o or [] for o in objects])


def score_answers(ar: ArStage, prompts: list, plans: list[np.ndarray], objects: list,
                  images: np.ndarray | None, reward_fn, group_size: int) -> dict[str, np.ndarray]:
  """Per row: the reward, its group advantage, plan and image all-correct, category.
  Code answers have no plan: `objects` None each, and the image alone is scored."""
  rewards, plan_ok, image_ok, category = [], [], [], []
  for i, (ids, objs) in enumerate(zip(plans, objects)):
    text, spec, cat = prompts[i // group_size]
    sample = Sample(text, spec, ids, objs, None if images is None else images[i],
                    bins=ar.vocab.layout_bins)
    rewards.append(float(reward_fn(sample)))
    plan_ok.append(sample.plan_verdict[1])
    image_ok.append(bool(sample.image_verdict and sample.image_verdict[1]))
    category.append(PROMPT_KINDS.index(cat))
  rewards = np.asarray(rewards, np.float32)
  flat = np.repeat(flat_groups(rewards, group_size), group_size)
  return {"reward": rewards, "advantage": group_advantages(rewards, group_size),
          "plan_correct": np.asarray(plan_ok, np.float32),
          "image_correct": np.asarray(image_ok, np.float32),
          "flat": flat.astype(np.float32), "category": np.asarray(category, np.int32)}


def answer_docs(ar: ArStage, texts: list[str], plans: list[np.ndarray],
                group_size: int) -> list[tuple[np.ndarray, int]]:
  """Per answer: its document `BOS prompt answer` (`BOL plan EOL` or `BOI codes EOI`)
  and the length of its prompt."""
  v = ar.vocab
  docs = []
  for i, plan in enumerate(plans):
    prompt = np.concatenate([[v.bos], ar.text.encode(texts[i // group_size])]).astype(np.int32)
    docs.append((np.concatenate([prompt, plan]).astype(np.int32), len(prompt)))  # from BOL / BOI
  return docs


def pack_answers(lengths: list[int], rows: int, seq_len: int) -> list[int] | None:
  """First-fit decreasing: the row of each answer (`lengths` positions each), or None
  when they do not fit in `rows` rows of `seq_len`."""
  free = [seq_len] * rows
  slot = [0] * len(lengths)
  for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
    row = next((r for r in range(rows) if free[r] >= lengths[i]), None)
    if row is None:
      return None
    free[row] -= lengths[i]
    slot[i] = row
  return slot


def answer_rows(docs: list[tuple[np.ndarray, int]], advantages: np.ndarray, answers: int,
                seq_len: int, slots: list[int] | None = None, rows: int = 0) -> dict[str, np.ndarray]:
  """Training rows holding `docs` (answer i in row slots[i], default row i), each a
  segment of its own; loss on the plan only.

  Per token: its answer's advantage and a weight 1 / (answers x the answer's plan
  tokens), so `sum(weight * token loss)` is the mean over the step's `answers` of each
  answer's mean token loss, however the answers are packed into rows."""
  slots = list(range(len(docs))) if slots is None else slots
  rows = rows or len(docs)
  out = {k: np.zeros((rows, seq_len), np.int32)
         for k in ("tokens", "targets", "positions", "segment_ids", "loss_mask")}
  out |= {k: np.zeros((rows, seq_len), np.float32) for k in ("token_advantage", "token_weight")}
  used = [0] * rows
  for i, ((doc, prompt), row) in enumerate(zip(docs, slots)):
    m = len(doc) - 1
    if used[row] + m > seq_len:
      raise ValueError(f"rl.seq_len={seq_len}: a prompt and its plan need {m} positions")
    at = slice(used[row], used[row] + m)
    out["tokens"][row, at] = doc[:-1]
    out["targets"][row, at] = doc[1:]
    out["positions"][row, at] = np.arange(m)
    out["segment_ids"][row, at] = i + 1
    answer = slice(used[row] + prompt, used[row] + m)  # the targets after BOL: the sampled plan
    out["loss_mask"][row, answer] = 1
    out["token_advantage"][row, answer] = advantages[i]
    out["token_weight"][row, answer] = 1.0 / (answers * (m - prompt))
    used[row] += m
  return out


def logprob_fn():
  """jitted (model, rows) -> log p(target) [B, L] (f32)."""
  from unified_mm.rl.grpo_loss import token_logprobs  # noqa: PLC0415

  @jax.jit
  def fn(model, tokens, positions, segment_ids, targets):
    return token_logprobs(model(tokens, positions, segment_ids), targets)
  return fn
