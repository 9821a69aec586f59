"""`umm demo`'s stage chain: each stage reads the workdir the one before it wrote."""

import pathlib

from unified_mm.cli.commands.demo import STAGES, _stage_config


def test_stages_link_to_the_workdirs_before_them_and_scale_their_steps(tmp_path):
  root = pathlib.Path(tmp_path)
  configs = {stage: _stage_config(stage, root, 0.1, ["--config.ar.train.batch_size=4"])
             for stage, _ in STAGES}
  workdirs = dict(STAGES)
  order = [stage for stage, _ in STAGES]
  # The crisp decoder starts from the base tokenizer; ar and renderer read it.
  assert configs["tokenizer_decoder"].ckpt.init_from == str(root / workdirs["tokenizer"])
  assert configs["tokenizer_decoder"].loss.freeze_encoder
  for stage in ("ar", "renderer"):
    assert configs[stage].data.image_tokenizer_dir == str(root / workdirs["tokenizer_decoder"])
    assert order.index(stage) > order.index("tokenizer_decoder")
  # Last, the decoder learns from the trained renderer's samples and writes ROOT/tokenizer,
  # the one `umm generate` reads.
  dec = configs["latent_decoder"]
  assert order[-1] == "latent_decoder" and workdirs["latent_decoder"] == "tokenizer"
  assert dec.ckpt.init_from == str(root / workdirs["tokenizer_decoder"])
  assert dec.data.renderer_dir == str(root / workdirs["renderer"])
  assert dec.data.pool_size == 600  # 6,000 x 0.1
  assert configs["ar"].train.batch_size == 4 and configs["renderer"].train.batch_size != 4
  assert configs["tokenizer"].train.steps == 500  # 5,000 x 0.1
