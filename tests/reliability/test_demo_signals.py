"""Multi-stage jobs under signals (issue #21, item 9): a SIGTERM or Ctrl-C ends
the whole job after the stage in training saved, with exit code 75, and a run
root's stages never silently disagree about the tokenizer they were trained on.

Fast, in-process: the exit code's one value, the flag's Ctrl-C handling, the
local supervisor passing 75 on, and the upstream records (train/provenance.py)
on toy-task checkpoints: recorded on a fresh start, accepted while the
upstream is unchanged, refused once it trained further, `--retrain-changed`.

Slow, in subprocesses: `umm train` SIGTERMed exits 75; a tiny `umm demo`
SIGTERMed in its tokenizer stage exits 75 with one line and no transformer or
renderer checkpoint; the same command resumes the tokenizer from its saved step
and completes; an edited record makes the next run refuse (exit code 2); a
SIGTERM while the transformer and the renderer train side by side saves both.
"""

import json
import logging
import shlex
import shutil
import signal
import subprocess
import sys
import time

import jax
import pytest
from train_toy_task import ToyTask, toy_config

from unified_mm.launch import supervisor
from unified_mm.train import train_and_evaluate
from unified_mm.train.checkpoint import checkpoint_dir
from unified_mm.train.metrics import read_metrics_rows
from unified_mm.train.preemption import PREEMPTED_EXIT_CODE, PreemptionFlag
from unified_mm.train.provenance import (RECORD_FILE, UpstreamChanged, check_upstreams,
                                         checkpoint_hash, latest_step, reconcile)

KEY = "data.image_tokenizer_dir"


# ---- Fast: the exit code, the flag, the supervisor -----------------------------

def test_one_exit_code_for_preempted():
  assert PREEMPTED_EXIT_CODE == supervisor.PREEMPTED == 75  # EX_TEMPFAIL; the launcher's copy


def test_ctrl_c_sets_the_flag_and_a_second_one_interrupts():
  before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
  with PreemptionFlag() as flag:
    signal.raise_signal(signal.SIGTERM)
    signal.raise_signal(signal.SIGINT)  # the first Ctrl-C: saved like a preemption
    assert flag.requested()
    with pytest.raises(KeyboardInterrupt):
      signal.raise_signal(signal.SIGINT)
  assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_supervisor_passes_preempted_on(tmp_path):
  # Process 0 is preempted; process 1 saves and stops on the SIGTERM the supervisor sends.
  # Process 0 exits only once process 1 handles SIGTERM: on a loaded machine process 1
  # could otherwise still be starting Python when the signal comes (and die of it).
  ready = tmp_path / "handler_installed"
  saves = ("import pathlib, signal, sys, time; "
           "signal.signal(signal.SIGTERM, lambda *a: sys.exit(75)); "
           f"pathlib.Path({str(ready)!r}).touch(); time.sleep(60)")
  preempted = (f"import os, sys, time\nwhile not os.path.exists({str(ready)!r}): time.sleep(0.01)\n"
               "sys.exit(75)")
  commands = [[sys.executable, "-c", preempted], [sys.executable, "-c", saves]]
  sup = supervisor.Supervisor(commands, [{}, {}], str(tmp_path), echo=None)
  sup.start()
  assert sup.wait(timeout=60) == 75
  assert [p.returncode for p in sup.procs] == [75, 75]


# ---- Fast: upstream records on toy checkpoints ------------------------------------

def _train_toy(workdir, steps):
  config = toy_config(steps=steps)
  config.mesh.update(data=1, fsdp=1, tensor=1)
  train_and_evaluate(config, workdir, ToyTask(config), devices=jax.devices()[:1])


@pytest.fixture(scope="module")
def toy_runs(tmp_path_factory):
  """Trained once, copied by each test: a toy "tokenizer" at step 4, the same run
  trained on to step 6, and a toy downstream stage at step 2."""
  runs = tmp_path_factory.mktemp("toy_runs")
  _train_toy(runs / "tokenizer_4", 4)
  shutil.copytree(runs / "tokenizer_4", runs / "tokenizer_6")
  _train_toy(runs / "tokenizer_6", 6)
  _train_toy(runs / "ar_2", 2)
  return runs


@pytest.fixture
def toy_root(toy_runs, tmp_path):
  """ROOT/tokenizer at step 4 and a downstream config that reads it."""
  root = tmp_path / "root"
  shutil.copytree(toy_runs / "tokenizer_4", root / "tokenizer")
  config = toy_config(steps=4)
  config.data.image_tokenizer_dir = str(root / "tokenizer")
  return root, config


