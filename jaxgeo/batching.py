"""Bucketed padding: many graphs of different sizes -> a few fixed batch shapes.

A jitted model compiles once per input shape. Batches are therefore padded (with
`jraph.pad_with_graphs`) to one of a few buckets `(n_node, n_edge, n_graph)` chosen from the
dataset's size distribution, so a whole training run compiles `len(buckets)` times.

Three ways to form batches; all visit every graph exactly once per pass and shuffle the batch
order when training:
- **fixed count** (`packing=None`): graphs are visited in a shuffled order (or by size, for
  evaluation), sorted by size within chunks of `50 * batch_graphs` so that a batch holds
  graphs of similar size, and cut into batches of at most `batch_graphs` graphs (a batch is
  closed early when the next graph would overflow the largest bucket).
- **balanced fixed count** (`balanced=True`, `plan_balanced`): the same chunks (in the
  dataset's order for evaluation) dealt into `ceil(chunk / batch_graphs)` batches of at most
  `batch_graphs` graphs, largest first, each to the batch with the least size so far
  (`deal`, by nodes / mean nodes + edges / mean edges), so that every batch of a chunk holds
  about the same nodes and edges: the batch sizes cluster around `batch_graphs` x the mean
  graph, and a few buckets fit them closely (DB5.5's 542 bound chains, batches of 8: 98% /
  97% real nodes / edges in 4 buckets, 95% / 93% in 2, against 73% / 70% and 51% / 49% for
  the sorted chunks). A batch mixes large and small graphs, as a uniformly shuffled one does.
- **packed** (`packing=Packing(nodes, edges, graphs)`): batches are filled up to a node and an
  edge budget (`jraph.dynamically_batch`'s idea), so that nearly every padded row is real.
  Graphs are visited in a shuffled order (training) or largest first (evaluation) and placed
  by best fit into one of a few open batches; when a graph fits none, the fullest open batch
  is closed. The number of graphs per batch varies (on average about the budget divided by
  the mean graph size: `packing_for` sets the budget from a graph count).
Each batch is padded to the smallest bucket it fits.

A graph that does not fit even the largest bucket (or exceeds the packing budget) gets a batch
and an extra bucket of its own size (rounded up), with a logged warning: graphs are never
truncated.
"""
from __future__ import annotations

import dataclasses
import heapq
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


@dataclasses.dataclass(frozen=True)
class Packing:
  """Budgets of a packed batch (real items, padding excluded).

  Attributes:
    nodes, edges: the most real nodes / edges in a batch.
    graphs: the most real graphs in a batch (its buckets have n_graph = graphs + 1).
    open_batches: batches kept open while packing (more: fuller batches, less mixing).
  """
  nodes: int
  edges: int
  graphs: int
  open_batches: int = 4

  def __post_init__(self):
    for name in ("nodes", "edges", "graphs", "open_batches"):
      if int(getattr(self, name)) < 1:
        raise ConfigError(f"packing {name}={getattr(self, name)}: must be at least 1")


def packing_for(graphs: Sequence[jraph.GraphsTuple], batch_graphs: int, nodes: int = 0,
                edges: int = 0, max_graphs: int = 0) -> Packing:
  """The packing budget of batches holding `batch_graphs` graphs of `graphs` on average.

  nodes: the node budget (0: `batch_graphs` x the mean node count, at least the largest
    graph); edges: the edge budget (0: the node budget x the mean edges per node, at least
    the largest graph's); max_graphs: the most graphs in a batch (0: 4 x batch_graphs).
  Node and edge budgets are rounded up so that the padded bucket (one more node for the
  padding graph) is a multiple of 64 nodes / 512 edges.
  """
  if batch_graphs < 1:
    raise ConfigError(f"batch_graphs={batch_graphs}: must be at least 1")
  if not graphs:
    raise ConfigError("packing_for: the dataset has no graphs")
  n, e = graph_sizes(graphs)
  node_budget = int(nodes) or max(int(math.ceil(batch_graphs * n.mean())), int(n.max()))
  node_budget = _round_up(node_budget + 1, _NODE_ROUND) - 1
  if edges:
    edge_budget = int(edges)
  else:
    per_node = float(e.sum()) / max(float(n.sum()), 1.0)
    edge_budget = max(int(math.ceil(node_budget * per_node)), int(e.max()))
  edge_budget = _round_up(edge_budget, _EDGE_ROUND)
  return Packing(node_budget, edge_budget, int(max_graphs) or 4 * batch_graphs)


