"""Bucketed padding: many graphs of different sizes -> a few fixed batch shapes.

A jitted model compiles once per input shape. Batches are therefore padded (with
`jraph.pad_with_graphs`) to one of a few buckets `(n_node, n_edge, n_graph)` chosen from the
dataset's size distribution, so a whole training run compiles `len(buckets)` times.

How batches are formed: graphs are visited in a shuffled order (or by size, for evaluation),
sorted by size within chunks of `50 * batch_graphs` so that a batch holds graphs of similar
size, cut into batches of at most `batch_graphs` graphs (a batch is closed early when the next
graph would overflow the largest bucket), and the batch order is shuffled. Each batch is
padded to the smallest bucket it fits. Every graph appears exactly once per pass.

A graph that does not fit even the largest bucket gets an extra bucket of its own size
(rounded up), with a logged warning: graphs are never truncated.
"""
from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Iterator, Sequence

import jraph
import numpy as np

from jaxgeo.errors import ConfigError

logger = logging.getLogger(__name__)

_NODE_ROUND = 64
_EDGE_ROUND = 512
_SORT_CHUNK = 50


@dataclasses.dataclass(frozen=True, order=True)
class Bucket:
  """A padded batch shape. `n_node`/`n_edge` include padding; `n_graph` counts the padding
  graph, so a bucket holds at most `n_graph - 1` real graphs and `n_node - 1` real nodes."""
  n_node: int
  n_edge: int
  n_graph: int

  def fits(self, nodes: int, edges: int, graphs: int) -> bool:
    return nodes < self.n_node and edges <= self.n_edge and graphs < self.n_graph


def _round_up(value: int, multiple: int) -> int:
  return int(math.ceil(max(value, 1) / multiple) * multiple)


def graph_sizes(graphs: Sequence[jraph.GraphsTuple]) -> tuple[np.ndarray, np.ndarray]:
  """Node and edge counts, each [G] int64, of single graphs."""
  nodes = np.array([int(np.sum(g.n_node)) for g in graphs], dtype=np.int64)
  edges = np.array([int(np.sum(g.n_edge)) for g in graphs], dtype=np.int64)
  return nodes, edges


def plan_batches(nodes: np.ndarray, edges: np.ndarray, batch_graphs: int,
                 rng: np.random.Generator | None = None,
                 max_nodes: int | None = None, max_edges: int | None = None
                 ) -> list[np.ndarray]:
  """Groups graph indices into batches (see the module docstring).

  Args:
    nodes, edges: [G] sizes of each graph.
    batch_graphs: the most graphs in a batch.
    rng: shuffles graphs and batches when given; None gives a fixed order by size.
    max_nodes, max_edges: capacity of the largest bucket (real nodes / edges); a batch is
      closed before it would exceed them.
  Returns:
    A list of index arrays, every graph in exactly one.
  """
  if batch_graphs < 1:
    raise ConfigError(f"batch_graphs={batch_graphs}: must be at least 1")
  count = len(nodes)
  if rng is None:
    order = np.lexsort((np.arange(count), nodes))
  else:
    order = rng.permutation(count)
    chunk = _SORT_CHUNK * batch_graphs
    order = np.concatenate([
        part[np.argsort(nodes[part], kind="stable")]
        for part in np.array_split(order, max(1, math.ceil(count / chunk)))
    ]) if count else order
  batches, current, n_sum, e_sum = [], [], 0, 0
  for i in order:
    too_big = current and (
        (max_nodes is not None and n_sum + nodes[i] > max_nodes) or
        (max_edges is not None and e_sum + edges[i] > max_edges))
    if len(current) == batch_graphs or too_big:
      batches.append(np.array(current))
      current, n_sum, e_sum = [], 0, 0
    current.append(i)
    n_sum += nodes[i]
    e_sum += edges[i]
  if current:
    batches.append(np.array(current))
  if rng is not None:
    batches = [batches[j] for j in rng.permutation(len(batches))]
  return batches


