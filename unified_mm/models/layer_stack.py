"""Scanned layer stacks: L identical blocks held as one module whose parameters
carry a leading `layers` axis, applied with `jax.lax.scan`.

    stack = create_stack(lambda rngs: Block(..., rngs=rngs), num_layers, rngs)
    x, ys = scan_stack(stack, step, x, xs, remat="full")   # step(block, x, x_l) -> (x, y_l)

Why: an unrolled Python loop hands XLA L copies of the block to compile; a
scan hands it one, so compile time stops growing with depth (MaxText scans by
default for this reason; its `layers/nnx_decoders.py` scans split NNX params
the same way). The `layers` logical axis is added to every parameter's
`out_sharding` by `nnx.vmap(transform_metadata=...)` at construction, so the
config's rules name it like any other axis (default: not sharded).

Remat is applied to the scanned body, per layer: the policies below are the
useful subset of MaxText's (`none`, `full`, `minimal` ~ `dots`, ...).

Checkpoint names: an unrolled stack's parameters are `<attr>.<i>.<path>`
(e.g. `blocks.3.attn.wq`, [D, N, H]); a scanned one's `layers.<path>`
(`layers.attn.wq`, [L, D, N, H]). `stack_params` / `unstack_params` convert a
flat parameter dict between the two, so either layout restores from the other. The optimiser's weight-decay mask
(train/optim.py `stacked_dims`) reads the same naming: a `layers` part not
followed by an index carries the layer axis.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import jax
import jax.numpy as jnp
from flax import nnx

LAYERS_AXIS = "layers"   # the logical axis name of the stacked dimension
STACK_ATTR = "layers"    # the attribute a model keeps its scanned stack in

# Names an activation can be saved under (jax.ad_checkpoint.checkpoint_name).
QKV_NAMES = ("query_proj", "key_proj", "value_proj")
ATTENTION_OUT = "attention_out"

REMAT_POLICIES = {
    # keep every activation: fastest, most memory
    "none": None,
    # keep nothing but the layer's input: the block's forward runs twice
    "full": jax.checkpoint_policies.nothing_saveable,
    # keep the weight matmuls' outputs (MaxText "minimal"): recompute the
    # elementwise ops and the attention (its dots carry the batch dimension)
    "dots": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
    # keep every matmul's output, the attention scores and context included
    "dots_saveable": jax.checkpoint_policies.dots_saveable,
    # keep q, k, v and the attention output: recompute the MLP and the
    # softmax (MaxText "save_qkv_proj" + "save_out_proj"-like)
    "save_attention": jax.checkpoint_policies.save_only_these_names(
        *QKV_NAMES, ATTENTION_OUT),
}


def check_remat(remat: str) -> None:
  if remat not in REMAT_POLICIES:
    raise ValueError(f"remat={remat!r}: expected one of {sorted(REMAT_POLICIES)}")


def create_stack(make_layer: Callable[[nnx.Rngs], nnx.Module], num_layers: int,
                 rngs: nnx.Rngs) -> nnx.Module:
  """`num_layers` independent initialisations of `make_layer` as one module with
  parameters [L, ...] whose `out_sharding` starts with `layers`."""

  @nnx.split_rngs(splits=num_layers)
  @nnx.vmap(in_axes=(0,), out_axes=0, transform_metadata={nnx.PARTITION_NAME: LAYERS_AXIS})
  def make(rngs):
    return make_layer(rngs)

  return make(rngs)


def scan_stack(stack: nnx.Module, step: Callable, carry, xs=None, *, remat: str = "none"):
  """Applies the stacked layers in order: `step(layer, carry, x_l) -> (carry, y_l)`.

  `xs` (a pytree with a leading L axis, or None) is sliced per layer; the `y_l`
  are stacked on a leading L axis. The layer handed to `step` is the stack's
  module with one layer's slice of every parameter. Layers hold parameters
  only (no mutable state), so nothing is written back to `stack`.
  """
  graphdef, state = nnx.split(stack)

  def body(carry, inputs):
    layer_state, x = inputs
    # The slices keep the stack's metadata (`out_sharding` names `layers`);
    # nothing reads it inside the step, which sees plain [D, ...] values.
    return step(nnx.merge(graphdef, layer_state), carry, x)

  if remat != "none":
    body = jax.checkpoint(body, policy=REMAT_POLICIES[remat], prevent_cse=False)
  return jax.lax.scan(body, carry, (state, xs))


# -- checkpoint layouts ---------------------------------------------------------


def stack_params(params: Mapping[str, jax.Array], unrolled_attr: str,
                 stacked_attr: str = STACK_ATTR) -> dict[str, jax.Array]:
  """Flat params with `<prefix><unrolled_attr>.<i>.<path>` -> `<prefix><stacked_attr>.<path>` [L, ...]."""
  out, groups = {}, {}
  for name, value in params.items():
    m = _match_layer(name, unrolled_attr)
    if m is None:
      out[name] = value
      continue
    prefix, index, rest = m
    groups.setdefault(f"{prefix}{stacked_attr}.{rest}", {})[index] = value
  for name, layers in groups.items():
    if sorted(layers) != list(range(len(layers))):
      raise ValueError(f"{name}: layers {sorted(layers)} are not 0..{len(layers) - 1}")
    out[name] = jnp.stack([layers[i] for i in range(len(layers))])
  return out


def unstack_params(params: Mapping[str, jax.Array], unrolled_attr: str,
                   stacked_attr: str = STACK_ATTR) -> dict[str, jax.Array]:
  """The inverse of `stack_params`."""
  out = {}
  for name, value in params.items():
    parts = name.split(".")
    if stacked_attr in parts and not _indexed(parts, parts.index(stacked_attr)):
      i = parts.index(stacked_attr)
      prefix, rest = ".".join(parts[:i]), ".".join(parts[i + 1:])
      for layer in range(value.shape[0]):
        out[".".join(p for p in (prefix, unrolled_attr, str(layer), rest) if p)] = value[layer]
    else:
      out[name] = value
  return out


def _indexed(parts: list[str], i: int) -> bool:
  return i + 1 < len(parts) and parts[i + 1].isdigit()


def _match_layer(name: str, attr: str):
  parts = name.split(".")
  for i, part in enumerate(parts):
    if part == attr and _indexed(parts, i):
      prefix = ".".join(parts[:i])
      return (prefix + "." if prefix else ""), int(parts[i + 1]), ".".join(parts[i + 2:])
  return None