def plan_packed(nodes: np.ndarray, edges: np.ndarray, packing: Packing,
                rng: np.random.Generator | None = None) -> list[np.ndarray]:
  """Groups graph indices into packed batches (see the module docstring).

  Args:
    nodes, edges: [G] sizes of each graph.
    packing: the budgets.
    rng: shuffles graphs and batches when given; None gives a fixed order, largest first.
  Returns:
    A list of index arrays, every graph in exactly one; a graph over the budget alone.
  """
  count = len(nodes)
  if rng is None:
    order = np.lexsort((np.arange(count), -np.asarray(nodes)))
  else:
    order = rng.permutation(count)
  closed: list[list[int]] = []
  open_: list[list] = []          # [members, nodes, edges]
  for i in order:
    n, e = int(nodes[i]), int(edges[i])
    if n > packing.nodes or e > packing.edges:
      closed.append([int(i)])
      continue
    best, room = None, None
    for b in open_:
      if (b[1] + n <= packing.nodes and b[2] + e <= packing.edges
          and len(b[0]) < packing.graphs):
        left = packing.nodes - b[1] - n
        if room is None or left < room:
          best, room = b, left
    if best is None:
      if len(open_) >= packing.open_batches:
        fullest = max(range(len(open_)), key=lambda j: open_[j][1])
        closed.append(open_.pop(fullest)[0])
      best = [[], 0, 0]
      open_.append(best)
    best[0].append(int(i))
    best[1] += n
    best[2] += e
  closed.extend(b[0] for b in open_)
  batches = [np.array(b, dtype=np.int64) for b in closed if b]
  if rng is not None:
    batches = [batches[j] for j in rng.permutation(len(batches))]
  return batches


def plan(nodes: np.ndarray, edges: np.ndarray, batch_graphs: int,
         rng: np.random.Generator | None = None, max_nodes: int | None = None,
         max_edges: int | None = None, packing: Packing | None = None,
         balanced: bool = False) -> list[np.ndarray]:
  """`plan_packed` when `packing` is given, else `plan_balanced` when `balanced`, else
  `plan_batches` (fixed count)."""
  if packing is not None:
    return plan_packed(nodes, edges, packing, rng)
  if balanced:
    return plan_balanced(nodes, edges, batch_graphs, rng, max_nodes, max_edges)
  return plan_batches(nodes, edges, batch_graphs, rng, max_nodes, max_edges)


def deal(weights: Sequence[float], bins: int, per_bin: int) -> list[np.ndarray]:
  """Deals items to bins, largest first (ties: the lower position), each to the bin with the
  least weight so far among those holding fewer than `per_bin` items (ties: the lower bin).

  Args:
    weights: [B] item weights (B <= bins * per_bin).
    bins, per_bin: the number of bins and the most items in one.
  Returns:
    `bins` int64 arrays of positions into `weights`, each ascending (some maybe empty).
  """
  weights = [float(w) for w in weights]
  if len(weights) > bins * per_bin:
    raise ConfigError(f"deal: {len(weights)} items do not fit {bins} bins of {per_bin}")
  members: list[list[int]] = [[] for _ in range(bins)]
  heap = [(0.0, b) for b in range(bins)]
  for j in sorted(range(len(weights)), key=lambda j: (-weights[j], j)):
    load, b = heapq.heappop(heap)
    members[b].append(j)
    if len(members[b]) < per_bin:
      heapq.heappush(heap, (load + weights[j], b))
  return [np.asarray(sorted(m), dtype=np.int64) for m in members]