def _swap_in(root, toy_runs, run: str, stage: str) -> None:
  shutil.rmtree(root / stage, ignore_errors=True)
  shutil.copytree(toy_runs / run, root / stage, dirs_exist_ok=True)


def test_fresh_stage_records_its_upstream_and_resumes_while_it_is_unchanged(toy_root, toy_runs):
  root, config = toy_root
  assert reconcile(config, root / "ar") is None  # no checkpoint: starts fresh, records
  record = json.loads((root / "ar" / RECORD_FILE).read_text())
  up = record["upstreams"][KEY]
  assert record["version"] == 1
  assert up["workdir"] == "../tokenizer" and up["stage"] == "toy" and up["step"] == 4
  assert up["hash"] == checkpoint_hash(checkpoint_dir(root / "tokenizer") / "4")
  shutil.copytree(toy_runs / "ar_2", root / "ar", dirs_exist_ok=True)  # it trained 2 steps
  assert reconcile(config, root / "ar", unrecorded="refuse") is None


def test_upstream_trained_further_is_refused_naming_both(toy_root, toy_runs):
  root, config = toy_root
  reconcile(config, root / "ar")
  shutil.copytree(toy_runs / "ar_2", root / "ar", dirs_exist_ok=True)
  _swap_in(root, toy_runs, "tokenizer_6", "tokenizer")  # it moved on under the trained stage
  with pytest.raises(UpstreamChanged) as e:
    check_upstreams(config, root / "ar", hint="retrain it")
  msg = str(e.value)
  assert "\n" not in msg
  assert f"{root / 'ar'} (step 2) was trained from toy step 4 (" in msg
  assert f"but {root / 'tokenizer'} now holds toy step 6 (" in msg and msg.endswith(": retrain it")


def test_stage_without_a_record_is_adopted_by_umm_train_and_refused_by_the_demo(toy_root, toy_runs):
  root, config = toy_root
  _swap_in(root, toy_runs, "ar_2", "ar")  # trained before records were kept
  why = reconcile(config, root / "ar", unrecorded="refuse")
  assert "has checkpoints (step 2) but no record (upstream.json)" in why
  assert not (root / "ar" / RECORD_FILE).exists()
  assert reconcile(config, root / "ar", unrecorded="adopt") is None
  assert json.loads((root / "ar" / RECORD_FILE).read_text())["upstreams"][KEY]["step"] == 4


def test_demo_retrain_changed_moves_the_stage_aside(toy_root, toy_runs):
  from unified_mm.cli.commands.demo import _check_upstreams
  root, config = toy_root
  reconcile(config, root / "ar")
  shutil.copytree(toy_runs / "ar_2", root / "ar", dirs_exist_ok=True)
  _swap_in(root, toy_runs, "tokenizer_6", "tokenizer")
  log = logging.getLogger("test")
  with pytest.raises(UpstreamChanged, match=r"re-run with --retrain-changed to retrain ar \(the "
                     r"old run moves to ar.stale\), or delete "):
    _check_upstreams(config, root / "ar", False, log)
  _check_upstreams(config, root / "ar", True, log)
  assert latest_step(root / "ar.stale") == 2 and not (root / "ar").exists()
  assert reconcile(config, root / "ar") is None  # fresh again: records step 6
  assert json.loads((root / "ar" / RECORD_FILE).read_text())["upstreams"][KEY]["step"] == 6


def test_hash_is_of_content_not_of_where_the_root_lives(toy_runs, tmp_path):
  copy = tmp_path / "elsewhere"
  shutil.copytree(toy_runs / "tokenizer_4", copy)
  h4 = checkpoint_hash(checkpoint_dir(toy_runs / "tokenizer_4") / "4")
  assert h4 == checkpoint_hash(checkpoint_dir(copy) / "4")
  assert h4 != checkpoint_hash(checkpoint_dir(toy_runs / "tokenizer_6") / "6")


# ---- Slow: the real commands in subprocesses ------------------------------------

