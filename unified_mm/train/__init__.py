"""The generic trainer: one loop for every stage (see `trainer.py`)."""

from unified_mm.train.checkpoint import CheckpointWriteError
from unified_mm.train.trainer import TrainingDiverged, train_and_evaluate
from unified_mm.train.workdir_lock import WorkdirLocked

__all__ = ["CheckpointWriteError", "TrainingDiverged", "WorkdirLocked", "train_and_evaluate"]
