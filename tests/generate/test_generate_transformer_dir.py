"""Which transformer a run root draws with: the post-trained one once it has a
committed checkpoint, the pre-trained one before that."""

from unified_mm.generate.stages import POST_TRAINED, missing_stage, transformer_dir


def _step(workdir, name):
  (workdir / "checkpoints" / name).mkdir(parents=True)


def test_post_trained_transformer_wins_once_committed(tmp_path):
  for stage in ("tokenizer", "ar", "renderer"):
    _step(tmp_path / stage, "10")
  assert transformer_dir(tmp_path) == tmp_path / "ar"
  (tmp_path / POST_TRAINED).mkdir()  # started, nothing saved yet
  assert transformer_dir(tmp_path) == tmp_path / "ar"
  _step(tmp_path / POST_TRAINED, "7.orbax-checkpoint-tmp-1")  # a save in flight
  assert transformer_dir(tmp_path) == tmp_path / "ar"
  _step(tmp_path / POST_TRAINED, "60")
  assert transformer_dir(tmp_path) == tmp_path / POST_TRAINED
  assert missing_stage(tmp_path) is None


def test_a_missing_post_trained_stage_names_its_command(tmp_path):
  for stage in ("tokenizer", "ar", "renderer"):
    _step(tmp_path / stage, "10")
  problem = missing_stage(tmp_path, ("tokenizer", POST_TRAINED))
  assert f"no {POST_TRAINED}/ stage" in problem
  assert "experiments/shapes.py:ar_grpo_codes" in problem
