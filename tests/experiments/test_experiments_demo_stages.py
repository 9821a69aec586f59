"""`umm demo`'s stage chain: each stage reads the workdir the one before it wrote."""

import pathlib

import pytest

from unified_mm.cli.commands.demo import (BASELINE, GRPO, STAGES, _stage_config,
                                          check_override_stages)
from unified_mm.cli.main import main
from unified_mm.config.loading import ConfigError, load_config

SHAPES = str(pathlib.Path(__file__).resolve().parents[2] / "experiments/shapes.py")


def test_stages_link_to_the_workdirs_before_them_and_scale_their_steps(tmp_path):
  root = pathlib.Path(tmp_path)
  overrides = ["--config.ar.train.batch_size=4"]
  configs = {stage: _stage_config(stage, root, 0.1, overrides) for stage, _ in (*STAGES, BASELINE)}
  workdirs = dict(STAGES)
  order = [stage for stage, _ in STAGES]
  # The tokenizer comes first and writes ROOT/tokenizer, which every later stage reads
  # (and `umm generate` loads).
  assert order[0] == "tokenizer" and workdirs["tokenizer"] == "tokenizer"
  renderer = next(stage for stage, workdir in STAGES if workdir == "renderer")
  for stage in ("ar", renderer, BASELINE[0]):
    assert configs[stage].data.image_tokenizer_dir == str(root / "tokenizer")
  assert configs["ar"].train.batch_size == 4 and configs[renderer].train.batch_size != 4
  full = load_config(SHAPES + ":tokenizer").train.steps
  assert configs["tokenizer"].train.steps == max(10, int(full * 0.1))
  # GRPO starts from (and is held near) the transformer, drawing the codes it samples
  # with the tokenizer of the same root; it comes after the transformer and the renderer.
  assert configs[GRPO].ckpt.init_from == str(root / workdirs["ar"])
  assert configs[GRPO].rl.answer == "codes" and configs[GRPO].rl.render
  assert order.index(GRPO) > max(order.index("ar"), order.index(renderer))
  # Evaluators run once, at each stage's end (GRPO's none: the benchmark follows);
  # checkpoints twice.
  for stage, c in configs.items():
    assert c.train.eval_every_steps == (0 if stage == GRPO else c.train.steps)
    assert c.ckpt.save_every_steps == max(c.train.steps // 2, 1)


def test_explicit_steps_win_over_the_scale(tmp_path):
  c = _stage_config(BASELINE[0], pathlib.Path(tmp_path), 0.1, [], steps=1234)
  assert c.train.steps == 1234
  assert c.model.visual_codes == 0 and c.model.layout_len == 0  # text only


def test_a_stage_override_error_names_the_key_as_typed(tmp_path):
  with pytest.raises(ConfigError, match=r"--config\.ar\.model\.d_modle: .*did you mean 'd_model'"):
    _stage_config("ar", pathlib.Path(tmp_path), 0.1, ["--config.ar.model.d_modle=384"])
  # GRPO takes its model from the ar run; the message says where to set it.
  with pytest.raises(ConfigError, match=rf"--config\.{GRPO}\.model.*--config\.ar\.model"):
    _stage_config(GRPO, pathlib.Path(tmp_path), 0.1, [f"--config.{GRPO}.model.d_model=384"])


def test_an_override_naming_no_stage_fails_before_anything_runs(tmp_path, capsys):
  check_override_stages(["--config.ar.train.batch_size=4",
                         "--config.renderer_text_only.train.steps=3"])
  typo = r"'rendrer_layout' is not one \(did you mean 'renderer_layout'"
  with pytest.raises(ConfigError, match=typo):
    check_override_stages(["--config.rendrer_layout.train.steps=3"])
  with pytest.raises(ConfigError, match="'ar' names no key"):
    check_override_stages(["--config.ar=3"])
  root = pathlib.Path(tmp_path) / "root"
  # Without the check this override was dropped and the demo trained on.
  assert main(["demo", "--workdir", str(root), "--config.model.d_model=384"]) == 2
  err = capsys.readouterr().err
  assert "--config.model.d_model=384" in err and "--config.<stage>.<key>" in err
  assert not root.exists()


def test_the_tokenizer_trains_on_one_cpu_device_per_core(monkeypatch, tmp_path):
  """On a CPU-only host the tokenizer's process gets one XLA CPU device per core
  (as many as divide its batch); the side-by-side stages and GRPO keep one, and so
  does a tokenizer whose mesh names its axes, or a host whose XLA_FLAGS already
  force a device count (the tests' 8)."""
  import os

  from unified_mm.cli.commands.demo import cpu_devices
  configs = {stage: _stage_config(stage, tmp_path, 0.1, []) for stage, _ in STAGES}
  assert "xla_force_host_platform_device_count=8" in os.environ["XLA_FLAGS"]
  assert cpu_devices("tokenizer", configs["tokenizer"]) == 0
  monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_enable_fast_math=false")
  for cores, batch, devices in ((2, 16, 2), (3, 16, 2), (8, 12, 6), (1, 16, 0), (4, 7, 0)):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid, n=cores: set(range(n)))
    for stage, config in configs.items():
      config = config.copy_and_resolve_references()
      config.train.batch_size = batch
      expected = devices if stage == "tokenizer" else 0
      assert cpu_devices(stage, config) == expected, (stage, cores, batch)
  named = configs["tokenizer"].copy_and_resolve_references()
  named.mesh.data = 1
  assert cpu_devices("tokenizer", named) == 0
