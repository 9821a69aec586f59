"""The checks `umm train` runs before building anything, on the real lm preset."""

import pytest

from unified_mm.config.loading import ConfigError, load_config
from unified_mm.config.validation import validate

SPEC = "experiments/lm.py:tiny"


@pytest.fixture
def chdir_repo(repo_root, monkeypatch):
  monkeypatch.chdir(repo_root)


def test_tiny_preset_is_valid_on_8_and_1_devices(chdir_repo):
  assert validate(load_config(SPEC), 8)["data"] == 8
  assert validate(load_config(SPEC), 1)["data"] == 1


def test_unknown_key_names_it(chdir_repo):
  with pytest.raises(ConfigError, match=r"train\.stepz.*'steps'"):
    load_config(SPEC, ["--config.train.stepz=5"])


@pytest.mark.parametrize("overrides,pattern", [
    (["--config.mesh.data=3"], r"mesh\.data=3.*3 devices but 8"),
    (["--config.mesh.data=1", "--config.mesh.tensor=8"], r"model\.num_heads=4.*mesh\.tensor=8"),
    (["--config.mesh.tensor=4"], r"model\.num_kv_heads=2.*mesh\.tensor=4"),
    (['--config.rules=[["batchh", "data"]]'], r"rules\[0\].*'batchh'"),
    (['--config.rules=[["batch", "dataa"]]'], r"rules\[0\].*'dataa'"),
    (["--config.train.batch_size=12"], r"train\.batch_size=12"),
])
def test_bad_mesh_heads_rules_batch(chdir_repo, overrides, pattern):
  with pytest.raises(ConfigError, match=pattern):
    validate(load_config(SPEC, overrides), 8)
