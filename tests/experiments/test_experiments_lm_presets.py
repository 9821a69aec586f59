"""experiments/lm.py: parameter counts from jax.eval_shape vs the papers; validation."""

import importlib.util

import pytest

from unified_mm.config.loading import load_config
from unified_mm.config.validation import validate
from unified_mm.models.transformer.params import count_params, param_formula


def _module(repo_root):
  spec = importlib.util.spec_from_file_location("lm_presets", repo_root / "experiments/lm.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def llamagen_exact(dim, n_layer, cond_params, vocab=16384):
  """LlamaGen's own count (autoregressive/models/gpt.py), written independently:
  wqkv + wo, FeedForward w1/w2/w3 at find_multiple(int(8D/3), 256), two RMSNorms
  per block, tok_embeddings + output (untied), final norm, + its conditioning table."""
  hidden = int(2 * 4 * dim / 3)
  hidden = hidden if hidden % 256 == 0 else hidden + 256 - hidden % 256
  block = 4 * dim * dim + 3 * dim * hidden + 2 * dim
  return n_layer * block + 2 * vocab * dim + dim + cond_params


# variant: (published params, plausible device count for validation)
PUBLISHED = {
    "llamagen_gpt_b": (111e6, 8),
    "llamagen_gpt_l": (343e6, 16),
    "llamagen_gpt_xl": (775e6, 32),
    "llamagen_gpt_xxl": (1.4e9, 64),
    "llamagen_gpt_3b": (3.1e9, 128),
    "chameleon_7b": (7.0e9, 256),
    "chameleon_34b": (34e9, 256),
    "unified_70b": (68.98e9 + 2 * (65536 - 32000) * 8192, 256),  # Llama-2-70B + the vocab
}


@pytest.mark.parametrize("variant", sorted(PUBLISHED))
def test_published_parameter_counts(repo_root, variant):
  config = load_config(f"{repo_root}/experiments/lm.py:{variant}")
  n = count_params(config.model)  # nnx.eval_shape: nothing is allocated
  published, devices = PUBLISHED[variant]
  assert abs(n - published) / published < 0.01, (variant, n, published)
  assert n == param_formula(**config.model)
  if variant.startswith("llamagen"):
    d, layers, _, _ = _module(repo_root).LLAMAGEN[variant.rsplit("_", 1)[1]]
    # c2i: class embedding (1000 classes + 1 CFG null) x D; 3B (t2i): caption MLP 2048->D->D.
    cond = 2048 * d + d * d if variant.endswith("3b") else 1001 * d
    qk_norm = layers * 2 * (d // config.model.num_heads)
    assert n == llamagen_exact(d, layers, cond) - cond + qk_norm
  validate(config, devices)


@pytest.mark.parametrize("variant", ["tiny", "ref", "tiny,runlocal", "llamagen_gpt_xl,runlocal"])
def test_small_presets_validate(repo_root, variant):
  config = load_config(f"{repo_root}/experiments/lm.py:{variant}")
  for devices in (1, 8):
    validate(config, devices)
  assert count_params(config.model) < 50e6


def test_ref_shape_is_the_benchmark_shape(repo_root):
  m = load_config(f"{repo_root}/experiments/lm.py:ref").model
  assert (m.vocab_size, m.d_model, m.num_layers, m.num_heads, m.head_dim, m.mlp_dim) == (
      8192, 512, 8, 8, 64, 2048)
