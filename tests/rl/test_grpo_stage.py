"""The grpo stage through the trainer, from a tiny pre-trained transformer:
config errors, the rollout's rows, resume after SIGKILL, 8 devices against 1,
and the drawn-plan reward through a tiny layout renderer."""

import os
import pathlib
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import SingleDeviceSharding

from stage_factories import SHAPES, quick, tiny_renderer, tiny_tokenizer
from unified_mm.config.loading import ConfigError, load_config
from unified_mm.train.checkpoint import open_run
from unified_mm.train.metrics import read_metrics_rows

TINY_AR = dict(d_model=32, num_layers=1, num_heads=2, num_kv_heads=1, head_dim=16, mlp_dim=64)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
  """A run root with a tiny ar (stand-in codes), trained 2 steps."""
  from unified_mm.cli.commands.train import train_stage
  root = tmp_path_factory.mktemp("grpo_root")
  ar = quick(load_config(SHAPES + ":ar"))
  ar.model.update(**TINY_AR)
  ar.train.eval_batches = 0
  train_stage(ar, root / "ar", devices=jax.devices()[:1])
  return root


# A reward with a spread on a barely trained policy (tests/rl/rl_rewards.py), so the
# updates compared below are real gradients, not round-off.
USER_REWARD = "--config.rl.reward=rl_rewards:plan_length"
OVERRIDES = ["--config.rl.render=False", "--config.rl.group_size=4", "--config.rl.eval_prompts=0",
             "--config.train.batch_size=16", "--config.train.log_every_steps=1",
             "--config.train.eval_every_steps=0", "--config.train.progress=False",
             "--config.mesh.data=1", "--config.mesh.fsdp=1", "--config.mesh.tensor=1"]


def grpo_config(init_from, *extra):
  return load_config(SHAPES + ":ar_grpo",
                     OVERRIDES + [f"--config.ckpt.init_from={init_from}", *extra])


def _params(workdir):
  with open_run(workdir) as (ckpts, step, _):
    shapes = ckpts.saved_param_shapes(step)
    here = SingleDeviceSharding(jax.devices()[0])
    target = {k: jax.ShapeDtypeStruct(s, jnp.float32, sharding=here) for k, s in shapes.items()}
    return step, {k: np.asarray(v) for k, v in ckpts.restore_params(step, target).items()}


@pytest.mark.parametrize("override, key", [
    ("--config.ckpt.init_from=", "ckpt.init_from"),
    ("--config.train.batch_size=18", "train.batch_size"),
    ("--config.rl.group_size=1", "rl.group_size"),
    ("--config.rl.reward=no_such_module:score", "rl.reward"),
    ("--config.rl.prompt_seed=20011", "rl.prompt_seed"),
    ("--config.rl.answer=caption", "rl.answer"),
    ("--config.rl.answer=codes", "rl.render"),  # code answers are scored on their drawing
])
def test_bad_config_names_the_key(pretrained, override, key):
  from unified_mm.rl.task import make_task
  config = grpo_config(pretrained / "ar", override)
  with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
    make_task(config)


def test_missing_run_root_for_rendering_names_the_key(pretrained):
  from unified_mm.rl.task import make_task
  with pytest.raises(ConfigError, match=r"rl\.run_root"):
    make_task(grpo_config(pretrained / "ar", "--config.rl.render=True"))


def test_model_and_data_come_from_the_pretrained_run(pretrained):
  from unified_mm.rl.task import make_task
  config = grpo_config(pretrained / "ar")
  make_task(config)
  assert config.model.d_model == TINY_AR["d_model"]
  assert config.data.layout_bins == 64


