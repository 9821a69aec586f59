"""The trained tokenizer as the data pipeline's `codes_fn`.

`TokenizerCodes(workdir)(images uint8 [B, H, W, 3]) -> int32 ids [B, h, w]`,
the same interface as `unified_mm.data.stand_in_codes.StandInCodes`. The model
loads lazily on first use and is dropped when pickled, so the callable can be
handed to spawned data-loader workers (each loads its own copy).
"""

from __future__ import annotations

import pathlib

import numpy as np


class TokenizerCodes:

  def __init__(self, workdir: str | pathlib.Path):
    self.workdir = pathlib.Path(workdir)
    self._model = None
    self._encode = self._decode = None

  def _load(self):
    if self._model is None:
      import jax  # noqa: PLC0415
      from flax import nnx  # noqa: PLC0415

      from unified_mm.models.image_tokenizer.autoencoder import TokenizerAutoencoder  # noqa: PLC0415
      from unified_mm.models.image_tokenizer.layers import to_uint8  # noqa: PLC0415
      from unified_mm.models.image_tokenizer.loader import load_tokenizer  # noqa: PLC0415
      self._model, _ = load_tokenizer(self.workdir, devices=jax.local_devices()[:1])
      self._encode = nnx.jit(TokenizerAutoencoder.encode_codes)
      self._decode = nnx.jit(lambda m, ids: to_uint8(m.decode_codes(ids)))
    return self._model

  @property
  def fsq_levels(self) -> tuple[int, ...]:
    """From the saved config, without loading weights."""
    if self._model is not None:
      return self._model.fsq.levels
    from unified_mm.train.checkpoint import Checkpoints, checkpoint_dir  # noqa: PLC0415
    ckpts = Checkpoints(checkpoint_dir(self.workdir), read_only=True)
    try:
      step = ckpts.latest_step()
      if step is None:
        raise FileNotFoundError(f"{self.workdir}: no tokenizer checkpoint")
      return tuple(int(l) for l in ckpts.saved_config(step)["model"]["fsq_levels"])
    finally:
      ckpts.close()

  @property
  def codebook_size(self) -> int:
    return int(np.prod(self.fsq_levels))

  def __call__(self, images: np.ndarray) -> np.ndarray:
    from unified_mm.parallel.sharding import on_mesh, params_mesh  # noqa: PLC0415
    model = self._load()
    # Its own one-device mesh: called from the training loop (the `ar` stage's
    # input), the loop's mesh would otherwise be the context (8 devices vs 1).
    with on_mesh(params_mesh(model)):
      return np.asarray(self._encode(model, np.asarray(images)), np.int32)

  def to_image(self, codes: np.ndarray, size: int | None = None) -> np.ndarray:
    """[B, h, w] ids -> [B, H, W, 3] uint8 through the preview decoder."""
    model = self._load()
    del size  # the preview decoder's output size is fixed by the model
    from unified_mm.parallel.sharding import on_mesh, params_mesh  # noqa: PLC0415
    with on_mesh(params_mesh(model)):
      return np.asarray(self._decode(model, np.asarray(codes, np.int32)))

  def __getstate__(self):
    return {"workdir": str(self.workdir)}

  def __setstate__(self, state):
    self.__init__(state["workdir"])
