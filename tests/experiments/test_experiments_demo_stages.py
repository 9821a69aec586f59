"""`umm demo`'s stage chain: each stage reads the workdir the one before it wrote."""

import pathlib

from unified_mm.cli.commands.demo import STAGES, _stage_config


def test_stages_link_to_the_final_tokenizer_and_scale_their_steps(tmp_path):
  root = pathlib.Path(tmp_path)
  configs = {stage: _stage_config(stage, root, 0.1, ["--config.ar.train.batch_size=4"])
             for stage, _ in STAGES}
  workdirs = dict(STAGES)
  # The decoder fine-tune starts from the base tokenizer's workdir and writes ROOT/tokenizer,
  # the one the later stages (and `umm generate`) read.
  assert configs["tokenizer_decoder"].ckpt.init_from == str(root / workdirs["tokenizer"])
  assert workdirs["tokenizer_decoder"] == "tokenizer"
  assert configs["tokenizer_decoder"].loss.freeze_encoder
  for stage in ("ar", "renderer"):
    assert configs[stage].data.image_tokenizer_dir == str(root / "tokenizer")
  assert configs["ar"].train.batch_size == 4 and configs["renderer"].train.batch_size != 4
  assert configs["tokenizer"].train.steps == 500  # 5,000 x 0.1
