"""Topology names -> chips, physical shape, hosts, HBM."""

import pytest

from unified_mm.plan.hardware import GIB, TopologyError, parse_topology


@pytest.mark.parametrize("name,chips,shape,hosts,devices", [
    ("v4-8", 4, "2x2x1", 1, 4),
    ("v5p-16", 8, "2x2x2", 2, 8),
    ("v5p-256", 128, "4x4x8", 32, 128),
    ("v5p-1024", 512, "8x8x8", 128, 512),
    ("2xv5p-256", 128, "4x4x8", 32, 256),
    ("v5e-8", 8, "2x4", 1, 8),
    ("v5e-16", 16, "4x4", 4, 16),
    ("v5litepod-256", 256, "16x16", 64, 256),
    ("v6e-256", 256, "16x16", 64, 256),
    ("h100-16", 16, "16", 2, 16),
])
def test_topologies(name, chips, shape, hosts, devices):
  t = parse_topology(name)
  assert (t.chips, t.shape_str, t.hosts_per_slice, t.num_devices) == (chips, shape, hosts, devices)


def test_hbm_per_chip():
  assert {n: parse_topology(n).chip.hbm_bytes // GIB for n in
          ("v4-8", "v5e-8", "v5p-8", "v6e-8", "h100-8")} == {
              "v4-8": 32, "v5e-8": 16, "v5p-8": 95, "v6e-8": 32, "h100-8": 80}


@pytest.mark.parametrize("bad,fragment", [
    ("v9-8", "unknown accelerator"), ("v5p-7", "per chip"), ("v5e-12", "power of two"),
    ("2xh100-16", "GPU hosts"), ("tpu", "expected e.g."),
])
def test_bad_topologies(bad, fragment):
  with pytest.raises(TopologyError, match=fragment):
    parse_topology(bad)