def plan_balanced(nodes: np.ndarray, edges: np.ndarray, batch_graphs: int,
                  rng: np.random.Generator | None = None,
                  max_nodes: int | None = None, max_edges: int | None = None
                  ) -> list[np.ndarray]:
  """Groups graph indices into batches of at most `batch_graphs` graphs with about equal sizes
  (see the module docstring).

  Graphs are visited in a shuffled order (`rng`) or the dataset's order (None), in chunks of
  `50 * batch_graphs`; each chunk is dealt (`deal`, weight = nodes / mean nodes + edges / mean
  edges) into `ceil(chunk / batch_graphs)` batches. A batch over `max_nodes` / `max_edges` (a
  shuffle the buckets did not see) is cut as `plan_batches` cuts, never padded beyond them.

  Returns:
    A list of index arrays, every graph in exactly one; batches shuffled when `rng` is given.
  """
  if batch_graphs < 1:
    raise ConfigError(f"batch_graphs={batch_graphs}: must be at least 1")
  nodes, edges = np.asarray(nodes), np.asarray(edges)
  count = len(nodes)
  if not count:
    return []
  order = np.arange(count) if rng is None else rng.permutation(count)
  weight = (nodes / max(float(nodes.mean()), 1.0) + edges / max(float(edges.mean()), 1.0))
  out = []
  for part in np.array_split(order, math.ceil(count / (_SORT_CHUNK * batch_graphs))):
    for members in deal(weight[part], math.ceil(len(part) / batch_graphs), batch_graphs):
      index = part[members]
      fits = ((max_nodes is None or nodes[index].sum() <= max_nodes) and
              (max_edges is None or edges[index].sum() <= max_edges))
      if fits:
        out.append(index)
      else:
        out.extend(index[cut] for cut in plan_batches(nodes[index], edges[index], batch_graphs,
                                                      None, max_nodes, max_edges))
  if rng is not None:
    out = [out[j] for j in rng.permutation(len(out))]
  return out


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
                   max_buckets: int = 4, seed: int = 0, packing: Packing | None = None,
                   balanced: bool = False) -> list[Bucket]:
  """Picks up to `max_buckets` batch shapes for a dataset.

  The batches of a few simulated epochs (and of the evaluation order) are sorted by node
  count and split into at most `max_buckets` contiguous groups so that the total padded node
  count is smallest (dynamic programming); each group's largest batch (rounded up to 64
  nodes / 512 edges) is a bucket. Fixed count: the largest bucket holds the largest batch
  seen, and batching never exceeds it (`plan_batches` closes batches early instead). Packed:
  the largest bucket is the packing budget, and each graph over the budget gets an extra
  bucket of its own (logged here, once). Balanced: the batches are ordered by nodes / mean
  nodes + edges / mean edges and the groups chosen to minimise padded nodes and padded edges
  (each relative to its mean) together, each bucket the group's largest nodes and largest
  edges; the largest bucket holds the largest nodes and edges seen (so the other buckets need
  not be nested).

  Returns:
    Buckets sorted from smallest to largest, all with n_graph = batch_graphs + 1 (packed:
    packing.graphs + 1).
  """
  if not graphs:
    raise ConfigError("choose_buckets: the dataset has no graphs")
  if max_buckets < 1:
    raise ConfigError(f"max_buckets={max_buckets}: must be at least 1")
  nodes, edges = graph_sizes(graphs)
  plans = plan(nodes, edges, batch_graphs, None, packing=packing, balanced=balanced)
  for s in range(3):
    plans += plan(nodes, edges, batch_graphs, np.random.default_rng(seed + s), packing=packing,
                  balanced=balanced)
  totals = np.array([(nodes[b].sum(), edges[b].sum()) for b in plans])
  n_graph = batch_graphs + 1 if packing is None else packing.graphs + 1
  extra = []
  if packing is not None:
    over = (nodes > packing.nodes) | (edges > packing.edges)
    for i in np.flatnonzero(over):
      extra.append(Bucket(_round_up(int(nodes[i]) + 1, _NODE_ROUND),
                          _round_up(int(edges[i]), _EDGE_ROUND), n_graph))
      logger.warning("graph %d (%d nodes, %d edges) exceeds the packing budget (%d nodes, %d "
                     "edges): it gets a batch and a bucket %s of its own", i, nodes[i],
                     edges[i], packing.nodes, packing.edges, extra[-1])
    totals = totals[(totals[:, 0] <= packing.nodes) & (totals[:, 1] <= packing.edges)]
  buckets = []
  if len(totals):
    # Balanced batches cluster in nodes and in edges alike: runs in order of both (each
    # relative to its mean), each shape fitted to its run's largest nodes and largest edges,
    # the padding of both counted. Otherwise runs in node order, padded nodes counted, the
    # edge capacity growing with the runs.
    scale = np.maximum(totals.mean(axis=0), 1.0)
    key = totals[:, 0] / scale[0] + totals[:, 1] / scale[1] if balanced else totals[:, 0]
    totals = totals[np.argsort(key, kind="stable")]
    padded = np.array([(_round_up(int(n) + 1, _NODE_ROUND), _round_up(int(e), _EDGE_ROUND))
                       for n, e in totals])
    edge_cap = 0
    for run in _split_min_padding(padded / scale if balanced else padded[:, :1], max_buckets):
      edge_cap = int(padded[run, 1].max()) if balanced else max(edge_cap, padded[run, 1].max())
      buckets.append(Bucket(int(padded[run, 0].max()), int(edge_cap), n_graph))
    if balanced:
      # The largest shape holds the largest nodes and edges seen (the others need not nest).
      buckets[-1] = Bucket(int(padded[:, 0].max()), int(padded[:, 1].max()), n_graph)
    if packing is not None:
      # The largest bucket is the whole budget, so every packed batch fits one.
      buckets[-1] = Bucket(_round_up(packing.nodes + 1, _NODE_ROUND),
                           _round_up(packing.edges, _EDGE_ROUND), n_graph)
  return sorted(set(buckets + extra))


