"""The `grpo` stage: post-training of the unified transformer's plans (or, with
`rl.answer = "codes"`, of the image codes it writes without a plan) on a
verifiable reward, as a task of the one trainer.

Per step the trainer hands `rollout` the policy's current params: it draws
`rl.prompts` prompts from the benchmark's grammar (seeds the benchmark never
uses), samples `rl.group_size` answers for each with the sampler `umm generate`
uses, scores them (`rl.reward`) and returns the rows the GRPO loss trains on,
with the sampling policy's and the frozen reference's log-probs. Sampling keys
are `fold_in(key(seed), step)` and the prompts a function of the step, so a
killed and resumed run trains on exactly the rows a straight one does.

The reference is the checkpoint the run starts from (`ckpt.init_from`, the
pre-trained `ar` workdir); its model and data config are taken from there, so
`--config.ckpt.init_from=ROOT/ar` is all a run needs. With `rl.kl_coef = 0` the
loss has no KL term, and the reference is neither restored nor run.
"""

from __future__ import annotations

import contextlib
import logging
import pathlib
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from unified_mm.config.loading import ConfigError
from unified_mm.data.pipeline import load_or_train_tokenizer
from unified_mm.data.step_indexed import StepIndexedIterator
from unified_mm.data.vocab import Vocab
from unified_mm.models.transformer.loader import ArStage
from unified_mm.rl import rollout as ro
from unified_mm.rl.grpo_loss import grpo_loss, token_entropy, token_logprobs
from unified_mm.rl.plan_evaluator import PlanEvaluator
from unified_mm.rl.prompts import PROMPT_KINDS, PromptStream
from unified_mm.rl.rewards import resolve_reward
from unified_mm.tasks.ar import make_codes_fn
from unified_mm.tasks.transformer_task import BATCH_KEYS, TransformerTask
from unified_mm.train.checkpoint import Checkpoints, checkpoint_dir, open_run

log = logging.getLogger("unified_mm.rl")

ROLLOUT_SALT = 0x6772706F  # sampling keys apart from the trainer's step keys ("grpo")


class PromptRows(StepIndexedIterator):
  """Step s -> this host's sample rows; row r answers prompt r // group_size.

  `seconds` holds where the rollouts' time went (sample, render, score, logp);
  the trainer logs it with the data counters, as host-seconds since the start."""

  def __init__(self, *args):
    super().__init__(*args)
    self.seconds: dict[str, float] = {}
    self.unpacked = 0  # steps whose answers did not fit rl.pack_rows

  def batch_for(self, rows: range) -> dict[str, np.ndarray]:
    return {"row": np.asarray(rows, np.int64)}

  def stats(self) -> dict[str, float]:
    return {f"rollout/{k}_s": v for k, v in self.seconds.items()} | {
        "rollout/unpacked_steps": float(self.unpacked)}


def adopt_pretrained(config) -> None:
  """Takes model and data from the run `ckpt.init_from` names (it must exist)."""
  source = str(config.ckpt.init_from)
  if not source:
    raise ConfigError("ckpt.init_from: the grpo stage starts from a trained transformer; "
                      "set it to an `ar` workdir (e.g. runs/demo/ar)")
  try:
    with open_run(source, what="complete AR") as (_, step, saved):
      pass
  except FileNotFoundError as e:
    raise ConfigError(f"ckpt.init_from={source}: {e}") from None
  if saved.get("stage") != "ar":
    raise ConfigError(f"ckpt.init_from={source}: a {saved.get('stage')!r} run, not an ar run")
  data = ml_collections.ConfigDict(saved["data"])
  data.image_tokenizer_dir = _tokenizer_dir(source, str(config.data.get("image_tokenizer_dir", "")),
                                            str(data.image_tokenizer_dir))
  with config.unlocked():
    config.model = ml_collections.ConfigDict(saved["model"])
    config.data = data
    config.sample = ml_collections.ConfigDict(saved.get("sample", {}))
  log.info("grpo: model and data of %s (step %d)", source, step)


