"""experiments/bench_nets.py: variants of a network's config (`--variants`) and timing them
interleaved on the same batches."""
import pathlib
import sys

import pytest

import bench_nets  # experiments/ (tests/conftest.py)

REPO = pathlib.Path(__file__).resolve().parent.parent


def test_with_variant_sets_dotted_fields_and_the_padded_flag():
  from jaxgeo.errors import ConfigError
  base = bench_nets.network_config("egnn_1280")
  assert bench_nets.with_variant(base, "") == bench_nets.Variant(base, True, "f32", None)
  v = bench_nets.with_variant(base, "egnn.edge_chunk=4096 padded=False")
  assert v.config.egnn.edge_chunk == 4096 and v.padded is False
  assert v.config.egnn.hidden == base.egnn.hidden == 1280 and v.config.fusion == base.fusion
  config = bench_nets.with_variant(base, "egnn.activation=relu head_dropout=0.2").config
  assert config.egnn.activation == "relu" and config.head_dropout == 0.2
  v = bench_nets.with_variant(base, "precision=bf16 train_options=default")
  assert (v.config, v.padded, v.precision, v.train_options) == (base, True, "bf16", "default")
  with pytest.raises(ValueError, match="precision is one of"):
    bench_nets.with_variant(base, "precision=fp16")
  with pytest.raises(ValueError, match="no 'egnn.chunk'"):
    bench_nets.with_variant(base, "egnn.chunk=4096")
  with pytest.raises(ValueError, match="not key=value"):
    bench_nets.with_variant(base, "egnn.edge_chunk")
  with pytest.raises(ConfigError, match="activation"):   # the config is validated
    bench_nets.with_variant(base, "egnn.activation=tanh")


def test_variants_are_timed_on_the_same_batches(shared_data):
  if not (shared_data / "db5.5" / "structures").is_dir():
    pytest.skip(f"{shared_data}/db5.5/structures absent")
  graphs = bench_nets.load_db55(shared_data / "db5.5", limit=6, smallest=True)
  variants = ("", "egnn.edge_chunk=64", "padded=False", "precision=bf16 train_options=default")
  rows = bench_nets.bench_network("egnn", graphs, 3, 2, 2, max_buckets=1, variants=variants)
  assert [r["variant"] for r in rows] == list(variants)
  for row in rows:
    assert row["graphs"] == rows[0]["graphs"] > 0 and row["batches"] == 2
    assert len(row["eval_s"]) == len(row["train_s"]) == 2
    assert row["eval_graphs_s"] == pytest.approx(row["graphs"] / min(row["eval_s"]))
    assert row["compiles_eval"] == row["compiles_train"] == 1
  assert rows[0]["params"] == rows[1]["params"] == rows[2]["params"]
  table = bench_nets.table(rows).splitlines()
  assert len(table) == 2 + len(rows)
  assert table[2].startswith("| egnn | paper config | fixed |")
  assert table[3].startswith("| egnn | egnn.edge_chunk=64 | fixed |")


def test_size_ordered_regroups_the_same_graphs_by_size():
  import jraph
  import numpy as np
  sizes = [5, 1, 9, 3, 7, 2, 8]
  graphs = [jraph.GraphsTuple(nodes=None, edges=None, senders=None, receivers=None,
                              globals=None, n_node=np.array([n]), n_edge=np.array([0]))
            for n in sizes]
  groups = bench_nets.size_ordered(graphs, [[0, 2, 4], [6, 1], [3]], 2)
  got = [[int(g.n_node[0]) for g in group] for group in groups]
  assert got == [[1, 3], [5, 7], [8, 9]]                # graph 5 (size 2) was not timed


