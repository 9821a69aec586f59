"""Loads `experiments/<file>.py[:<arg>]` and applies `--config.a.b=value` overrides.

Configs are locked after loading: an override can change a value but never
invent a key, so a typo fails at once with a message naming it.
"""

from __future__ import annotations

import ast
import difflib
import importlib.util
import os
from collections.abc import Sequence

import ml_collections


class ConfigError(ValueError):
  """A bad config: the message names the offending key and value."""


def _split_spec(spec: str) -> tuple[str, str | None]:
  path, sep, arg = spec.partition(".py:")
  if sep:
    return path + ".py", arg
  return spec, None


def load_config(spec: str, overrides: Sequence[str] = ()) -> ml_collections.ConfigDict:
  """`spec` is `path/to/file.py` or `path/to/file.py:arg` (passed to get_config)."""
  path, arg = _split_spec(spec)
  if not os.path.exists(path):
    raise ConfigError(f"--config={spec}: no such file {path}")
  module_spec = importlib.util.spec_from_file_location(
      f"umm_experiment_{os.path.basename(path)[:-3]}", path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  try:
    config = module.get_config(arg) if arg is not None else module.get_config()
  except KeyError as e:
    raise ConfigError(f"--config={spec}: unknown variant {e}") from None
  config = apply_overrides(config, overrides)
  config.lock()
  return config


def _parse_value(name: str, text: str, current):
  if isinstance(current, bool):
    if text.lower() in ("true", "1", "yes"):
      return True
    if text.lower() in ("false", "0", "no"):
      return False
    raise ConfigError(f"{name}={text}: expected a bool")
  if isinstance(current, (int, float)) and not isinstance(current, bool):
    try:
      value = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
      raise ConfigError(f"{name}={text}: expected a number") from None
    # Any other literal ([1], None, True) is a wrong type, not a number to cast.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
      raise ConfigError(f"{name}={text}: expected a number")
    if isinstance(current, int) and isinstance(value, float) and not value.is_integer():
      raise ConfigError(f"{name}={text}: expected an integer")
    try:
      return type(current)(value)
    except OverflowError:  # int(inf)
      raise ConfigError(f"{name}={text}: expected a finite number") from None
  if isinstance(current, str):
    return text
  try:
    value = ast.literal_eval(text)
  except (ValueError, SyntaxError):
    value = text
  if isinstance(current, tuple) and isinstance(value, list):
    value = tuple(value)
  return value


def _unknown(name: str, node: ml_collections.ConfigDict, leaf: str) -> ConfigError:
  close = difflib.get_close_matches(leaf, list(node.keys()), n=1)
  hint = f" (did you mean '{close[0]}'?)" if close else ""
  return ConfigError(f"{name}: unknown config key{hint}")


def apply_overrides(config: ml_collections.ConfigDict, overrides: Sequence[str],
                    flag: str = "--config.") -> ml_collections.ConfigDict:
  """Applies `a.b=value` strings (with or without a leading `--config.`); an error
  names the key as the user typed it, `flag` first (`--config.ar.` for `umm demo`'s
  per-stage overrides)."""
  config = ml_collections.ConfigDict(config)  # unlocked copy
  for item in overrides:
    item = item.removeprefix("--").removeprefix("config.")
    key, sep, text = item.partition("=")
    if not sep:
      raise ConfigError(f"{flag}{key}: expected {flag}{key}=VALUE")
    *parents, leaf = key.split(".")
    node = config
    for i, part in enumerate(parents):
      if part not in node or not isinstance(node[part], ml_collections.ConfigDict):
        raise _unknown(flag + ".".join(parents[: i + 1]), node, part)
      node = node[part]
    if leaf not in node:
      raise _unknown(flag + key, node, leaf)
    value = _parse_value(flag + key, text, node[leaf])
    with node.ignore_type():
      node[leaf] = value
  return config