def choose_buckets(graphs: Sequence[jraph.GraphsTuple], batch_graphs: int = 8,
                   max_buckets: int = 4, seed: int = 0) -> list[Bucket]:
  """Picks up to `max_buckets` batch shapes for a dataset.

  The batches of a few simulated epochs (and of the evaluation order) are sorted by node
  count and split into at most `max_buckets` contiguous groups so that the total padded node
  count is smallest (dynamic programming); each group's largest batch (rounded up to 64
  nodes / 512 edges) is a bucket. The largest bucket holds the largest batch seen, and
  batching never exceeds it (`plan_batches` closes batches early instead).

  Returns:
    Buckets sorted from smallest to largest, all with n_graph = batch_graphs + 1.
  """
  if not graphs:
    raise ConfigError("choose_buckets: the dataset has no graphs")
  if max_buckets < 1:
    raise ConfigError(f"max_buckets={max_buckets}: must be at least 1")
  nodes, edges = graph_sizes(graphs)
  plans = plan_batches(nodes, edges, batch_graphs, None)
  for s in range(3):
    plans += plan_batches(nodes, edges, batch_graphs, np.random.default_rng(seed + s))
  totals = np.array([(nodes[b].sum(), edges[b].sum()) for b in plans])
  totals = totals[np.argsort(totals[:, 0], kind="stable")]
  buckets, edge_cap = [], 0
  for group in _split_min_padding(totals[:, 0], max_buckets):
    edge_cap = max(edge_cap, int(totals[group, 1].max()))
    buckets.append(Bucket(_round_up(int(totals[group, 0].max()) + 1, _NODE_ROUND),
                          _round_up(edge_cap, _EDGE_ROUND), batch_graphs + 1))
  return sorted(set(buckets))


def _split_min_padding(sorted_nodes: np.ndarray, groups: int) -> list[np.ndarray]:
  """Splits ascending batch sizes into <= `groups` contiguous runs minimising the padded total
  (each run padded to its largest, rounded). Returns index arrays of the runs."""
  n = len(sorted_nodes)
  padded = np.array([_round_up(int(v) + 1, _NODE_ROUND) for v in sorted_nodes], dtype=np.float64)
  cost = np.full((groups + 1, n + 1), np.inf)
  choice = np.zeros((groups + 1, n + 1), dtype=np.int64)
  cost[0, 0] = 0.0
  starts = np.arange(n)
  for g in range(1, groups + 1):
    for j in range(1, n + 1):
      # The last run is [i, j): every batch in it padded to padded[j - 1].
      candidates = cost[g - 1, :j] + (j - starts[:j]) * padded[j - 1]
      i = int(np.argmin(candidates))
      cost[g, j], choice[g, j] = candidates[i], i
  best_g = int(np.argmin(cost[1:, n])) + 1
  runs, j = [], n
  for g in range(best_g, 0, -1):
    i = choice[g, j]
    runs.append(np.arange(i, j))
    j = i
  return [r for r in reversed(runs) if len(r)]


def _capacity(buckets: Sequence[Bucket]) -> tuple[int, int]:
  largest_nodes = max(b.n_node for b in buckets) - 1
  largest_edges = max(b.n_edge for b in buckets)
  return largest_nodes, largest_edges


def bucket_for(nodes: int, edges: int, graphs: int, buckets: Sequence[Bucket]) -> Bucket:
  """The smallest bucket that fits; an extra (logged) bucket when none does."""
  for bucket in sorted(buckets):
    if bucket.fits(nodes, edges, graphs):
      return bucket
  extra = Bucket(_round_up(nodes + 1, _NODE_ROUND), _round_up(edges, _EDGE_ROUND),
                 max(graphs + 1, max((b.n_graph for b in buckets), default=2)))
  logger.warning("a batch of %d graphs (%d nodes, %d edges) fits no bucket; padding it to an "
                 "extra bucket %s (one more compilation)", graphs, nodes, edges, extra)
  return extra


def pad(graphs: Sequence[jraph.GraphsTuple], bucket: Bucket) -> jraph.GraphsTuple:
  """Batches single graphs and pads the batch to `bucket` (numpy in, numpy out)."""
  batch = jraph.batch_np(list(graphs)) if len(graphs) > 1 else graphs[0]
  return jraph.pad_with_graphs(batch, bucket.n_node, bucket.n_edge, bucket.n_graph)


