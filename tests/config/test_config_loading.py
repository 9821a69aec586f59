"""Config files, dotted overrides and the one-line errors for bad ones."""

import textwrap

import ml_collections
import pytest

from unified_mm.config import ConfigError, apply_overrides, load_config
from unified_mm.config.base import base_config
from unified_mm.config.validation import validate


@pytest.fixture()
def config_file(tmp_path):
  path = tmp_path / "exp.py"
  path.write_text(textwrap.dedent("""
      from unified_mm.config.base import base_config

      def get_config(arg="small"):
        c = base_config("lm")
        c.model.num_heads = {"small": 4, "big": 8}[arg]
        c.model.num_kv_heads = 2
        c.train.steps = 10
        return c
  """))
  return path


def test_variant_and_overrides(config_file):
  c = load_config(f"{config_file}:big", ["--config.train.steps=7", "--config.optim.lr=0.5",
                                         "--config.ckpt.async_save=false"])
  assert c.model.num_heads == 8
  assert c.train.steps == 7 and isinstance(c.train.steps, int)
  assert c.optim.lr == 0.5
  assert c.ckpt.async_save is False


def test_loaded_config_is_locked(config_file):
  c = load_config(str(config_file))
  with pytest.raises(AttributeError):
    c.train.new_key = 1


@pytest.mark.parametrize("override,needle", [
    ("train.stepz=5", "train.stepz: unknown config key (did you mean 'steps'?)"),
    ("trian.steps=5", "trian: unknown config key"),
    ("train.steps=abc", "train.steps=abc: expected a number"),
    ("train.steps=1.5", "train.steps=1.5: expected an integer"),
])
def test_bad_override_names_the_key(config_file, override, needle):
  with pytest.raises(ConfigError) as e:
    load_config(str(config_file), [f"--config.{override}"])
  assert needle in str(e.value)
  assert "\n" not in str(e.value)


def test_missing_file_and_variant(config_file, tmp_path):
  with pytest.raises(ConfigError, match="no such file"):
    load_config(str(tmp_path / "nope.py"))
  with pytest.raises(ConfigError, match="unknown variant"):
    load_config(f"{config_file}:huge")


def _lm(**model):
  c = base_config("lm")
  c.model = ml_collections.ConfigDict(dict(num_heads=8, num_kv_heads=4, **model))
  c.train.batch_size = 8
  return c


@pytest.mark.parametrize("overrides,needle", [
    (["mesh.data=1", "mesh.fsdp=4", "mesh.tensor=4"], "mesh has 16 devices but 8 are available"),
    (["mesh.data=-1", "mesh.fsdp=-1"], "only one axis may be -1"),
    (["mesh.data=-1", "mesh.fsdp=3"], "mesh.data=-1: the other axes multiply to 3"),
    (["mesh.data=1", "mesh.tensor=8"], "model.num_kv_heads=4: not divisible by mesh.tensor=8"),
    (["mesh.data=2", "mesh.fsdp=2", "mesh.tensor=2", "train.batch_size=6"],
     "train.batch_size=6: the micro-batch of 6 does not split over mesh data x fsdp = 4"),
])
def test_impossible_mesh_names_the_key(overrides, needle):
  c = apply_overrides(_lm(), overrides)
  with pytest.raises(ConfigError) as e:
    validate(c, 8)
  assert needle in str(e.value)


def test_heads_not_divisible_by_tensor():
  c = apply_overrides(_lm(), ["mesh.data=-1", "mesh.tensor=4"])
  c.model.num_heads = 6
  with pytest.raises(ConfigError, match=r"model.num_heads=6: not divisible by mesh.tensor=4"):
    validate(c, 8)


def test_unknown_logical_axis_and_mesh_axis():
  c = _lm()
  c.rules = c.rules + [["embedd", "fsdp"]]
  with pytest.raises(ConfigError, match="unknown logical axis name 'embedd'"):
    validate(c, 8)
  c = _lm()
  c.rules = [["embed", "fsdpp"]]
  with pytest.raises(ConfigError, match="unknown mesh axis 'fsdpp'"):
    validate(c, 8)


def test_valid_config_resolves_rest_axis():
  c = apply_overrides(_lm(), ["mesh.data=-1", "mesh.fsdp=2", "mesh.tensor=2"])
  assert validate(c, 8) == {"data": 2, "fsdp": 2, "sequence": 1, "tensor": 2}
