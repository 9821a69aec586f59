"""Test setup: 8 fake CPU devices so sharding is exercised for real."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
_flags = os.environ.get("XLA_FLAGS", "")
if "xla_force_host_platform_device_count" not in _flags:
  os.environ["XLA_FLAGS"] = (_flags + " --xla_force_host_platform_device_count=8").strip()

import pathlib  # noqa: E402

import pytest  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo_root() -> pathlib.Path:
  return REPO


def _subprocess_env(num_devices: int = 8) -> dict[str, str]:
  env = dict(os.environ)
  env["JAX_PLATFORMS"] = "cpu"
  flags = " ".join(f for f in env.get("XLA_FLAGS", "").split()
                   if "xla_force_host_platform_device_count" not in f)
  env["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={num_devices}".strip()
  return env


@pytest.fixture(scope="session")
def subprocess_env():
  """`subprocess_env(n)`: environment for a `umm` subprocess with n fake CPU devices."""
  return _subprocess_env


@pytest.fixture(scope="session")
def tokenizer():
  """The shapes text tokenizer every preset trains with (`data.tokenizer_dir` unset)."""
  from unified_mm.data.config import default_data_config  # noqa: PLC0415
  from unified_mm.data.pipeline import load_or_train_tokenizer  # noqa: PLC0415
  return load_or_train_tokenizer(default_data_config())
