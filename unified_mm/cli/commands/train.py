"""`umm train --config experiments/<file>.py[:<arg>] --workdir DIR [--config.key=value ...]`

Loads the config, applies the overrides, checks it against this machine's
devices *before* anything is built or compiled, then trains (resuming if the
workdir holds a checkpoint).

Exit codes: 0 trained to `train.steps`; 75 (PREEMPTED_EXIT_CODE) stopped by
SIGTERM or Ctrl-C after saving the current step, re-run the same command to
resume; 1 diverged or a checkpoint write failed; 2 a config error, a workdir
held by another run, or checkpoints trained from another upstream checkpoint
than the one the upstream workdir now holds (train/provenance.py).
"""

from __future__ import annotations

import logging
import sys

HELP = "Train one stage from an experiment config (resumes from the workdir)."


def add_arguments(parser) -> None:
  parser.add_argument("--config", required=True,
                      help="experiments/<file>.py[:<arg>]; override keys with --config.a.b=value")
  parser.add_argument("--workdir", required=True, help="checkpoints, metrics.jsonl and tb/ go here")
  parser.add_argument("--log-level", default="INFO", help="Python log level (default INFO)")


def _setup_logging(level: str) -> None:
  logging.basicConfig(level=level.upper(), stream=sys.stderr,
                      format="%(asctime)s %(levelname).1s %(name)s] %(message)s", datefmt="%H:%M:%S")
  # Orbax logs every save step at INFO through absl; keep the trainer's lines readable.
  logging.getLogger("absl").setLevel(logging.WARNING)


def run(args) -> int:
  from unified_mm.parallel import distributed
  try:
    distributed.initialize()  # before any JAX call: joins a multi-process run (no-op alone)
  except distributed.DistributedError as e:
    print(f"umm train: distributed setup failed: {e}", file=sys.stderr)
    return 1
  from unified_mm.config.loading import load_config
  from unified_mm.config.validation import validate

  config = load_config(args.config, args.overrides)
  import jax
  validate(config, jax.device_count())
  _setup_logging(args.log_level)

  from unified_mm.train import CheckpointWriteError, TrainingDiverged
  from unified_mm.train.preemption import PREEMPTED_EXIT_CODE
  from unified_mm.train.provenance import UpstreamChanged
  try:
    state = train_stage(config, args.workdir)
  except UpstreamChanged as e:
    print(f"umm train: upstream changed: {e}", file=sys.stderr)
    return 2
  except TrainingDiverged as e:
    print(f"umm train: diverged: {e}", file=sys.stderr)
    return 1
  except CheckpointWriteError as e:
    # The last committed checkpoint is intact: rerunning resumes from it.
    print(f"umm train: checkpoint write failed: {e} (rerun to resume from the last good "
          "checkpoint)", file=sys.stderr)
    return 1
  step, total = int(jax.device_get(state.step)), int(config.train.steps)
  if step < total:  # the loop stops early only when asked to (it saved `step` first)
    print(f"umm train: preempted at step {step} of {total}; its checkpoint is saved in "
          f"{args.workdir}: re-run the same command to resume (exit code {PREEMPTED_EXIT_CODE})",
          file=sys.stderr)
    return PREEMPTED_EXIT_CODE
  return 0


def train_stage(config, workdir, *, devices=None):
  """The task `config.stage` names, handed its evaluators, trained in `workdir`:
  the CLI builds the task and gives it to the trainer. A stage reading another
  stage's workdir records that upstream checkpoint when it starts and is refused
  (UpstreamChanged) when it would resume on a different one."""
  from unified_mm.eval.stage_evaluators import make_task  # noqa: PLC0415
  from unified_mm.train import train_and_evaluate  # noqa: PLC0415
  from unified_mm.train.provenance import check_upstreams  # noqa: PLC0415
  check_upstreams(config, workdir, hint=f"move {workdir} aside (or delete it) to retrain it "
                  "from the current upstream")
  return train_and_evaluate(config, workdir, make_task(config), devices=devices)