def test_plan_grammar_is_rls_or_else_the_pretrained_runs(pretrained):
  """Rollouts plan with rl.plan_gap / rl.plan_min_box (the preset: no gap, as
  measured), or, set to None, with the ar run's `sample` (generation's)."""
  from unified_mm.rl.task import make_task
  saved = load_config(SHAPES + ":ar").sample
  assert saved.plan_gap >= 0  # generation keeps boxes apart; the rollouts may not
  task = make_task(grpo_config(pretrained / "ar"))
  assert (task.settings.plan_gap, task.settings.plan_min_box) == (-1, 1)
  config = grpo_config(pretrained / "ar")
  config.rl.plan_gap, config.rl.plan_min_box = None, None
  task = make_task(config)
  assert (task.settings.plan_gap, task.settings.plan_min_box) == (saved.plan_gap,
                                                                  saved.plan_min_box)


@pytest.fixture(scope="module")
def policy(pretrained):
  """(task, model_def, params): the grpo task on one device, params of the ar run."""
  from unified_mm.parallel.mesh import make_mesh
  from unified_mm.parallel.sharding import rules_from_config
  from unified_mm.rl.task import make_task
  from unified_mm.train.checkpoint import Checkpoints, checkpoint_dir
  from unified_mm.train.trainer import plan_state
  config = grpo_config(pretrained / "ar")
  task = make_task(config)
  mesh = make_mesh(config.mesh, jax.devices()[:1])
  plan = plan_state(task, config, mesh, rules_from_config(config.rules))
  ckpts = Checkpoints(checkpoint_dir(pretrained / "ar"), read_only=True)
  params = ckpts.restore_params(ckpts.latest_step(), plan.target.params)
  ckpts.close()
  return task, plan.model_def, params


