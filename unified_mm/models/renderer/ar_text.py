"""Text embeddings from the frozen unified transformer (`text_source="ar"`).

The prompt is fed as the AR stage reads it in a caption->image document,
`BOS text`, and the final-norm hidden states of those positions become the
renderer's text context. They are computed here, on the host's device and
outside any gradient, both for training batches and at generation time.

    states, mask = ArTextEncoder(ar_stage, text_len)(["a red circle"])   # [B, L, D_ar]
"""

from __future__ import annotations

import numpy as np
from flax import nnx

from unified_mm.parallel.sharding import on_mesh, params_mesh


class ArTextEncoder:

  def __init__(self, ar_stage, text_len: int):
    self.ar = ar_stage
    self.text_len = text_len
    self.dim = int(ar_stage.model.d_model)
    self._hidden = nnx.jit(lambda m, t, p, s: m.hidden_states(t, p, s))
    self._mesh = params_mesh(ar_stage.model)

  def __call__(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(states float32 [B, L, D_ar], mask bool [B, L]); L = text_len, right-padded."""
    v = self.ar.vocab
    tokens = np.full((len(texts), self.text_len), v.pad, np.int32)
    mask = np.zeros((len(texts), self.text_len), bool)
    for i, t in enumerate(texts):
      ids = np.concatenate([[v.bos], self.ar.text.encode(t)])[:self.text_len]
      tokens[i, :len(ids)] = ids
      mask[i, :len(ids)] = True
    positions = np.broadcast_to(np.arange(self.text_len, dtype=np.int32), tokens.shape)
    with on_mesh(self._mesh):
      states = self._hidden(self.ar.model, tokens, positions, mask.astype(np.int32))
    return np.asarray(states, np.float32), mask
