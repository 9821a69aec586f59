"""Config fuzz (property-based): wrong keys, wrong types, negative or zero
sizes, impossible meshes and batch splits give one line, a ConfigError naming
the key, before anything is built or compiled; never a traceback from JAX.

The properties run `load_config` + `validate` only (what `umm train` does
before it builds anything) on `experiments/lm.py:tiny` and 8 devices. Meshes,
head counts, batch and sequence splits are checked against an oracle of what
sharding on 8 devices needs, on meshes that fit as well as ones that do not.
"""

import functools
import pathlib
import string

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from unified_mm.config.loading import ConfigError, load_config
from unified_mm.config.validation import POSITIVE_MODEL_KEYS, validate

SPEC = f"{pathlib.Path(__file__).resolve().parents[2] / 'experiments' / 'lm.py'}:tiny"
DEVICES = 8
FAST = settings(max_examples=150, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])


def _base():
  return load_config(SPEC)


def _leaves(config, prefix=""):
  for key, value in config.items():
    if hasattr(value, "items"):
      yield from _leaves(value, f"{prefix}{key}.")
    else:
      yield f"{prefix}{key}", value


@functools.cache
def _base_leaves() -> dict:
  return dict(_leaves(_base()))


def _outcome(overrides, num_devices=DEVICES):
  """None if the config is accepted, else the ConfigError's message (any other
  exception fails the test with its traceback)."""
  try:
    validate(load_config(SPEC, overrides), num_devices, num_processes=1)
  except ConfigError as e:
    message = str(e)
    assert "\n" not in message, message
    return message
  return None


INT_KEYS = ["train.steps", "train.batch_size", "train.grad_accum_steps", "train.log_every_steps",
            "train.eval_every_steps", "ckpt.save_every_steps", "ckpt.max_to_keep",
            "optim.warmup_steps", "seed", "data.seq_len", "mesh.data", "mesh.fsdp",
            "mesh.tensor", "mesh.sequence", "mesh.dcn_data",
            *(f"model.{k}" for k in ("d_model", "head_dim", "mlp_dim", "num_heads",
                                     "num_kv_heads", "num_layers", "vocab_size", "max_len"))]
FLOAT_KEYS = ["optim.lr", "optim.b1", "optim.b2", "optim.eps", "optim.weight_decay",
              "optim.clip_norm", "optim.ema_decay", "optim.min_lr_ratio"]
BOOL_KEYS = ["train.progress", "ckpt.async_save", "ckpt.init_partial"]
CHOICE_KEYS = ["optim.decay", "ckpt.keep_best_mode"]
JUNK = st.one_of(st.text(string.ascii_letters + "_-/ ", min_size=1, max_size=8),
                 st.sampled_from(["", "1.5", "2.0e0", "-", "0x", "1_0_", "--", "true", "nan", "inf"]))


@FAST
@given(section=st.sampled_from(["train", "optim", "ckpt", "mesh", "model", "data", "loss"]),
       name=st.text(string.ascii_lowercase + "_", min_size=1, max_size=12), value=st.integers())
def test_unknown_keys_are_named(section, name, value):
  key = f"{section}.{name}"
  assume(key not in _base_leaves() and not any(k.startswith(key + ".") for k in _base_leaves()))
  message = _outcome([f"--config.{key}={value}"])
  assert message is not None and f"--config.{key}: unknown config key" in message, message


@FAST
@given(key=st.sampled_from(INT_KEYS + FLOAT_KEYS + BOOL_KEYS), text=JUNK)
def test_wrong_types_are_named(key, text):
  current = _base_leaves()[key]
  if isinstance(current, bool):
    assume(text.lower() not in ("true", "false", "1", "0", "yes", "no"))
  elif isinstance(current, float):
    assume(text not in ("1.5", "2.0e0"))
  else:
    assume(text not in ("2.0e0",))
  message = _outcome([f"--config.{key}={text}"])
  assert message is not None and key in message, (key, text, message)


