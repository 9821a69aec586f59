"""The generic trainer: one loop for every stage (see `trainer.py`)."""

from unified_mm.train.trainer import TrainingDiverged, train_and_evaluate

__all__ = ["TrainingDiverged", "train_and_evaluate"]
