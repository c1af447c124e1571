"""Bucketed padding: round trip, masks, bucket choice, oversize graphs."""
import logging

import jraph
import numpy as np
import pytest

from jaxgeo import batching, graph, testing
from jaxgeo.errors import ConfigError


@pytest.fixture(scope="module")
def graphs():
  rng = np.random.default_rng(0)
  out = []
  for i, length in enumerate(rng.integers(5, 120, size=37)):
    g = graph.residue_graph(testing.random_protein(int(length), rng), k=int(rng.integers(3, 12)))
    g = graph.with_nodes(g, label=rng.integers(0, 2, int(length)).astype(np.float32))
    out.append(graph.with_globals(g, label=np.float32(i)))
  return out


def assert_same_graph(a, b):
  for tree_a, tree_b in ((a.nodes, b.nodes), (a.edges, b.edges), (a.globals, b.globals)):
    assert tree_a.keys() == tree_b.keys()
    for key in tree_a:
      np.testing.assert_array_equal(tree_a[key], tree_b[key])
      assert tree_a[key].dtype == tree_b[key].dtype
  for field in ("senders", "receivers", "n_node", "n_edge"):
    np.testing.assert_array_equal(getattr(a, field), getattr(b, field))


@pytest.mark.parametrize("shuffle", [False, True])
def test_pad_unpad_round_trip(graphs, shuffle):
  buckets = batching.choose_buckets(graphs, batch_graphs=4, max_buckets=3)
  rng = np.random.default_rng(1) if shuffle else None
  seen = []
  shapes = set()
  for batch, index in batching.batches(graphs, buckets, 4, rng=rng, return_indices=True):
    shapes.add((batch.nodes["s"].shape[0], batch.senders.shape[0], batch.n_node.shape[0]))
    for g, i in zip(batching.unpad(batch), index):
      assert_same_graph(g, graphs[i])
    seen.extend(index.tolist())
    node_mask, edge_mask, graph_mask = batching.masks(batch)
    assert node_mask.sum() == sum(graphs[i].n_node[0] for i in index)
    assert edge_mask.sum() == sum(graphs[i].n_edge[0] for i in index)
    assert graph_mask.sum() == len(index)
    np.testing.assert_array_equal(node_mask, np.asarray(jraph.get_node_padding_mask(batch)))
    # Padding keeps edges sorted by receiver.
    assert np.all(np.diff(batch.receivers) >= 0)
  assert sorted(seen) == list(range(len(graphs)))
  assert len(shapes) <= 3
  assert shapes <= {(b.n_node, b.n_edge, b.n_graph) for b in buckets}


def test_buckets_are_few_and_efficient(graphs):
  buckets = batching.choose_buckets(graphs, batch_graphs=4, max_buckets=4)
  assert 1 <= len(buckets) <= 4
  assert all(b.n_graph == 5 for b in buckets)
  eff = batching.padding_efficiency(graphs, buckets, 4)
  assert 0.5 < eff["nodes"] <= 1.0 and 0.5 < eff["edges"] <= 1.0
  one = batching.choose_buckets(graphs, batch_graphs=4, max_buckets=1)
  assert len(one) == 1
  assert batching.padding_efficiency(graphs, one, 4)["nodes"] <= eff["nodes"] + 1e-9


def test_oversize_graph_gets_logged_extra_bucket(graphs, caplog):
  small = [batching.Bucket(64, 512, 3)]
  big = max(graphs, key=lambda g: g.n_node[0])
  with caplog.at_level(logging.WARNING, logger="jaxgeo.batching"):
    out = list(batching.batches([big], small, batch_graphs=1))
  assert "fits no bucket" in caplog.text
  assert out[0].nodes["s"].shape[0] > big.n_node[0]
  assert_same_graph(batching.unpad(out[0])[0], big)


def test_bad_options():
  with pytest.raises(ConfigError):
    batching.choose_buckets([], batch_graphs=4)
  with pytest.raises(ConfigError, match="batch_graphs=9"):
    list(batching.batches([None], [batching.Bucket(64, 64, 9)], batch_graphs=9))
