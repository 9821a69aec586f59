"""`umm <command> ...`: dispatches to `unified_mm.cli.commands.<command>`.

Subcommand modules are imported lazily so `umm --help` stays fast and a
command's heavy imports (JAX, Grain, TFDS) load only when it runs: each
module's top level holds only its HELP line and argument list.

A user's mistake (a missing file, an empty prompt, a run root without a stage)
is a `UsageError` or a `ConfigError`: one line on stderr, exit code 2, never a
traceback.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import pkgutil
import sys

from unified_mm.cli import commands
from unified_mm.config.loading import ConfigError


class UsageError(Exception):
  """Bad command-line input: the message names the argument and what to give instead."""


def _command_names() -> list[str]:
  return sorted(m.name for m in pkgutil.iter_modules(commands.__path__) if not m.name.startswith("_"))


def _version() -> str:
  from importlib import metadata  # noqa: PLC0415
  try:
    return metadata.version("unified_mm")
  except metadata.PackageNotFoundError:  # a source tree on sys.path, never installed
    return "unknown (not installed)"


def _help(names: list[str]) -> str:
  width = max(map(len, names))
  lines = [f"usage: umm {{{','.join(names)}}} ... (umm <command> --help for its options)", "",
           "commands:"]
  for name in names:
    module = importlib.import_module(f"unified_mm.cli.commands.{name}")
    lines.append(f"  {name:<{width}}  {module.HELP}")
  lines += ["", "  --version  print the version", "  --help     print this list"]
  return "\n".join(lines)


def _split_overrides(argv: list[str]) -> tuple[list[str], list[str]]:
  """Separates `--config.a.b=v` (and `--config.a.b v`) from the other flags."""
  rest, overrides = [], []
  i = 0
  while i < len(argv):
    arg = argv[i]
    if arg.startswith("--config."):
      if "=" not in arg and i + 1 < len(argv):
        arg = f"{arg}={argv[i + 1]}"
        i += 1
      overrides.append(arg)
    else:
      rest.append(arg)
    i += 1
  return rest, overrides


def main(argv: list[str] | None = None) -> int:
  argv = list(sys.argv[1:] if argv is None else argv)
  names = _command_names()
  if argv and argv[0] in ("-h", "--help"):
    print(_help(names))
    return 0
  if argv and argv[0] in ("-V", "--version"):
    print(f"umm (unified_mm) {_version()}")
    return 0
  if not argv:  # nothing asked: the list, but nothing was done
    print(_help(names), file=sys.stderr)
    return 2
  if argv[0] not in names:
    near = difflib.get_close_matches(argv[0], names, n=1)
    hint = f"did you mean {near[0]!r}? " if near else ""
    print(f"umm: unknown command {argv[0]!r}; {hint}`umm --help` lists the commands",
          file=sys.stderr)
    return 2
  module = importlib.import_module(f"unified_mm.cli.commands.{argv[0]}")
  parser = argparse.ArgumentParser(prog=f"umm {argv[0]}", description=module.HELP)
  module.add_arguments(parser)
  rest, overrides = _split_overrides(argv[1:])
  args = parser.parse_args(rest)
  args.overrides = overrides
  try:
    return int(module.run(args) or 0)
  except ConfigError as e:
    print(f"umm {argv[0]}: config error: {e}", file=sys.stderr)
    return 2
  except UsageError as e:
    print(f"umm {argv[0]}: {e}", file=sys.stderr)
    return 2


if __name__ == "__main__":
  # `python -m unified_mm.cli.main` runs this file as `__main__`, a second copy
  # beside the `unified_mm.cli.main` the commands import UsageError from: run the
  # canonical module's main so its `except UsageError` is the class they raise.
  from unified_mm.cli.main import main as _main
  sys.exit(_main())
