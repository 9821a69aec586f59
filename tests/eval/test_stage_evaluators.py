"""Tasks are handed their evaluators from the layer above (unified_mm.eval.stage_evaluators)."""

from unified_mm import tasks
from unified_mm.config.loading import load_config
from unified_mm.eval import stage_evaluators

AR = ["model.d_model=32", "model.num_layers=1", "model.num_heads=2", "model.num_kv_heads=1",
      "model.head_dim=16", "model.mlp_dim=64", "data.seq_len=128", "train.batch_size=4",
      "train.eval_batches=1", "train.eval_every_steps=1", "eval.caption_scenes=2"]


def test_tokenizer_task_runs_only_the_evaluators_it_is_handed(tmp_path):
  config = load_config("experiments/shapes.py:tokenizer", [
      "eval.num_scenes=2", "eval.analyze_scenes=2", "eval.batch_size=2"])
  assert tasks.make_task(config).evaluators() == []
  task = stage_evaluators.make_task(config)
  task.bind_workdir(tmp_path)
  evaluator, = task.evaluators()
  assert evaluator.name == "tokenizer" and evaluator.out_dir == tmp_path
  assert task.evaluators()[0] is evaluator  # built once
  config.eval.num_scenes = 0
  assert stage_evaluators.make_task(config).evaluators() == []


def test_ar_task_keeps_its_held_out_loss_and_is_handed_caption_match():
  config = load_config("experiments/shapes.py:ar", AR)
  assert [e.name for e in tasks.make_task(config).evaluators()] == ["ar"]
  held_out, caption = stage_evaluators.make_task(config).evaluators()
  assert (held_out.name, caption.name) == ("ar", "caption") and len(caption.scenes) == 2


def test_every_stage_but_lm_and_grpo_has_evaluators_to_hand():
  # grpo lives above eval (unified_mm/rl/) and builds its own: the drawn benchmark.
  assert set(stage_evaluators.EVALUATORS) | {"lm", "grpo"} == set(tasks.STAGES)