def test_rollout_rows(policy):
  from unified_mm.rl.grpo_loss import group_advantages
  from unified_mm.rl.rewards import Sample, shapes_reward
  from unified_mm.rl.rollout import parse_plans
  task, model_def, params = policy
  task.pack_rows = 0
  data = task.make_data(0, 1, 16)
  rows = task.rollout(model_def, params, next(data), step=0)
  v = task.vocab
  assert set(rows) == set(task.batch_axes())
  for i in range(16):
    mask = rows["loss_mask"][i].astype(bool)
    answer = rows["targets"][i][mask]
    assert answer[-1] == v.eol and v.bol not in answer  # the sampled plan, EOL included
    start = np.flatnonzero(mask)[0]
    assert rows["tokens"][i][start] == v.bol  # the loss starts after the prompt's BOL
  prompts = [task.prompts[r] for r in range(4)]
  # A group shares its prompt; rewards are the scorer's, advantages standardised per group.
  for i in range(16):
    n = np.flatnonzero(rows["tokens"][i] == v.bol)[0]
    assert task.tokenizer.decode(rows["tokens"][i][1:n].tolist()) == prompts[i // 4][0]
  plans = [np.concatenate([[v.bol], rows["targets"][i][rows["loss_mask"][i] > 0]]) for i in range(16)]

  class Ar:
    vocab, text = v, task.tokenizer
  objects = parse_plans(Ar, plans)
  want = [shapes_reward(Sample(prompts[i // 4][0], prompts[i // 4][1], plans[i], objects[i]))
          for i in range(16)]
  np.testing.assert_allclose(rows["reward"], want)
  np.testing.assert_allclose(rows["advantage"], group_advantages(np.asarray(want), 4), rtol=1e-6)
  # The reference's log-probs of the sampled tokens: at step 0 the policy is the
  # reference, and its log-probs of the answer are those the loss computes.
  logp = np.asarray(task._logprobs(model_def.module(params), rows["tokens"], rows["positions"],
                                   rows["segment_ids"], rows["targets"]))
  np.testing.assert_allclose(rows["ref_logp"], logp, rtol=1e-6, atol=1e-6)
  assert np.all(rows["ref_logp"][rows["loss_mask"] > 0] < 0)


def test_packed_rows_give_the_unpacked_loss_and_gradient(policy):
  """The step's answers packed several to a row (each its own segment) train exactly
  as one answer per row: same loss, gradient, KL and metrics."""
  import dataclasses
  task, model_def, params = policy
  data = task.make_data(0, 1, 16)
  batch = next(data)
  task.pack_rows, settings = 0, task.settings
  task.settings = dataclasses.replace(settings, max_objects=1)  # short plans: several fit a row
  flat = task.rollout(model_def, params, batch, step=0)
  lengths = (flat["segment_ids"] > 0).sum(1)
  rows = int(np.ceil(lengths.sum() / flat["tokens"].shape[1])) + 1
  assert rows < 16, "the tiny policy's plans are too long to pack"
  task.pack_rows = rows
  packed = task.rollout(model_def, params, batch, step=0)
  task.pack_rows, task.settings = 0, settings
  assert packed["tokens"].shape[0] == rows and task.rows.unpacked == 0
  assert packed["loss_mask"].sum() == flat["loss_mask"].sum()
  for k in ("reward", "advantage", "category"):
    np.testing.assert_array_equal(packed[k], flat[k])
  np.testing.assert_allclose(packed["token_weight"].sum(), 1.0, rtol=1e-5)  # a mean over answers
  # The reference's log-probs of the answer tokens do not depend on their neighbours.
  np.testing.assert_allclose(np.sort(packed["ref_logp"][packed["loss_mask"] > 0]),
                             np.sort(flat["ref_logp"][flat["loss_mask"] > 0]), rtol=1e-5, atol=1e-6)

  def loss_and_grad(rows_):
    def f(p):
      return task.loss(model_def.module(p), {k: jnp.asarray(v) for k, v in rows_.items()}, None)
    return jax.value_and_grad(f, has_aux=True)(params)

  # The reference is a little off the policy: a non-zero KL term is compared too.
  (lf, mf), gf = loss_and_grad(flat | {"ref_logp": flat["ref_logp"] - 0.1 * flat["loss_mask"]})
  (lp, mp), gp = loss_and_grad(packed | {"ref_logp": packed["ref_logp"] - 0.1 * packed["loss_mask"]})
  np.testing.assert_allclose(float(lp), float(lf), rtol=1e-5, atol=1e-7)
  assert abs(float(lf)) > 1e-4
  for k in ("kl", "entropy", "answer_tokens", "reward", "plan_correct"):
    np.testing.assert_allclose(float(mp[k]), float(mf[k]), rtol=1e-5, err_msg=k)
  for k in gf:
    np.testing.assert_allclose(np.asarray(gp[k]), np.asarray(gf[k]), rtol=1e-4, atol=1e-7,
                               err_msg=k)


def test_without_a_kl_term_the_reference_is_not_run(policy, monkeypatch):
  """rl.kl_coef = 0: the rollout runs no reference forward pass and the loss is the
  one a reference equal to the policy gives (KL 0)."""
  task, model_def, params = policy
  monkeypatch.setattr(task, "kl_coef", 0.0)
  monkeypatch.setattr(task, "reference", lambda *a: pytest.fail("the reference was run"))
  rows = task.rollout(model_def, params, next(task.make_data(0, 1, 16)), step=0)
  assert not rows["ref_logp"].any()
  batch = {k: jnp.asarray(v) for k, v in rows.items()}
  loss, metrics = task.loss(model_def.module(params), batch, None)
  logp = task._logprobs(model_def.module(params), rows["tokens"], rows["positions"],
                        rows["segment_ids"], rows["targets"])
  monkeypatch.setattr(task, "kl_coef", 0.04)
  with_ref, _ = task.loss(model_def.module(params), batch | {"ref_logp": logp}, None)
  assert float(metrics["kl"]) == 0.0
  np.testing.assert_allclose(float(loss), float(with_ref), rtol=1e-5, atol=1e-7)


def test_code_answers_train_on_the_codes_after_the_prompt(policy):
  """A code answer is the plain document's image span: the loss covers its codes and
  EOI, after `BOS prompt BOI`, as the plain caption -> image document holds them."""
  from unified_mm.models.transformer.loader import ArStage
  from unified_mm.rl import rollout as ro
  task, model_def, params = policy
  v, grid, group = task.vocab, 4, 2
  ar = ArStage(model_def.module(params), task.config, v, task.tokenizer)
  settings = ro.SamplingSettings(group, 6, 1.0, 1.0, 64)
  texts = ["a red circle", "two blue squares"]
  codes = ro.sample_codes(ar, texts, jax.random.key(0), settings, grid, cfg_scale=1.0)
  assert codes.shape == (4, grid, grid) and codes.min() >= 0 and codes.max() < v.image_codes
  answers = ro.code_answers(ar, codes)
  docs = ro.answer_docs(ar, texts, answers, group)
  rows = ro.answer_rows(docs, np.arange(4, dtype=np.float32), 4, 64)
  for i, (doc, prompt) in enumerate(docs):
    assert task.tokenizer.decode(doc[1:prompt].tolist()) == texts[i // group]
    mask = rows["loss_mask"][i].astype(bool)
    np.testing.assert_array_equal(rows["targets"][i][mask],
                                  [*v.codes_to_ids(codes[i].reshape(-1)), v.eoi])
    assert rows["tokens"][i][np.flatnonzero(mask)[0]] == v.boi
    np.testing.assert_allclose(rows["token_advantage"][i][mask], i)


def test_answers_that_do_not_fit_are_not_packed():
  from unified_mm.rl.rollout import pack_answers
  slots = pack_answers([60, 50, 40, 30, 20], rows=2, seq_len=100)
  assert slots is not None
  used = np.bincount(slots, weights=[60, 50, 40, 30, 20], minlength=2)
  assert used.max() <= 100
  assert pack_answers([60, 50, 40, 30, 21], rows=2, seq_len=100) is None
  assert pack_answers([101], rows=4, seq_len=100) is None


def test_pack_rows_must_split_over_the_mesh(pretrained):
  from unified_mm.config.validation import validate
  config = grpo_config(pretrained / "ar", "--config.rl.pack_rows=12", "--config.mesh.data=4",
                       "--config.mesh.fsdp=2")
  with pytest.raises(ConfigError, match=r"rl\.pack_rows=12"):
    validate(config, 8)
  config = grpo_config(pretrained / "ar", "--config.rl.pack_rows=-1")
  with pytest.raises(ConfigError, match=r"rl\.pack_rows"):
    validate(config, 1)


def _umm(workdir, init_from):
  return [sys.executable, "-m", "unified_mm.cli.main", "train", "--config",
          SHAPES + ":ar_grpo", "--workdir", str(workdir), *OVERRIDES,
          f"--config.ckpt.init_from={init_from}", "--config.train.steps=6",
          "--config.ckpt.save_every_steps=2", USER_REWARD]


@pytest.mark.slow
def test_killed_and_resumed_run_equals_a_straight_one(pretrained, tmp_path, subprocess_env,
                                                      repo_root):
  env = subprocess_env(1)
  env["PYTHONPATH"] = os.pathsep.join([str(pathlib.Path(__file__).parent),
                                       env.get("PYTHONPATH", "")])
  straight, resumed = tmp_path / "a", tmp_path / "b"
  done = subprocess.run(_umm(straight, pretrained / "ar"), env=env, cwd=repo_root,
                        capture_output=True, text=True, timeout=900)
  assert done.returncode == 0, done.stderr[-3000:]
  proc = subprocess.Popen(_umm(resumed, pretrained / "ar"), env=env, cwd=repo_root,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  rows = []
  while proc.poll() is None and not (rows and rows[-1]["step"] >= 3):
    time.sleep(0.01)
    rows = read_metrics_rows(resumed)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert rows and rows[-1]["step"] < 6, "killed before the end"
  done = subprocess.run(_umm(resumed, pretrained / "ar"), env=env, cwd=repo_root,
                        capture_output=True, text=True, timeout=900)
  assert done.returncode == 0, done.stderr[-3000:]
  step_a, a = _params(straight)
  step_b, b = _params(resumed)
  assert step_a == step_b == 6
  for k in a:
    np.testing.assert_array_equal(a[k], b[k], err_msg=k)
  rewards = lambda w: {r["step"]: r["train/reward"] for r in read_metrics_rows(w)
                       if "train/reward" in r}
  ra, rb = rewards(straight), rewards(resumed)
  assert all(rb[s] == ra[s] for s in rb)


def test_eight_devices_equal_one(pretrained, tmp_path):
  from unified_mm.cli.commands.train import train_stage
  steps = ["--config.train.steps=2", "--config.ckpt.save_every_steps=0",
           "--config.ckpt.async_save=False"]
  one = grpo_config(pretrained / "ar", *steps, USER_REWARD)
  train_stage(one, tmp_path / "one", devices=jax.devices()[:1])
  eight = grpo_config(pretrained / "ar", *steps, USER_REWARD, "--config.mesh.data=4",
                      "--config.mesh.fsdp=2")
  train_stage(eight, tmp_path / "eight", devices=jax.devices())
  _, a = _params(tmp_path / "one")
  _, b = _params(tmp_path / "eight")
  rows = lambda w: [r for r in read_metrics_rows(w) if "train/reward" in r]
  ra, rb = rows(tmp_path / "one"), rows(tmp_path / "eight")
  assert len(ra) == len(rb) == 2
  assert ra[0]["train/flat_groups"] < 1 and ra[0]["train/grad_norm"] > 1e-3
  for x, y in zip(ra, rb):
    assert x["train/reward"] == y["train/reward"]  # the same plans were sampled and scored
    for k in ("train/grad_norm", "train/entropy"):
      np.testing.assert_allclose(x[k], y[k], rtol=1e-4, atol=1e-7, err_msg=k)
    # On-policy, the surrogate is the mean advantage: zero up to the round-off of
    # summing answers of advantage ~1 in a different order over 8 devices.
    np.testing.assert_allclose(x["train/loss"], y["train/loss"], atol=1e-6)
  # Adam divides by the gradients' own scale, so a coordinate whose gradient is
  # round-off can move by up to one step's lr: params agree to well under it.
  for k in a:
    np.testing.assert_allclose(a[k], b[k], atol=1e-5, err_msg=k)


@pytest.mark.slow  # trains a tiny tokenizer and renderer first
def test_drawn_plans_are_scored(tmp_path_factory, pretrained):
  """rl.render: each plan drawn by a (tiny) layout renderer, the image scored."""
  from unified_mm.cli.commands.train import train_stage
  root = tmp_path_factory.mktemp("drawn")
  (root / "ar").symlink_to(pretrained / "ar")
  devices = jax.devices()[:1]
  train_stage(tiny_tokenizer(), root / "tokenizer", devices=devices)
  train_stage(tiny_renderer(root / "tokenizer", "renderer_layout"), root / "renderer",
              devices=devices)
  config = grpo_config(root / "ar", "--config.rl.render=True", "--config.train.steps=1",
                       f"--config.data.image_tokenizer_dir={root / 'tokenizer'}",
                       "--config.rl.eval_prompts=1", "--config.train.eval_every_steps=1")
  train_stage(config, root / "grpo", devices=devices)
  rows = read_metrics_rows(root / "grpo")
  row = next(r for r in rows if "train/image_correct" in r)
  assert 0.0 <= row["train/image_correct"] <= 1.0
  assert row["rollout/render_s"] > 0
  evals = next(r for r in rows if "eval/plans/image_correct" in r)  # the periodic benchmark
  assert {f"eval/plans/image_correct/{c}" for c in ("single", "counting")} <= set(evals)
  # rl.answer=codes: the plain path's codes, drawn by the preview decoder and scored.
  config = grpo_config(root / "ar", "--config.rl.render=True", "--config.train.steps=1",
                       f"--config.data.image_tokenizer_dir={root / 'tokenizer'}",
                       "--config.rl.answer=codes", "--config.rl.seq_len=160")
  train_stage(config, root / "grpo_codes", devices=devices)
  row = next(r for r in read_metrics_rows(root / "grpo_codes") if "train/image_correct" in r)
  assert row["train/answer_tokens"] == 8 * 8 + 1  # a 64-px image in /8 codes, and EOI
  assert row["train/plan_correct"] == 0.0 and row["rollout/render_s"] > 0
