"""Two real JAX processes: each reads its own shard, together they form one global batch."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap

import numpy as np

SCRIPT = textwrap.dedent("""
    import json, sys
    import jax
    pid, port = int(sys.argv[1]), sys.argv[2]
    jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}", num_processes=2,
                               process_id=pid)
    import grain
    from jax.experimental import multihost_utils
    from jax.sharding import AxisType
    from unified_mm.data.config import default_data_config
    from unified_mm.data.global_batch import make_global_batch
    from unified_mm.data.pipeline import load_or_train_tokenizer, make_train_iterator
    from unified_mm.data.stand_in_codes import StandInCodes
    from unified_mm.data.vocab import Vocab

    data = default_data_config(seq_len=128)
    tok = load_or_train_tokenizer(data)
    codes = StandInCodes(grid=4)
    vocab = Vocab(text_size=tok.vocab_size, image_codes=codes.num_codes)
    shard = grain.sharding.ShardByJaxProcess()
    with make_train_iterator(data, vocab, codes, None, None, 2, tokenizer=tok) as it:
      local = next(it)
    mesh = jax.make_mesh((jax.device_count(),), ("data",), axis_types=(AxisType.Auto,))
    g = make_global_batch(local, mesh)
    full = multihost_utils.process_allgather(g["tokens"], tiled=True)
    print(json.dumps({"shard": [shard.shard_index, shard.shard_count],
                      "global_shape": list(g["tokens"].shape),
                      "local": local["tokens"].tolist(), "full": full.tolist()}))
""")


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def test_two_processes_shard_and_assemble_a_global_batch(tmp_path, subprocess_env, repo_root):
  script = tmp_path / "host.py"
  script.write_text(SCRIPT)
  port = str(_free_port())
  env = subprocess_env(2)
  procs = [subprocess.Popen([sys.executable, str(script), str(i), port], env=env, cwd=repo_root,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
           for i in range(2)]
  outs = []
  for p in procs:
    out, err = p.communicate(timeout=240)
    assert p.returncode == 0, err[-3000:]
    outs.append(json.loads(out.strip().splitlines()[-1]))
  assert [o["shard"] for o in outs] == [[0, 2], [1, 2]]
  assert outs[0]["global_shape"] == [4, 128]
  local0, local1 = np.array(outs[0]["local"]), np.array(outs[1]["local"])
  # Different shards: no row of one host equals a row of the other.
  assert not any((r0 == r1).all() for r0 in local0 for r1 in local1)
  for o in outs:  # the global batch is host 0's rows, then host 1's
    np.testing.assert_array_equal(np.array(o["full"]), np.concatenate([local0, local1]))