@FAST
@given(key=st.sampled_from(CHOICE_KEYS), text=st.text(string.ascii_letters, max_size=8))
def test_unknown_choices_are_named(key, text):
  assume(text not in ("cosine", "linear", "constant", "min", "max"))
  message = _outcome([f"--config.{key}={text}"])
  assert message is not None and key in message, message


POSITIVE = ["train.batch_size", "train.grad_accum_steps", "ckpt.max_to_keep", "data.seq_len",
            *(f"model.{k}" for k in sorted(POSITIVE_MODEL_KEYS)
              if k in ("d_model", "head_dim", "mlp_dim", "num_heads", "num_kv_heads",
                       "num_layers", "vocab_size", "max_len"))]
NON_NEGATIVE = ["train.steps", "train.log_every_steps", "train.eval_every_steps",
                "ckpt.save_every_steps", "optim.warmup_steps", "seed"]


@FAST
@given(key=st.sampled_from(POSITIVE + NON_NEGATIVE), value=st.integers(max_value=0))
def test_negative_and_zero_sizes_are_named(key, value):
  assume(value < 0 or key in POSITIVE)
  message = _outcome([f"--config.{key}={value}"])
  assert message is not None and key in message, (key, value, message)


@FAST
@given(key=st.sampled_from(FLOAT_KEYS), value=st.floats(allow_nan=False, allow_infinity=False,
                                                        max_value=-1e-9))
def test_negative_rates_are_named(key, value):
  message = _outcome([f"--config.{key}={value!r}"])
  assert message is not None and key in message, (key, value, message)