def test_packed_padded_reference_rows_carry_the_size_ordered_pass(shared_data):
  if not (shared_data / "db5.5" / "structures").is_dir():
    pytest.skip(f"{shared_data}/db5.5/structures absent")
  pytest.importorskip("torch")
  graphs = bench_nets.load_db55(shared_data / "db5.5", limit=6, smallest=True)
  row, = bench_nets.bench_network("molformer", graphs, 3, 2, 1, with_torch=True,
                                  max_buckets=1, packed=True)
  assert row["torch_sorted_batch"] == 3
  assert row["torch_sorted_eval_graphs_s"] > 0 and row["torch_sorted_train_graphs_s"] > 0
  cell = bench_nets.table([row]).splitlines()[2]
  assert "the same graphs in size order, 3 a batch:" in cell
  fixed, = bench_nets.bench_network("molformer", graphs, 3, 2, 1, with_torch=True,
                                    max_buckets=1)
  assert "torch_sorted_eval_graphs_s" not in fixed and "torch_eval_graphs_s" in fixed


DATA_PARALLEL = r"""
import json, pathlib, sys
sys.path.insert(0, sys.argv[2])
import numpy as np, jax, jax.numpy as jnp
from jaxgeo import batching, parallel
parallel.split_cpu(2)
import bench_nets
graphs = bench_nets.load_db55(pathlib.Path(sys.argv[1]), limit=6, smallest=True)
out = {"rows": bench_nets.bench_network("egnn", graphs, 4, 2, 1, max_buckets=1, devices=2)}
# The data-parallel runner computes what one device computes slot by slot (no dropout).
config = bench_nets.with_variant(bench_nets.network_config("egnn"), "head_dropout=0.0").config
buckets = batching.choose_buckets(graphs, batch_graphs=2, max_buckets=1)
stacked, parts, _ = next(parallel.global_batches(graphs, buckets, 4, 2,
                                                 np.random.default_rng(0)))
stacked = bench_nets.with_labels(stacked, np.random.default_rng(1))
slots = [parallel.slot(stacked, d) for d in range(2)]
mesh = parallel.make_mesh(jax.devices())
two = bench_nets.JaxRunner(config, True, [parallel.shard_stacked(stacked, mesh)], 0, None,
                           mesh=mesh)
one = bench_nets.JaxRunner(config, True, slots, 0, None)
out["forward_diff"] = float(max(np.max(np.abs(np.asarray(two.evaluate(two.batches[0]))[d] -
                                              np.asarray(one.evaluate(slots[d]))))
                                for d in range(2)))
counts = [batching.num_real_graphs(s) for s in slots]
per_slot = []
for s in slots:           # a fresh one-device runner for each slot: the same parameters
  r = bench_nets.JaxRunner(config, True, [s], 0, None)
  per_slot.append(float(r.train(s)))
out["loss"] = [float(two.train(two.batches[0])),
               sum(l * c for l, c in zip(per_slot, counts)) / sum(counts)]
out["replicated"] = all(x.sharding.is_fully_replicated and len(x.devices()) == 2
                        for x in jax.tree_util.tree_leaves(two.state["p"]))
print("RESULT " + json.dumps(out, default=str))
"""


def test_data_parallel_rows_compute_what_one_device_computes_slot_by_slot(shared_data):
  import json
  import subprocess
  from conftest import cpu_subprocess_env
  if not (shared_data / "db5.5" / "structures").is_dir():
    pytest.skip(f"{shared_data}/db5.5/structures absent")
  proc = subprocess.run([sys.executable, "-c", DATA_PARALLEL, str(shared_data / "db5.5"),
                         str(REPO / "experiments")], capture_output=True, text=True,
                        timeout=600, cwd=REPO, env=cpu_subprocess_env())
  line = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
  assert proc.returncode == 0 and line, proc.stdout[-2000:] + proc.stderr[-3000:]
  out = json.loads(line[0][len("RESULT "):])
  row, = out["rows"]
  assert row["devices"] == 2 and row["graphs"] > 0 and row["batches"] == 2
  assert row["compiles_eval"] == row["compiles_train"] == 1
  assert out["forward_diff"] < 1e-5
  assert out["loss"][0] == pytest.approx(out["loss"][1], rel=1e-5)
  assert out["replicated"]              # parameters on both devices