def batches(graphs: Sequence[jraph.GraphsTuple], buckets: Sequence[Bucket],
            batch_graphs: int = 8, rng: np.random.Generator | None = None,
            return_indices: bool = False) -> Iterator[jraph.GraphsTuple]:
  """Padded batches covering every graph once.

  Args:
    graphs: single graphs (n_node of shape [1]) with the same node/edge/globals keys.
    buckets: from `choose_buckets`.
    batch_graphs: the most graphs in a batch (at most the buckets' n_graph - 1).
    rng: shuffle (training) when given; a fixed order (evaluation) when None.
    return_indices: also yield the [B] dataset indices of the batch's real graphs.
  Yields:
    Padded GraphsTuples of numpy arrays (or (batch, indices) pairs).
  """
  if not buckets:
    raise ConfigError("batches: no buckets given")
  if batch_graphs >= min(b.n_graph for b in buckets):
    raise ConfigError(f"batch_graphs={batch_graphs} does not fit buckets with n_graph="
                      f"{min(b.n_graph for b in buckets)} (one graph is padding)")
  nodes, edges = graph_sizes(graphs)
  max_nodes, max_edges = _capacity(buckets)
  for index in plan_batches(nodes, edges, batch_graphs, rng, max_nodes, max_edges):
    bucket = bucket_for(int(nodes[index].sum()), int(edges[index].sum()), len(index), buckets)
    batch = pad([graphs[i] for i in index], bucket)
    yield (batch, index) if return_indices else batch


def masks(batch: jraph.GraphsTuple) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Node [N], edge [E] and graph [G] masks (True = real) of a padded batch.

  Works on numpy arrays (host) and, through jraph's helpers, on traced JAX arrays.
  """
  if isinstance(batch.n_node, np.ndarray):
    real = num_real_graphs(batch)
    graph_mask = np.arange(batch.n_node.shape[0]) < real
    n_real_nodes = int(batch.n_node[:real].sum())
    n_real_edges = int(batch.n_edge[:real].sum())
    node_count = batch.n_node.sum()
    edge_count = batch.n_edge.sum()
    return (np.arange(node_count) < n_real_nodes, np.arange(edge_count) < n_real_edges,
            graph_mask)
  return (jraph.get_node_padding_mask(batch), jraph.get_edge_padding_mask(batch),
          jraph.get_graph_padding_mask(batch))


def num_real_graphs(batch: jraph.GraphsTuple) -> int:
  """Real graphs in a padded batch: those before the last graph with nodes, which is the
  padding graph (`jraph.pad_with_graphs` gives it at least one node; any graphs after it are
  empty padding graphs)."""
  return int(np.flatnonzero(np.asarray(batch.n_node) > 0)[-1])


def unpad(batch: jraph.GraphsTuple) -> list[jraph.GraphsTuple]:
  """The real graphs of a padded batch, as single graphs (numpy; inverse of `pad`)."""
  batch = jax_tree_to_numpy(batch)
  real = num_real_graphs(batch)
  node_offsets = np.concatenate([[0], np.cumsum(batch.n_node)])
  edge_offsets = np.concatenate([[0], np.cumsum(batch.n_edge)])
  out = []
  for g in range(real):
    n0, n1 = node_offsets[g], node_offsets[g + 1]
    e0, e1 = edge_offsets[g], edge_offsets[g + 1]
    take_nodes = lambda x: x[n0:n1]
    take_edges = lambda x: x[e0:e1]
    out.append(jraph.GraphsTuple(
        nodes=_tree_map(take_nodes, batch.nodes), edges=_tree_map(take_edges, batch.edges),
        senders=batch.senders[e0:e1] - n0, receivers=batch.receivers[e0:e1] - n0,
        n_node=batch.n_node[g:g + 1], n_edge=batch.n_edge[g:g + 1],
        globals=_tree_map(lambda x: x[g:g + 1], batch.globals)))
  return out


def _tree_map(fn, tree):
  import jax
  return jax.tree_util.tree_map(fn, tree)


def jax_tree_to_numpy(tree):
  """Device arrays -> numpy arrays, leaf by leaf."""
  return _tree_map(np.asarray, tree)


def padding_efficiency(graphs: Sequence[jraph.GraphsTuple], buckets: Sequence[Bucket],
                       batch_graphs: int = 8, seed: int = 0) -> dict[str, float]:
  """Real / padded nodes and edges over one shuffled epoch of `batches`.

  Returns:
    {"nodes": fraction, "edges": fraction, "batches": count, "buckets_used": count}
  """
  nodes, edges = graph_sizes(graphs)
  max_nodes, max_edges = _capacity(buckets)
  padded_nodes = padded_edges = 0
  used = set()
  plan = plan_batches(nodes, edges, batch_graphs, np.random.default_rng(seed), max_nodes,
                      max_edges)
  for index in plan:
    bucket = bucket_for(int(nodes[index].sum()), int(edges[index].sum()), len(index), buckets)
    used.add(bucket)
    padded_nodes += bucket.n_node
    padded_edges += bucket.n_edge
  return {"nodes": float(nodes.sum() / padded_nodes), "edges": float(edges.sum() / padded_edges),
          "batches": len(plan), "buckets_used": len(used)}
