"""Golden parameter shardings per pod preset (MaxText's sharding_compare_test idea):
every parameter's shape, logical axes and mesh PartitionSpec, from `eval_shape`
of the task's model and the preset's own rules and mesh. A preset change that
moves a parameter to another mesh axis (or unstacks a scanned stack) shows up
as a diff of `golden/sharding/<preset>.json`.

Regenerate after an intended change with UMM_UPDATE_GOLDEN=1 and review the diff.
"""

import json
import os
import pathlib

import pytest
from flax import nnx

from unified_mm.config.loading import load_config
from unified_mm.config.validation import validate
from unified_mm.launch.spec import REPO_ROOT
from unified_mm.parallel.sharding import logical_to_spec, rules_from_config
from unified_mm.plan.hardware import parse_topology
from unified_mm.tasks import make_task

GOLDEN = pathlib.Path(__file__).parent / "golden" / "sharding"
PRESETS = ["chameleon_7b@v5p-256", "llamagen_gpt_xl@2xv5p-256", "llamagen_gpt_3b@h100-16"]


def _spec_json(spec):
  return [list(a) if isinstance(a, tuple) else a for a in spec]


def sharding_table(preset: str) -> dict:
  config = load_config(str(REPO_ROOT / f"experiments/pods.py:{preset}"))
  sizes = validate(config, parse_topology(config.topology).num_devices)
  rules = rules_from_config(config.rules)
  task = make_task(config)
  abstract = nnx.eval_shape(lambda: task.build_model(nnx.Rngs(0)))
  params = {}
  for path, var in nnx.to_flat_state(nnx.state(abstract, nnx.Param)):
    axes = tuple(var.get_metadata()["out_sharding"])
    params[".".join(map(str, path))] = dict(
        shape=list(var.shape), axes=list(axes), spec=_spec_json(logical_to_spec(axes, rules)))
  return dict(preset=preset, mesh=sizes, scan_layers=bool(config.model.get("scan_layers")),
              params=dict(sorted(params.items())))


@pytest.mark.parametrize("preset", PRESETS)
def test_param_shardings_match_golden(preset):
  table = sharding_table(preset)
  text = json.dumps(table, indent=1) + "\n"
  path = GOLDEN / f"{preset.replace('@', '_at_')}.json"
  if os.environ.get("UMM_UPDATE_GOLDEN"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
  assert path.exists(), f"no golden file {path}: run with UMM_UPDATE_GOLDEN=1"
  assert json.loads(path.read_text()) == json.loads(text), f"{preset}: shardings changed"


@pytest.mark.parametrize("preset", PRESETS)
def test_pod_presets_scan_with_a_named_layers_axis(preset):
  table = sharding_table(preset)
  assert table["scan_layers"]
  stacked = {n: p for n, p in table["params"].items() if n.startswith("layers.")}
  assert stacked and all(p["axes"][0] == "layers" and p["spec"][0] is None
                         for p in stacked.values())
  # Every weight matrix is sharded over the fast axis (FSDP), the stack axis is not.
  for name, p in stacked.items():
    if len(p["shape"]) > 2:
      assert any(a is not None for a in p["spec"][1:]), name
  assert table["params"]["layers.attn.wq"]["shape"][0] > 1  # [L, D, N, H]
