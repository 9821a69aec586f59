"""`umm <command> ...`: dispatches to `unified_mm.cli.commands.<command>`.

Subcommand modules are imported lazily so `umm --help` stays fast and a
command's heavy imports (JAX, Grain, TFDS) load only when it runs.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from unified_mm.cli import commands
from unified_mm.config.loading import ConfigError


def _command_names() -> list[str]:
  return sorted(m.name for m in pkgutil.iter_modules(commands.__path__) if not m.name.startswith("_"))


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
  if not argv or argv[0] in ("-h", "--help") or argv[0] not in names:
    print("usage: umm {" + ",".join(names) + "} ...", file=sys.stderr)
    if argv and argv[0] not in ("-h", "--help"):
      print(f"umm: unknown command {argv[0]!r}", file=sys.stderr)
      return 2
    return 0
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


if __name__ == "__main__":
  sys.exit(main())