def _split_min_padding(padded: np.ndarray, groups: int) -> list[np.ndarray]:
  """Splits batches in a given order into <= `groups` contiguous runs minimising the padded
  total (dynamic programming): each run is padded to its largest size in every column.

  Args:
    padded: [n, k] padded sizes of the batches in that order (k = 1: nodes; 2: nodes and
      edges, each scaled by its mean so that they weigh alike).
  Returns:
    Index arrays of the runs, in order.
  """
  n = len(padded)
  cost = np.full((groups + 1, n + 1), np.inf)
  choice = np.zeros((groups + 1, n + 1), dtype=np.int64)
  cost[0, 0] = 0.0
  starts = np.arange(n)
  for j in range(1, n + 1):
    # The run [i, j) padded to its largest in each column, for every start i < j.
    largest = np.maximum.accumulate(padded[:j][::-1], axis=0)[::-1].sum(axis=1)
    for g in range(1, groups + 1):
      candidates = cost[g - 1, :j] + (j - starts[:j]) * largest
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
            return_indices: bool = False, packing: Packing | None = None,
            balanced: bool = False) -> Iterator[jraph.GraphsTuple]:
  """Padded batches covering every graph once.

  Args:
    graphs: single graphs (n_node of shape [1]) with the same node/edge/globals keys.
    buckets: from `choose_buckets` (with the same `packing`).
    batch_graphs: the most graphs in a fixed-count batch (at most the buckets' n_graph - 1);
      ignored when packing.
    rng: shuffle (training) when given; a fixed order (evaluation) when None.
    return_indices: also yield the [B] dataset indices of the batch's real graphs.
    packing: pack batches to these budgets instead of a fixed graph count.
    balanced: fixed-count batches of about equal sizes (`plan_balanced`; the buckets chosen
      with the same flag).
  Yields:
    Padded GraphsTuples of numpy arrays (or (batch, indices) pairs).
  """
  if not buckets:
    raise ConfigError("batches: no buckets given")
  most = batch_graphs if packing is None else packing.graphs
  if most >= min(b.n_graph for b in buckets):
    what = f"batch_graphs={batch_graphs}" if packing is None else f"packing.graphs={most}"
    raise ConfigError(f"{what} does not fit buckets with n_graph="
                      f"{min(b.n_graph for b in buckets)} (one graph is padding)")
  nodes, edges = graph_sizes(graphs)
  max_nodes, max_edges = _capacity(buckets)
  for index in plan(nodes, edges, batch_graphs, rng, max_nodes, max_edges, packing, balanced):
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
                       batch_graphs: int = 8, seed: int = 0, packing: Packing | None = None,
                       balanced: bool = False) -> dict[str, float]:
  """Real / padded nodes and edges over one shuffled epoch of `batches`.

  Returns:
    {"nodes": fraction, "edges": fraction, "batches": count, "buckets_used": count,
     "graphs_per_batch": mean}
  """
  nodes, edges = graph_sizes(graphs)
  max_nodes, max_edges = _capacity(buckets)
  padded_nodes = padded_edges = 0
  used = set()
  batches_ = plan(nodes, edges, batch_graphs, np.random.default_rng(seed), max_nodes,
                  max_edges, packing, balanced)
  for index in batches_:
    bucket = bucket_for(int(nodes[index].sum()), int(edges[index].sum()), len(index), buckets)
    used.add(bucket)
    padded_nodes += bucket.n_node
    padded_edges += bucket.n_edge
  return {"nodes": float(nodes.sum() / padded_nodes), "edges": float(edges.sum() / padded_edges),
          "batches": len(batches_), "buckets_used": len(used),
          "graphs_per_batch": len(nodes) / max(len(batches_), 1)}
