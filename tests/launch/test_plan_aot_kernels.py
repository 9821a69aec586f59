"""The splash path of the real train step AOT-compiles for a v5p topology from this CPU,
with scanned layers, and the TPU kernels are in the compiled program (#19).

Needs libtpu (`pip install '.[tpu]'`); skipped with the reason without it.
"""

import pytest

from unified_mm.config.loading import load_config
from unified_mm.launch.spec import REPO_ROOT
from unified_mm.plan import aot
from unified_mm.plan.hardware import parse_topology

pytestmark = pytest.mark.skipif(not aot.libtpu_available(),
                                reason="libtpu not installed (pip install '.[tpu]')")


@pytest.fixture(scope="module")
def v5p_16():
  return aot.topology_devices(parse_topology("v5p-16"))


def compiled_text(devices, attention: str) -> str:
  c = load_config(f"{REPO_ROOT}/experiments/lm.py:tiny")
  c.model.update(scan_layers=True, attention=attention, dtype="bfloat16")
  return aot.lower_train_step(c, devices).compile().as_text()


@pytest.mark.parametrize("attention", ["splash", "auto"])
def test_splash_step_compiles_for_v5p_with_the_kernels_in_it(v5p_16, attention):
  text = compiled_text(v5p_16, attention)
  # Forward, and the backward's dq and dk/dv kernels: Mosaic custom calls named splash.
  assert text.count("tpu_custom_call") >= 3
  assert "splash" in text.lower()
  assert "while" in text  # the scanned layer stack stays a loop


def test_xla_attention_has_no_tpu_kernels(v5p_16):
  assert "tpu_custom_call" not in compiled_text(v5p_16, "xla")