def _tokenizer_dir(source: str, given: str, saved: str) -> str:
  """The image tokenizer the ar run read: `data.image_tokenizer_dir` when given, else
  the saved one, else (a path saved relative to another directory) the run root's."""
  if given or not saved or pathlib.Path(saved).exists():
    return given or saved
  sibling = pathlib.Path(source).absolute().parent / pathlib.Path(saved).name
  if sibling.exists():
    return str(sibling)
  raise ConfigError(f"data.image_tokenizer_dir: the ar run read {saved!r}, which is not "
                    f"there (nor {sibling}); pass the tokenizer's workdir")


ANSWERS = ("plan", "codes")


def load_drawer(config):
  """The run root's tokenizer and layout renderer (frozen, one local device): the
  rollout draws every plan (code answers: through the tokenizer's preview decoder)
  and the reward scores the drawing."""
  from unified_mm.generate.stages import load_stages  # noqa: PLC0415
  root = str(config.rl.run_root) or str(pathlib.Path(str(config.ckpt.init_from)).absolute().parent)
  try:
    drawer = load_stages(root, need_ar=False)
  except Exception as e:  # noqa: BLE001 -- a missing or unreadable stage: name the key
    raise ConfigError(f"rl.run_root={root!r}: rl.render needs its tokenizer/ and renderer/ "
                      f"({str(e).splitlines()[0]})") from None
  if drawer.renderer_reads_codes and str(config.rl.get("answer", "plan")) == "plan":
    raise ConfigError(f"rl.run_root={root!r}: its renderer reads image codes; rl.render draws "
                      "plans with a layout renderer (experiments/shapes.py:renderer_layout)")
  return drawer