def _mesh_oracle(data, fsdp, tensor, sequence, batch, accum, heads, kv_heads, seq_len):
  """What a mesh and batch split must satisfy on 8 devices (None: valid)."""
  sizes = dict(data=data, fsdp=fsdp, tensor=tensor, sequence=sequence)
  wild = [a for a, s in sizes.items() if s == -1]
  if len(wild) > 1 or any(s == 0 or s < -1 for s in sizes.values()):
    return "mesh"
  fixed = 1
  for s in sizes.values():
    fixed *= s if s != -1 else 1
  if wild:
    if DEVICES % fixed:
      return "mesh"
    sizes[wild[0]] = DEVICES // fixed
  elif fixed != DEVICES:
    return "mesh"
  if heads % sizes["tensor"] or kv_heads % sizes["tensor"] or heads % kv_heads:
    return "heads"
  if batch % accum or (batch // accum) % (sizes["data"] * sizes["fsdp"]):
    return "batch"
  if seq_len % sizes["sequence"]:
    return "seq_len"
  return None


MESH_CASE = dict(
    data=st.integers(-2, 9), fsdp=st.integers(-2, 9), tensor=st.integers(-1, 8),
    sequence=st.sampled_from([1, 1, 1, 2, -1]), batch=st.integers(1, 48),
    accum=st.sampled_from([1, 1, 2, 3, 4]), heads=st.sampled_from([1, 2, 3, 4, 6, 8]),
    kv_heads=st.sampled_from([1, 2, 3, 4]), seq_len=st.sampled_from([63, 64, 128]))


def _mesh_overrides(data, fsdp, tensor, sequence, batch, accum, heads, kv_heads, seq_len):
  return [f"--config.mesh.data={data}", f"--config.mesh.fsdp={fsdp}",
          f"--config.mesh.tensor={tensor}", f"--config.mesh.sequence={sequence}",
          f"--config.train.batch_size={batch}", f"--config.train.grad_accum_steps={accum}",
          f"--config.model.num_heads={heads}", f"--config.model.num_kv_heads={kv_heads}",
          f"--config.data.seq_len={seq_len}"]


def _agrees_with_the_oracle(case):
  expected = _mesh_oracle(**case)
  message = _outcome(_mesh_overrides(**case))
  if expected is None:
    assert message is None, (case, message)
  else:
    assert message is not None, (case, expected)
    named = {"mesh": "mesh.", "heads": "heads", "batch": "train.batch_size",
             "seq_len": "data.seq_len"}[expected]
    assert named in message, (case, message)
  return expected


@FAST
@given(**MESH_CASE)
def test_impossible_meshes_and_batch_splits_are_refused_and_possible_ones_accepted(**case):
  _agrees_with_the_oracle(case)


# Most meshes drawn above do not fit 8 devices, so the head, batch and sequence
# splits are rarely reached; here every mesh fits (one axis perhaps given as -1).
FITTING_MESHES = [(d, f, t, s) for d in (1, 2, 4, 8) for f in (1, 2, 4, 8) for t in (1, 2, 4, 8)
                  for s in (1, 2) if d * f * t * s == DEVICES]


@FAST
@given(mesh=st.sampled_from(FITTING_MESHES), wild=st.sampled_from([None, 0, 1, 2, 3]),
       **{k: v for k, v in MESH_CASE.items() if k not in ("data", "fsdp", "tensor", "sequence")})
def test_head_batch_and_sequence_splits_on_fitting_meshes_agree_with_the_oracle(mesh, wild, **case):
  axes = [-1 if i == wild else n for i, n in enumerate(mesh)]
  _agrees_with_the_oracle(dict(zip(("data", "fsdp", "tensor", "sequence"), axes), **case))


@FAST
@given(key=st.sampled_from(["train.steps", "train.batch_size", "mesh.data", "optim.lr",
                            "ckpt.async_save", "seed", "model.num_layers", "optim.decay"]),
       value=st.one_of(st.text(max_size=4), st.lists(st.integers(), max_size=2), st.none(),
                       st.floats(allow_nan=False), st.booleans()))
def test_wrong_types_set_from_python_are_named(key, value):
  """A config built in Python skips the override parser: validate checks types itself."""
  config = _base()
  current = _base_leaves()[key]
  *parents, leaf = key.split(".")
  node = config
  for p in parents:
    node = node[p]
  with config.unlocked(), node.ignore_type():
    node[leaf] = value
  stored = node[leaf]  # ConfigDict casts some values itself (False -> 0.0 for a float)
  is_int = lambda v: isinstance(v, int) and not isinstance(v, bool)  # noqa: E731
  if isinstance(current, bool):
    assume(not isinstance(stored, bool))
  elif isinstance(current, int):
    assume(not is_int(stored))
  elif isinstance(current, float):
    assume(not (isinstance(stored, (int, float)) and not isinstance(stored, bool)))
  elif isinstance(current, str):
    assume(not isinstance(stored, str))
  with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
    validate(config, DEVICES, num_processes=1)


@pytest.mark.parametrize("rules", ["batch", [["batch"]], [[1, "data"]], [["batch", 3]], [None]])
def test_malformed_rules_are_named(rules):
  config = _base()
  with config.unlocked(), config.ignore_type():
    config.rules = rules
  with pytest.raises(ConfigError, match=r"^rules"):
    validate(config, DEVICES, num_processes=1)


def test_batch_must_split_over_processes():
  with pytest.raises(ConfigError, match=r"train\.batch_size=16: not divisible by the 3 processes"):
    validate(_base(), 3, num_processes=3)


@pytest.mark.parametrize("text", ["[1]", "None", "(1, 2)", "{}", "True", "1e999"])
def test_non_number_literals_for_a_number_key_are_named(text):
  message = _outcome([f"--config.train.steps={text}"])
  assert message is not None and "train.steps" in message, message


def test_every_preset_passes_the_value_checks():
  """The checks refuse nothing a shipped preset uses (e.g. the renderer's ar_dim=0)."""
  import sys  # noqa: PLC0415
  sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "experiments"))
  from test_experiments_all import CASES  # noqa: PLC0415

  from unified_mm.config.validation import (POSITIVE_DATA_KEYS,  # noqa: PLC0415
                                            validate_sections, validate_sizes)
  for path, variant in CASES:
    config = load_config(f"{path}:{variant}" if variant else str(path))
    validate_sections(config)
    validate_sizes(config.model, "model", POSITIVE_MODEL_KEYS)
    validate_sizes(config.data, "data", POSITIVE_DATA_KEYS)
