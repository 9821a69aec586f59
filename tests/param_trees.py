"""Model parameters as flat {"a.b.0.c": array} dicts and back, for tests that
compare or restack parameters of two layouts (scanned vs unrolled)."""

from flax import nnx


def flat_params(model) -> dict:
  """The model's params as a flat dict named like the trainer's (`blocks.0.attn.wq`)."""
  def flat(d, prefix=""):
    out = {}
    for k, v in d.items():
      out.update(flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out
  return flat(nnx.to_pure_dict(nnx.state(model, nnx.Param)))


def load_flat(model, params: dict):
  """Writes flat params into `model` (same names as `flat_params`); returns it."""
  nested = {}
  for name, value in params.items():
    *parents, leaf = [int(p) if p.isdigit() else p for p in name.split(".")]
    d = nested
    for p in parents:
      d = d.setdefault(p, {})
    d[leaf] = value
  state = nnx.state(model, nnx.Param)
  nnx.replace_by_pure_dict(state, nested)
  nnx.update(model, state)
  return model