TOKENIZER_STEPS = 120
# The smallest stages the presets allow (tests/stage_factories.py's sizes), one device.
TINY = [
    "--scale", "0.001", "--prompts-per-category", "1", "--caption-scenes", "1",
    "--edit-scenes", "1",
    "--config.tokenizer.model.channels=(8,16,16)",
    "--config.tokenizer.model.latent_decoder_channels=(16,8)",
    "--config.tokenizer.model.preview_decoder_channels=(16,16,8)",
    "--config.tokenizer.model.norm_groups=4", "--config.tokenizer.eval.num_scenes=0",
    "--config.tokenizer.train.batch_size=8", f"--config.tokenizer.train.steps={TOKENIZER_STEPS}",
    "--config.tokenizer.train.log_every_steps=1", "--config.tokenizer.train.progress=false",
    "--config.tokenizer.ckpt.save_every_steps=0",  # only the preemption's save and the last
    "--config.ar.model.d_model=32", "--config.ar.model.num_layers=1",
    "--config.ar.model.num_heads=2",
    "--config.ar.model.num_kv_heads=1", "--config.ar.model.head_dim=16",
    "--config.ar.model.mlp_dim=64", "--config.ar.train.eval_batches=0",
    "--config.ar.eval.caption_scenes=0", "--config.ar.train.batch_size=8",
    "--config.ar.train.steps=4", "--config.ar.train.progress=false",
    "--config.renderer_layout.model.embed_dim=32", "--config.renderer_layout.model.depth=1",
    "--config.renderer_layout.model.num_heads=2",
    "--config.renderer_layout.model.layout_plan_width=16",
    "--config.renderer_layout.model.layout_plan_depth=1",
    "--config.renderer_layout.eval.num_scenes=0", "--config.renderer_layout.sample.steps=2",
    "--config.renderer_layout.train.batch_size=8", "--config.renderer_layout.train.steps=4",
    "--config.renderer_layout.train.progress=false",
    "--config.ar_grpo_codes.train.steps=2", "--config.ar_grpo_codes.rl.group_size=2",
    "--config.ar_grpo_codes.train.batch_size=18", "--config.ar_grpo_codes.train.progress=false",
]


@pytest.fixture(scope="module")
def env(runner_env):
  return runner_env  # one device per process, compiled stages shared through JAX's cache


def _start(cmd, env, cwd, log):
  with open(log, "w") as f:  # the child keeps its own copy of the descriptor
    return subprocess.Popen(cmd, env=env, cwd=cwd, stdout=f, stderr=subprocess.STDOUT)


def _sigterm_once(proc, until, timeout=600.0) -> bool:
  """SIGTERM to `proc` once `until()` holds (False if it ended first)."""
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline and proc.poll() is None:
    if until():
      proc.send_signal(signal.SIGTERM)
      return True
    time.sleep(0.05)
  return False


def _last_step(workdir) -> int:
  rows = [r for r in read_metrics_rows(workdir) if "train/loss" in r]  # whole lines only
  return rows[-1]["step"] if rows else 0


@pytest.mark.slow
def test_umm_train_preempted_exits_75(env, repo_root, tmp_path):
  workdir = tmp_path / "w"
  cmd = [sys.executable, "-m", "unified_mm.cli.main", "train", "--config", "experiments/lm.py:tiny",
         "--workdir", str(workdir), "--config.train.steps=500", "--config.train.log_every_steps=1",
         "--config.train.eval_every_steps=0", "--config.train.batch_size=8",
         "--config.train.progress=false", "--config.data.seq_len=64",
         "--config.model.num_layers=1", "--config.ckpt.save_every_steps=0"]
  proc = _start(cmd, env, repo_root, tmp_path / "log")
  started = _sigterm_once(proc, lambda: _last_step(workdir) >= 2)
  assert started, (tmp_path / "log").read_text()[-3000:]
  code = proc.wait(timeout=300)
  out = (tmp_path / "log").read_text()
  assert code == PREEMPTED_EXIT_CODE, out[-3000:]
  step = latest_step(workdir)
  assert 2 <= step < 500
  assert (f"umm train: preempted at step {step} of 500; its checkpoint is saved in {workdir}: "
          f"re-run the same command to resume (exit code 75)") in out


@pytest.fixture(scope="module")
def demo(env, repo_root, tmp_path_factory):
  """A tiny `umm demo` SIGTERMed in its tokenizer stage, then run again to the end."""
  root = tmp_path_factory.mktemp("demo") / "root"
  logs = root.parent
  cmd = [sys.executable, "-m", "unified_mm.cli.main", "demo", "--workdir", str(root), *TINY]
  info = {"root": root, "cmd": cmd}
  proc = _start(cmd, env, repo_root, logs / "first.log")
  sent = _sigterm_once(proc, lambda: _last_step(root / "tokenizer") >= 3)
  info["first_code"] = proc.wait(timeout=300)
  info["first"] = (logs / "first.log").read_text()
  assert sent, info["first"][-3000:]
  info["saved_step"] = latest_step(root / "tokenizer")
  info["ar_after_first"] = (root / "ar").exists(), (root / "renderer").exists()
  proc = _start(cmd, env, repo_root, logs / "second.log")
  info["second_code"] = proc.wait(timeout=1800)
  info["second"] = (logs / "second.log").read_text()
  return info


