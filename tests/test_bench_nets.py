"""experiments/bench_nets.py: variants of a network's config (`--variants`) and timing them
interleaved on the same batches."""
import pathlib
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "experiments"))

import bench_nets  # noqa: E402


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
