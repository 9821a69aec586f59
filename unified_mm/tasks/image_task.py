"""What the image stages' tasks (tokenizer, renderer, latent decoder) share.

The trainer binds a workdir, where the stage writes its image grids and latent
statistics. The evaluators are built once, since building them renders or
samples held-out scenes: a real source's own (`_real_evaluators`), else those
handed in by the experiment (`make_evaluators(task)`).
"""

from __future__ import annotations

import pathlib

from unified_mm.tasks.image_data import is_real


class ImageTask:

  def __init__(self, config, make_evaluators=None):
    self.config = config
    self.workdir: pathlib.Path | None = None
    self.make_evaluators = make_evaluators
    self._evaluators = None

  def bind_workdir(self, workdir) -> None:
    self.workdir = pathlib.Path(workdir)

  def evaluators(self) -> list:
    if self._evaluators is None and is_real(self.config.data):
      self._evaluators = self._real_evaluators()
    if self._evaluators is None:
      self._evaluators = list(self.make_evaluators(self)) if self.make_evaluators else []
    return self._evaluators

  def _real_evaluators(self) -> list | None:
    """The evaluators of a real data source; None: the handed-in ones serve."""
    return None