class GRPOTask(TransformerTask):
  name = "grpo"

  def __init__(self, config, make_evaluators=None):
    adopt_pretrained(config)
    super().__init__(config, make_evaluators)
    rl = config.rl
    self.group = int(rl.group_size)
    if self.group < 2:
      raise ConfigError(f"rl.group_size={self.group}: GRPO needs at least 2 samples per prompt")
    if int(config.train.batch_size) % self.group:
      raise ConfigError(f"train.batch_size={config.train.batch_size}: must be a multiple of "
                        f"rl.group_size={self.group} (batch = prompts x group)")
    if int(config.train.grad_accum_steps) != 1:
      raise ConfigError("train.grad_accum_steps: grpo steps on one rollout; use 1")
    self.tokenizer = load_or_train_tokenizer(config.data)
    _, num_codes = make_codes_fn(config.data)
    self.vocab = Vocab(int(config.data.text_vocab_size), int(num_codes),
                       layout_bins=int(config.data.get("layout_bins", 0)))
    if not self.vocab.layout_bins:
      raise ConfigError(f"ckpt.init_from={config.ckpt.init_from}: trained without plans "
                        "(data.layout_bins=0); grpo trains the plan")
    weights = dict(rl.category_weights)
    try:
      self.prompts = PromptStream(int(rl.prompt_seed), weights,
                                  cycle=int(config.train.batch_size) // self.group,
                                  counting=tuple(rl.counting), binding=tuple(rl.binding),
                                  max_objects=int(rl.max_objects),
                                  digit_prob=float(rl.get("digit_prob", 0.0)),
                                  stop_prob=float(rl.get("stop_prob", 0.0)))
    except ValueError as e:
      raise ConfigError(f"rl.category_weights / rl.prompt_seed: {e}") from None
    self.reward_fn = resolve_reward(str(rl.reward))
    self.answer = str(rl.get("answer", "plan"))
    if self.answer not in ANSWERS:
      raise ConfigError(f"rl.answer={self.answer!r}: one of {ANSWERS}")
    if self.answer == "codes" and not bool(rl.render):
      raise ConfigError("rl.render=False: code answers are scored on their drawing "
                        "(rl.answer='codes' needs rl.render)")
    self.code_cfg = float(rl.get("code_cfg", 1.0))
    self.pack_rows = int(rl.get("pack_rows", 0))
    # The rollouts' plan grammar (box gap, smallest box, fitted boxes): the ar run's
    # `sample` (generation's) unless rl names them.
    grammar = {k: config.sample.get(k, d) if rl.get(k) is None else rl.get(k)
               for k, d in (("plan_gap", -1), ("plan_min_box", 1), ("plan_fit", False))}
    self.settings = ro.SamplingSettings(self.group, int(rl.max_objects), float(rl.temperature),
                                        float(rl.plan_cfg), int(rl.seq_len),
                                        int(grammar["plan_gap"]), int(grammar["plan_min_box"]),
                                        bool(grammar["plan_fit"]))
    self.clip_eps, self.kl_coef = float(rl.clip_eps), float(rl.kl_coef)
    self._logprobs = ro.logprob_fn()
    self.drawer = load_drawer(config) if bool(rl.render) else None
    self._reference = None

  # ---- data: sample rows, turned into answers by `rollout` ---------------
  def make_data(self, process_index: int, process_count: int, local_batch_size: int):
    if local_batch_size % self.group:
      raise ConfigError(f"train.batch_size: each host's {local_batch_size} rows must hold "
                        f"whole groups of rl.group_size={self.group}")
    self.process_index, self.process_count = process_index, process_count
    self.rows = PromptRows(process_index, process_count, local_batch_size)
    return self.rows

  def batch_axes(self):
    axes = {k: ("batch", "length") for k in BATCH_KEYS + ro.ANSWER_KEYS}
    return axes | {k: ("batch",) for k in ro.ROW_KEYS}

  def rollout(self, model_def, params, local, step: int) -> dict[str, np.ndarray]:
    """This host's rows of the step's answers. Every host samples the whole step
    (prompts and keys depend on the step only), so they agree on every group."""
    rows = np.asarray(local["row"])
    per_host = len(rows)
    first = int(rows[0]) - self.process_index * per_host
    all_rows = np.arange(first, first + per_host * self.process_count)
    prompts = [self.prompts[int(r) // self.group] for r in all_rows[::self.group]]
    texts = [p[0] for p in prompts]
    policy = model_def.module(params)
    ar = ArStage(policy, self.config, self.vocab, self.tokenizer)
    rng = jax.random.fold_in(jax.random.key(int(self.config.seed) ^ ROLLOUT_SALT), step)
    clock = _Clock(self.rows.seconds)
    images = None
    if self.answer == "codes":
      with clock("sample"):
        codes = ro.sample_codes(ar, texts, rng, self.settings, self.drawer.frontend.code_grid,
                                self.code_cfg)
        plans, objects = ro.code_answers(ar, codes), [None] * len(codes)
      with clock("render"):
        images = self.drawer.frontend.decode_codes(codes)
    else:
      with clock("sample"):
        plans = ro.sample_plans(ar, texts, rng, self.settings)
        objects = ro.parse_plans(ar, plans)
      if self.drawer is not None:
        with clock("render"):
          images = ro.render_plans(self.drawer, texts, objects, self.group,
                                   jax.random.fold_in(rng, 1))
    with clock("score"):
      scores = ro.score_answers(ar, prompts, plans, objects, images, self.reward_fn, self.group)
      docs = ro.answer_docs(ar, texts, plans, self.group)
    mine = slice(self.process_index * per_host, (self.process_index + 1) * per_host)
    out = self._rows(docs, scores["advantage"], per_host, step)
    out["modality"] = self.vocab.modality(out["targets"])
    if self.kl_coef:
      with clock("logp"):  # the policy's own log-probs come with the update's forward pass
        args = (out["tokens"], out["positions"], out["segment_ids"], out["targets"])
        out["ref_logp"] = np.asarray(self._logprobs(self.reference(model_def, params), *args))
    else:  # no KL term: no reference to restore or run (the loss does not read these)
      out["ref_logp"] = np.zeros(out["targets"].shape, np.float32)
    return out | {k: v[mine] for k, v in scores.items()}

  def _rows(self, docs, advantages, per_host: int, step: int) -> dict[str, np.ndarray]:
    """This host's training rows: its answers packed into rl.pack_rows / hosts rows
    (each a segment of its own) when every host's answers fit, else one per row. A
    step that does not fit costs a second compile of the update, once."""
    seq_len, hosts = self.settings.seq_len, self.process_count
    rows = self.pack_rows // hosts
    answers = [range(h * per_host, (h + 1) * per_host) for h in range(hosts)]
    slots = None
    if 0 < rows < per_host:
      packs = [ro.pack_answers([len(docs[i][0]) - 1 for i in a], rows, seq_len) for a in answers]
      if all(p is not None for p in packs):
        slots = packs[self.process_index]
      else:
        self.rows.unpacked += 1
        log.warning("step %d: the answers do not fit rl.pack_rows=%d rows of %d; this step "
                    "trains one answer per row", step, self.pack_rows, seq_len)
    mine = list(answers[self.process_index])
    return ro.answer_rows([docs[i] for i in mine], advantages[mine], per_host * hosts, seq_len,
                          slots, rows if slots is not None else 0)

  def reference(self, model_def, params):
    """The frozen pre-trained policy, restored once with the params' shardings."""
    if self._reference is None:
      source = str(self.config.ckpt.init_from)
      ckpts = Checkpoints(checkpoint_dir(source), read_only=True)
      try:
        target = {k: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=v.sharding)
                  for k, v in params.items()}
        self._reference = model_def.module(ckpts.restore_params(ckpts.latest_step(), target))
      finally:
        ckpts.close()
    return self._reference

  # ---- loss ---------------------------------------------------------------
  def loss(self, model, batch, rng):
    del rng
    logits = model(batch["tokens"], batch["positions"], batch["segment_ids"])
    logp = token_logprobs(logits, batch["targets"])
    mask = batch["loss_mask"].astype(jnp.float32)
    answers = batch["reward"].shape[0]
    # One update per rollout: the policy that sampled is the one being updated, so
    # old = logp held constant (ratio 1, gradient A * grad logp), without a second
    # forward pass in the rollout. Reusing rollouts would pass old log-probs here.
    old = jax.lax.stop_gradient(logp)
    loss, metrics = grpo_loss(logp, old, batch["ref_logp"], batch["token_advantage"],
                              batch["token_weight"], clip_eps=self.clip_eps, kl_coef=self.kl_coef)
    tokens = jnp.maximum(mask.sum(), 1.0)
    metrics["entropy"] = (token_entropy(logits) * mask).sum() / tokens
    metrics["answer_tokens"] = mask.sum() / answers
    metrics["reward"] = batch["reward"].mean()
    metrics["plan_correct"] = batch["plan_correct"].mean()
    if self.drawer is not None:
      metrics["image_correct"] = batch["image_correct"].mean()
    metrics["flat_groups"] = batch["flat"].mean()
    for i, name in enumerate(PROMPT_KINDS):
      if name in self.prompts.categories:  # present in every step (PromptStream)
        here = (batch["category"] == i).astype(jnp.float32)
        metrics[f"reward/{name}"] = (batch["reward"] * here).sum() / jnp.maximum(here.sum(), 1)
    return loss, metrics

  def tokens_in(self, batch) -> int:
    return int(np.sum(np.asarray(batch["loss_mask"])))

  def evaluators(self) -> list:
    n = int(self.config.rl.get("eval_prompts", 0))
    if not n or not self.config.train.eval_every_steps:
      return []
    sample = self.config.get("sample", ml_collections.ConfigDict())
    return [PlanEvaluator(self.vocab, self.tokenizer, self.config, n_per_category=n,
                          seed=int(self.config.rl.eval_seed),
                          max_objects=int(self.config.rl.max_objects),
                          plan_cfg=float(sample.get("plan_cfg", 1.0)),
                          temperature=float(sample.get("plan_temperature", 1.0)),
                          gap=int(sample.get("plan_gap", -1)),
                          min_box=int(sample.get("plan_min_box", 1)),
                          fit=bool(sample.get("plan_fit", False)),
                          drawer=self.drawer)]


class _Clock:
  """`with clock(name):` adds the block's wall time to `seconds[name]`."""

  def __init__(self, seconds: dict[str, float]):
    self.seconds = seconds

  @contextlib.contextmanager
  def __call__(self, name: str):
    t0 = time.perf_counter()
    yield
    self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0


def make_task(config, make_evaluators=None) -> GRPOTask:
  return GRPOTask(config, make_evaluators)
