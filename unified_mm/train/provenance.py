"""Which upstream checkpoint a stage was trained from: recorded when it starts,
checked whenever it resumes.

The transformer and the renderers read the tokenizer (`data.image_tokenizer_dir`)
at every batch: resumed on top of a tokenizer that has since trained further,
a stage would mix two code books in one set of weights. So a stage that reads
another stage's workdir writes, when it starts fresh, WORKDIR/upstream.json:

  {"version": 1,
   "upstreams": {"data.image_tokenizer_dir": {
       "workdir": "../tokenizer",   # relative to WORKDIR when it can be
       "stage": "tokenizer",         # the upstream config's `stage`
       "step": 2500,                 # its latest checkpoint when this stage started
       "hash": "sha256:..."}}}       # of that checkpoint's saved checksums

and a later start with checkpoints in WORKDIR compares the record with each
upstream's latest checkpoint: a different step or hash raises UpstreamChanged
(a ConfigError: one line, exit code 2). The paths are not compared, so a run
root moved or copied as a whole still resumes.

`ckpt.init_from` is not recorded: it is read once, to warm-start, and a resumed
run never reads it again. GRPO is the exception: its start is also its frozen
KL reference, restored again at every resume, so it is recorded there.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pathlib

import jax

from unified_mm.config.loading import ConfigError
from unified_mm.train.checkpoint import Checkpoints, checkpoint_dir, open_run

log = logging.getLogger("unified_mm.train")

RECORD_FILE = "upstream.json"
# Config keys naming another stage's workdir that this stage reads while it trains.
UPSTREAM_KEYS = ("data.image_tokenizer_dir", "data.ar_dir", "data.renderer_dir")
STAGE_UPSTREAM_KEYS = {"grpo": ("ckpt.init_from",)}  # read at every resume too (see above)


class UpstreamChanged(ConfigError):
  """A stage's checkpoints were trained from another upstream checkpoint than
  the one its upstream workdir now holds (or from one nobody recorded)."""


def checkpoint_hash(step_dir: pathlib.Path) -> str:
  """A content hash of one saved step, cheap at any model size: sha256 over the
  checksum of every array and of the data state that each save writes (the
  `digests` item, checkpoint.py). Older checkpoints without it: over the names
  and sizes of their param files."""
  h = hashlib.sha256()
  digests = step_dir / "digests"
  if digests.is_dir():
    marker = "commit_success.txt"  # Orbax's; it names the path it was written to: not content
    for p in sorted(digests.rglob("*")):
      if p.is_file() and p.name != marker:
        h.update(str(p.relative_to(step_dir)).encode() + b"\0" + p.read_bytes())
  else:
    for p in sorted((step_dir / "params").rglob("*")):
      if p.is_file():
        h.update(f"{p.relative_to(step_dir)}:{p.stat().st_size}\n".encode())
  return "sha256:" + h.hexdigest()


def _config_value(config, dotted: str) -> str:
  node = config
  for part in dotted.split("."):
    if part not in node:
      return ""
    node = node[part]
  return str(node or "")


def _relative(path: pathlib.Path, base: pathlib.Path) -> str:
  try:
    return os.path.relpath(path.absolute(), base.absolute())
  except ValueError:  # another drive: no relative path exists
    return str(path.absolute())


def current_upstreams(config, workdir) -> dict[str, dict]:
  """{config key: record} of the latest checkpoint of every upstream workdir the
  config names. An upstream without a checkpoint is left to the task to refuse."""
  out = {}
  for key in UPSTREAM_KEYS + STAGE_UPSTREAM_KEYS.get(str(config.get("stage", "")), ()):
    value = _config_value(config, key)
    if not value or not checkpoint_dir(value).is_dir():
      continue
    try:
      with open_run(value) as (ckpts, step, saved):
        out[key] = {"workdir": _relative(pathlib.Path(value), pathlib.Path(workdir)),
                    "stage": str(saved.get("stage", "")), "step": int(step),
                    "hash": checkpoint_hash(ckpts.directory / str(step))}
    except FileNotFoundError:
      continue
  return out


def latest_step(workdir) -> int | None:
  """The stage's own latest complete checkpoint, or None."""
  if not checkpoint_dir(workdir).is_dir():
    return None
  ckpts = Checkpoints(checkpoint_dir(workdir), read_only=True)
  try:
    return ckpts.latest_step()
  finally:
    ckpts.close()


def read_record(workdir) -> dict | None:
  path = pathlib.Path(workdir) / RECORD_FILE
  try:
    return json.loads(path.read_text())["upstreams"]
  except FileNotFoundError:
    return None
  except (ValueError, KeyError, TypeError):  # edited out of shape: it records nothing
    return {}


def write_record(workdir, upstreams: dict[str, dict]) -> None:
  if jax.process_index() != 0:  # one writer per job: every process shares the workdir
    return
  path = pathlib.Path(workdir) / RECORD_FILE
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_name(path.name + ".tmp")
  record = {"version": 1, "upstreams": upstreams}
  tmp.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
  tmp.replace(path)  # atomic: a kill leaves the old record or the new one


def _describe(u: dict) -> str:
  return f"{u.get('stage') or 'upstream'} step {u.get('step')} ({str(u.get('hash', ''))[7:19]})"


def reconcile(config, workdir, *, unrecorded: str = "adopt") -> str | None:
  """Records the current upstreams of a stage with no checkpoint yet; for one
  with checkpoints, says why they disagree with the upstreams' latest (None: they agree).

  `unrecorded`: what a stage with checkpoints but no record means (trained
  before records were kept): "adopt" records the current upstreams with a
  warning; "refuse" counts it as a disagreement.
  """
  workdir = pathlib.Path(workdir)
  current = current_upstreams(config, workdir)
  if not current:
    return None
  mine = latest_step(workdir)
  if mine is None:  # starting fresh: from exactly these upstream checkpoints
    write_record(workdir, current)
    return None
  recorded = read_record(workdir)
  if not recorded and unrecorded == "adopt":
    log.warning("%s: step %d has no record of its upstreams; recording the current ones (%s)",
                workdir, mine, ", ".join(_describe(u) for u in current.values()))
    write_record(workdir, current)
    return None
  key = next((k for k, u in current.items()
              if not recorded or (recorded.get(k, {}).get("step"), recorded.get(k, {}).get("hash"))
              != (u["step"], u["hash"])), None)
  if key is None:
    return None
  now = f"{_config_value(config, key)} now holds {_describe(current[key])}"
  if not recorded:
    return (f"{workdir} has checkpoints (step {mine}) but no record ({RECORD_FILE}) of the "
            f"{current[key]['stage'] or 'upstream'} checkpoint it was trained from; {now}")
  return f"{workdir} (step {mine}) was trained from {_describe(recorded.get(key, {}))}, but {now}"


def check_upstreams(config, workdir, *, hint: str, unrecorded: str = "adopt") -> None:
  """Raises UpstreamChanged (the disagreement, then `hint`) or records/accepts."""
  why = reconcile(config, workdir, unrecorded=unrecorded)
  if why:
    raise UpstreamChanged(f"{why}: {hint}")