@pytest.mark.slow
def test_sigterm_in_the_tokenizer_stops_the_whole_demo(demo):
  out, step = demo["first"], demo["saved_step"]
  assert demo["first_code"] == PREEMPTED_EXIT_CODE, out[-3000:]
  assert step is not None and 3 <= step < TOKENIZER_STEPS
  lines = [line for line in out.splitlines() if line.startswith("umm demo:")]
  command = "umm demo " + shlex.join(["--workdir", str(demo["root"]), *TINY])
  assert lines == [f"umm demo: preempted: tokenizer stopped at step {step} of {TOKENIZER_STEPS} "
                   f"(saved); re-run `{command}` to resume (exit code 75)"], out[-3000:]
  assert demo["ar_after_first"] == (False, False)  # nothing trained on a half tokenizer


@pytest.mark.slow
def test_rerun_resumes_the_tokenizer_and_completes(demo):
  out, step, root = demo["second"], demo["saved_step"], demo["root"]
  assert demo["second_code"] == 0, out[-3000:]
  assert f"resumed from checkpoint step {step} in {checkpoint_dir(root / 'tokenizer')}" in out
  losses = [r["step"] for r in read_metrics_rows(root / "tokenizer") if "train/loss" in r]
  assert losses == list(range(1, TOKENIZER_STEPS + 1))  # each step once: resumed, not restarted
  assert (root / "report.md").exists()
  final = checkpoint_hash(checkpoint_dir(root / "tokenizer") / str(TOKENIZER_STEPS))
  for stage in ("ar", "renderer", "ar_rl"):
    up = json.loads((root / stage / RECORD_FILE).read_text())["upstreams"][KEY]
    assert up == {"workdir": "../tokenizer", "stage": "tokenizer", "step": TOKENIZER_STEPS,
                  "hash": final}
  # GRPO's start is its KL reference at every resume: recorded too.
  start = json.loads((root / "ar_rl" / RECORD_FILE).read_text())["upstreams"]["ckpt.init_from"]
  assert (start["workdir"], start["stage"], start["step"]) == ("../ar", "ar", 4)


@pytest.mark.slow
def test_rerun_refuses_a_stage_whose_upstream_changed(demo, env, repo_root):
  root = demo["root"]
  assert demo["second_code"] == 0, demo["second"][-3000:]
  path = root / "ar" / RECORD_FILE
  record = json.loads(path.read_text())
  record["upstreams"][KEY]["hash"] = "sha256:" + "0" * 64  # as if trained on another tokenizer
  path.write_text(json.dumps(record))
  done = subprocess.run(demo["cmd"], env=env, cwd=repo_root, capture_output=True, text=True,
                        timeout=900)
  assert done.returncode == 2, done.stderr[-3000:]
  lines = [line for line in done.stderr.splitlines() if line.startswith("umm demo:")]
  assert lines == [
      f"umm demo: upstream changed: {root / 'ar'} (step 4) was trained from tokenizer step "
      f"{TOKENIZER_STEPS} (000000000000), but {root / 'tokenizer'} now holds tokenizer step "
      f"{TOKENIZER_STEPS} ({record_hash(root)[7:19]}): re-run with --retrain-changed to retrain ar "
      f"(the old run moves to ar.stale), or delete {root / 'ar'}"], done.stderr[-3000:]
  assert latest_step(root / "ar") == 4  # refused, not touched


def record_hash(root) -> str:
  return checkpoint_hash(checkpoint_dir(root / "tokenizer") / str(TOKENIZER_STEPS))


@pytest.mark.slow
def test_sigterm_side_by_side_saves_both_stages(demo, env, repo_root, tmp_path):
  """Signalled while the transformer trains beside the renderer: both save."""
  assert demo["second_code"] == 0, demo["second"][-3000:]
  root = tmp_path / "root"
  shutil.copytree(demo["root"] / "tokenizer", root / "tokenizer")  # complete: straight to ar
  longer = [a.replace("train.steps=4", "train.steps=300") for a in TINY]
  cmd = [sys.executable, "-m", "unified_mm.cli.main", "demo", "--workdir", str(root), *longer,
         "--config.ar.train.log_every_steps=1"]
  proc = _start(cmd, env, repo_root, tmp_path / "log")
  sent = _sigterm_once(proc, lambda: _last_step(root / "ar") >= 2)
  code = proc.wait(timeout=300)
  out = (tmp_path / "log").read_text()
  assert sent and code == PREEMPTED_EXIT_CODE, out[-3000:]
  ar, renderer = latest_step(root / "ar"), latest_step(root / "renderer")
  assert ar is not None and renderer is not None and ar < 300 and renderer < 300, out[-3000:]
  assert (f"umm demo: preempted: ar stopped at step {ar} of 300 and renderer stopped at step "
          f"{renderer} of 300 (saved); re-run `") in out
