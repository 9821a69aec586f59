"""Pod presets: every lm.py model on the documented topologies is a valid config."""

import pytest

from unified_mm.config.loading import load_config
from unified_mm.config.validation import validate
from unified_mm.plan.hardware import parse_topology

MODELS = ["tiny", "ref", "llamagen_gpt_b", "llamagen_gpt_xl", "llamagen_gpt_3b", "chameleon_7b"]
TOPOLOGIES = ["v5p-256", "2xv5p-256", "v5e-16", "v6e-256", "v4-8", "h100-16"]


@pytest.mark.parametrize("topology", TOPOLOGIES)
@pytest.mark.parametrize("model", MODELS)
def test_pod_preset_validates_on_its_topology(model, topology):
  config = load_config(f"experiments/pods.py:{model}@{topology}")
  topo = parse_topology(topology)
  sizes = validate(config, topo.num_devices)
  assert config.topology == topology
  assert config.mesh.dcn_data == topo.num_slices
  assert sizes["data"] * sizes["fsdp"] * sizes["tensor"] * sizes["sequence"] == topo.num_devices
  assert config.train.batch_size % (sizes["data"] * sizes["fsdp"]) == 0
  if not topo.is_tpu:  # FSDP stays inside a host's NVLink domain
    assert sizes["fsdp"] == topo.chips_per_host


def test_pod_preset_needs_a_topology():
  with pytest.raises(Exception, match="<topology>"):
    load_config("experiments/pods.py:chameleon_7b")
