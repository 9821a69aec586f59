"""The script templates under the repository's top-level `launch/` directory.

Templates are `string.Template` text (`${name}` placeholders) so a user can
read, copy and edit them without knowing this package; every placeholder
must be filled (a missing one is an error). A line holding nothing but one
placeholder whose value is empty disappears, so optional lines leave no gap.
"""

from __future__ import annotations

import os
import pathlib
import re
import string

from unified_mm.launch.spec import REPO_ROOT

ENV_TEMPLATES = "UMM_LAUNCH_TEMPLATES"  # another directory of templates


def template_dir() -> pathlib.Path:
  return pathlib.Path(os.environ.get(ENV_TEMPLATES) or REPO_ROOT / "launch")


def render(template: str, /, **values) -> str:
  path = template_dir() / template
  try:
    text = path.read_text()
  except FileNotFoundError:
    raise FileNotFoundError(f"launch template {path} is missing") from None
  values = {k: str(v) for k, v in values.items()}
  lines = [line for line in text.splitlines(keepends=True)
           if not ((m := _ALONE.match(line)) and values.get(m.group(1)) == "")]
  try:
    return string.Template("".join(lines)).substitute(values)
  except KeyError as e:
    raise KeyError(f"launch template {template}: no value for ${{{e.args[0]}}}") from None


_ALONE = re.compile(r"^\s*\$\{(\w+)\}\s*$")
