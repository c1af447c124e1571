"""Sums over incoming edges computed chunk by chunk (CPU cache blocking), in Haiku.

A message pass sums per-edge terms into their receivers. Over all edges at once, every
per-edge intermediate ([E, width]) streams through memory; over chunks of edges (a scan that
adds each chunk's terms into the node sums) a chunk's intermediates stay in the CPU's caches,
and with `remat` each chunk is recomputed in the backward pass instead of storing its
activations (a scan of rematerialised chunks, or with `recompute_vjp` the custom VJP of
`stored_chunk_sums` storing nothing), or with `store_dots` only each chunk's matmul outputs
are kept for the backward pass (`stored_chunk_sums`). The same function either way: only the
order of the additions in each node's sum changes. On a padded batch (`nets.make_model`'s
`padded=True`) a chunk whose edges all point into the padding graph is skipped: its terms
reach padding nodes only.
"""
from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from jaxgeo.nets import ops

Terms = Callable[..., Any]   # (*edge_arrays, senders, receivers) -> pytree of [E', ...] arrays


def num_chunks(num_edges: int, edge_chunk: int) -> int:
  """Chunks of at most `edge_chunk` edges (0: one chunk) that `num_edges` edges form."""
  return 1 if edge_chunk <= 0 else max(1, -(-num_edges // edge_chunk))


class Plan(NamedTuple):
  """How a network passes messages over one batch (`plan`)."""
  edge_chunk: int                     # edges per chunk here (0: all at once)
  chunked: bool                       # more than one chunk: remat each chunk, not each layer
  first_padding: jax.Array | None     # `sum_over_edges`' first_padding


def plan(edge_chunk: int, num_edges: int, n_node: jax.Array, padded: bool) -> Plan:
  """The chunking of a message pass over `num_edges` edges: `edge_chunk` on CPU only (cache
  blocking; accelerators want all edges in one kernel); with chunks, the first padding node
  of a padded batch (`nets.make_model`'s `padded`; `n_node` [G]) so that chunks of padding
  edges only are skipped (fixed-count batches carry ~30% padding edges on DB5.5; packed ones
  less than a chunk). With chunks, a network's `remat` recomputes each chunk (the per-edge
  activations, which are what costs memory) instead of each layer, so the messages are
  computed twice, not 3x."""
  edge_chunk = edge_chunk if jax.default_backend() == "cpu" else 0
  chunked = num_chunks(num_edges, edge_chunk) > 1
  first_padding = ops.num_real_nodes(n_node) if padded and chunked else None
  return Plan(edge_chunk, chunked, first_padding)


def sum_over_edges(terms: Terms, edge_arrays: tuple, senders: jax.Array, receivers: jax.Array,
                   zeros: Any, edge_chunk: int = 0, remat: bool = False,
                   first_padding: jax.Array | None = None, store_dots: bool = False,
                   recompute_vjp: bool = False) -> Any:
  """Sum of `terms` over each node's incoming edges, in chunks of at most `edge_chunk` edges.

  Args:
    terms: per-edge terms of some edges: terms(*edge_arrays[chunk], senders[chunk],
      receivers[chunk]) -> a pytree of [E', ...] arrays. The receivers it is given are valid
      node indices (the chunks' own padding edges point at the last node and are dropped
      from the sums); it may create Haiku parameters (the first chunk creates them at init).
    edge_arrays: [E, ...] arrays (or None) split with the edges.
    senders, receivers: [E] int32, sorted by receiver.
    zeros: the sums before any edge, a pytree of `terms`' structure with [N, ...] zeros in
      the accumulation dtype (at least float32).
    edge_chunk: edges per chunk (0: all at once).
    remat: recompute each chunk in the backward pass (with more than one chunk).
    first_padding: None, or the first padding node of a padded batch (int32 scalar,
      `ops.num_real_nodes`): chunks whose first receiver is at or beyond it are skipped.
    store_dots: with more than one chunk, keep each chunk's matmul outputs for the backward
      pass instead of recomputing the chunk (`stored_chunk_sums`; overrides `remat`).
    recompute_vjp: with more than one chunk and `remat`, differentiate by
      `stored_chunk_sums` storing nothing (each chunk recomputed in its backward loop, both
      loops over the real chunks only) instead of a scan of rematerialised chunks.
  Returns:
    the pytree of `terms`' structure with [N, ...] sums, accumulated in at least float32.
  """
  num_nodes = jax.tree_util.tree_leaves(zeros)[0].shape[0]
  zeros = ops.varying_like(zeros, receivers)   # a data-parallel scan's carry
  num_edges = senders.shape[0]
  chunks = num_chunks(num_edges, edge_chunk)
  node_sum = lambda t, r: ops.segment_sum(t, r, num_nodes, sorted_ids=True)
  if chunks == 1:
    out = terms(*edge_arrays, senders, receivers)
    return jax.tree_util.tree_map(lambda z, t: z + node_sum(t, receivers), zeros, out)
  size = -(-num_edges // chunks)
  pad = chunks * size - num_edges

  def split(x, fill):  # [E, ...] -> [chunks, size, ...]; padding edges are summed into
    if x is None:      # node N, which segment_sum drops (and gathered from node N - 1)
      return None
    if pad:
      x = jnp.concatenate([x, jnp.full((pad,) + x.shape[1:], fill, x.dtype)])
    return x.reshape((chunks, size) + x.shape[1:])

  def add_chunk(total, chunk):
    *arrays, senders, receivers = chunk
    out = terms(*arrays, senders, jnp.minimum(receivers, num_nodes - 1))
    return jax.tree_util.tree_map(lambda s, t: s + node_sum(t, receivers), total, out)

  def step(total, chunk):
    if first_padding is None or hk.running_init():
      return add_chunk(total, chunk), None
    return hk.cond(_is_real(chunk[-1], first_padding), lambda t: add_chunk(t, chunk),
                   lambda t: t, total), None

  xs = tuple(split(x, 0) for x in edge_arrays) + (split(senders, 0),
                                                   split(receivers, num_nodes))
  if (store_dots or (remat and recompute_vjp)) and not hk.running_init():
    return stored_chunk_sums(terms, xs[:-2], xs[-2], xs[-1], zeros, first_padding,
                             store=store_dots)
  total, _ = hk.scan(hk.remat(step) if remat else step, zeros, xs)
  return total


def stored_chunk_sums(terms: Terms, arrays: tuple, senders: jax.Array, receivers: jax.Array,
                      zeros: Any, first_padding: jax.Array | None = None, store: bool = True
                      ) -> Any:
  """`sum_over_edges` over chunks already split, differentiated by a custom VJP that keeps
  each chunk's matmul outputs from the forward pass (with store=False nothing: each chunk is
  recomputed in the backward loop, as by a rematerialised scan, without the scan's stacked
  running sums or the padding skip's `cond`).

  Reverse-mode differentiation of a scan over chunks either recomputes every chunk in the
  backward pass (`remat`: the chunk's matmuls run twice forward) or stacks everything the
  chunk's backward pass reads, and on XLA CPU (jaxlib 0.10) that stacking is slow (EGNN 1280:
  3.8 of 12.6 s a step in the concatenate / dynamic-update-slice ops that write the stacked
  residuals; behind the padding skip's `lax.cond` the skipped branch returns zeros for the
  other's residuals, and skipping nothing computes the padding). Here the forward loop runs
  `jax.vjp` of each chunk's terms under `jax.checkpoint(policy=dots_with_no_batch_dims_
  saveable)` and writes the pullback's residuals that are not among its inputs (the matmul
  outputs) into [chunks, ...] buffers; the backward loop rebuilds each chunk's pullback from
  them and from the inputs it reads again (elementwise work is recomputed, matmuls are not).
  Both loops run over the real chunks only: a padded batch's chunks of padding edges only are
  neither computed nor stored.

  Args:
    terms: as in `sum_over_edges` (it may read Haiku parameters and close over arrays; it
      is closure-converted here, so it must not create parameters: not at init).
    arrays: [C, S, ...] edge arrays (or None) split into C chunks of S edges.
    senders, receivers: [C, S] int32; receivers sorted, the padding edges of the last chunk
      pointing at node N (dropped from the sums).
    zeros: the sums before any edge ([N, ...] pytree, accumulation dtype).
    first_padding: as in `sum_over_edges`.
    store: keep the matmul outputs (True) or nothing (False).
  Returns:
    the pytree of `zeros`' structure with the sums.
  """
  num_nodes = jax.tree_util.tree_leaves(zeros)[0].shape[0]
  limit = (jnp.asarray(num_nodes + 1, jnp.int32) if first_padding is None
           else jnp.asarray(first_padding, jnp.int32))

  def chunk_terms(arrays, senders, receivers):
    return terms(*arrays, senders, jnp.minimum(receivers, num_nodes - 1))

  pure, consts = jax.closure_convert(chunk_terms, _take(arrays, 0), senders[0], receivers[0])
  policy = _SAVE_DOTS if store else jax.checkpoint_policies.nothing_saveable
  return _chunk_sums(_Pullbacks(pure, policy), tuple(consts), arrays, senders, receivers, zeros,
                     limit)


_SAVE_DOTS = jax.checkpoint_policies.dots_with_no_batch_dims_saveable


def _float0_like(x: jax.Array):
  return np.zeros(x.shape, jax.dtypes.float0)


class _Pullbacks:
  """A chunk's pullback, split into leaves the backward loop has anyway (the hoisted
  constants, the chunk's own edge arrays and indices) and the rest (the saved matmul
  outputs: stored in [C, ...] buffers); the split and the pullback's structure are recorded
  when the chunk's VJP is traced (the same in every trace)."""

  def __init__(self, pure: Callable, policy: Callable = _SAVE_DOTS):
    self.pure = pure
    self.policy = policy   # what of a chunk's forward pass its pullback keeps
    self.treedef = None
    self.known = None   # per pullback leaf: its index among `_inputs`, or None (stored)

  @staticmethod
  def _inputs(consts: tuple, arrays: tuple, senders: jax.Array, receivers: jax.Array) -> list:
    return jax.tree_util.tree_leaves((consts, arrays, senders, receivers))

  def vjp(self, consts: tuple, arrays: tuple, senders: jax.Array, receivers: jax.Array):
    """-> (terms [S, ...] pytree, the pullback's leaves to store)."""
    def fn(consts, arrays):
      return self.pure(arrays, senders, receivers, *consts)
    out, pullback = jax.vjp(jax.checkpoint(fn, policy=self.policy), consts, arrays)
    leaves, self.treedef = jax.tree_util.tree_flatten(pullback)
    inputs = self._inputs(consts, arrays, senders, receivers)
    self.known = tuple(next((k for k, x in enumerate(inputs) if leaf is x), None)
                       for leaf in leaves)
    return out, [leaf for leaf, k in zip(leaves, self.known) if k is None]

  def rebuild(self, stored: list, consts: tuple, arrays: tuple, senders: jax.Array,
              receivers: jax.Array) -> Callable:
    """The pullback of the chunk whose inputs are given, from its stored leaves."""
    inputs = self._inputs(consts, arrays, senders, receivers)
    stored = iter(stored)
    leaves = [next(stored) if k is None else inputs[k] for k in self.known]
    return jax.tree_util.tree_unflatten(self.treedef, leaves)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _chunk_sums(pullbacks, consts, arrays, senders, receivers, zeros, limit):
  return _chunk_sums_fwd(pullbacks, consts, arrays, senders, receivers, zeros, limit)[0]


def _is_real(receivers: jax.Array, first_padding: jax.Array) -> jax.Array:
  """Whether chunks ([..., S] receivers, sorted) hold real edges: their first receiver
  (sorted: the first edge decides) is below the first padding node."""
  return receivers[..., 0] < first_padding


def _real_chunks(receivers: jax.Array, limit: jax.Array) -> jax.Array:
  """Chunks ([C, S] receivers) that hold real edges: a prefix, receivers being sorted."""
  return jnp.sum(_is_real(receivers, limit)).astype(jnp.int32)


def _take(arrays: tuple, i) -> tuple:
  return tuple(None if a is None else a[i] for a in arrays)


def _chunk_sums_fwd(pullbacks, consts, arrays, senders, receivers, zeros, limit):
  num_nodes = jax.tree_util.tree_leaves(zeros)[0].shape[0]
  chunks = senders.shape[0]
  take = lambda i: _take(arrays, i)
  shapes = jax.eval_shape(lambda: pullbacks.vjp(consts, take(0), senders[0], receivers[0])[1])
  buffers = ops.varying_like([jnp.zeros((chunks,) + s.shape, s.dtype) for s in shapes],
                             receivers)

  def body(i, carry):
    total, buffers = carry
    out, stored = pullbacks.vjp(consts, take(i), senders[i], receivers[i])
    buffers = [jax.lax.dynamic_update_index_in_dim(b, x, i, 0)
               for b, x in zip(buffers, stored)]
    total = jax.tree_util.tree_map(
        lambda s, t: s + ops.segment_sum(t, receivers[i], num_nodes, sorted_ids=True),
        total, out)
    return total, buffers

  count = _real_chunks(receivers, limit)
  total, buffers = jax.lax.fori_loop(0, count, body, (zeros, buffers))
  return total, (consts, arrays, senders, receivers, limit, count, buffers)


def _chunk_sums_bwd(pullbacks, residuals, d_total):
  consts, arrays, senders, receivers, limit, count, buffers = residuals
  out_like = jax.eval_shape(
      lambda: pullbacks.pure(_take(arrays, 0), senders[0], receivers[0], *consts))

  def body(i, grads):
    d_consts, d_arrays = grads
    pullback = pullbacks.rebuild([b[i] for b in buffers], consts, _take(arrays, i),
                                 senders[i], receivers[i])
    d_out = jax.tree_util.tree_map(
        lambda d, like: jnp.take(d, receivers[i], axis=0, mode="fill",
                                 fill_value=0).astype(like.dtype), d_total, out_like)
    g_consts, g_arrays = pullback(d_out)
    d_consts = jax.tree_util.tree_map(jnp.add, d_consts, g_consts)
    d_arrays = tuple(None if d is None else jax.lax.dynamic_update_index_in_dim(d, g, i, 0)
                     for d, g in zip(d_arrays, g_arrays))
    return d_consts, d_arrays

  zeros = lambda tree: ops.varying_like(jax.tree_util.tree_map(jnp.zeros_like, tree), receivers)
  d_consts, d_arrays = jax.lax.fori_loop(0, count, body, (zeros(consts), zeros(arrays)))
  return (d_consts, d_arrays, _float0_like(senders), _float0_like(receivers), d_total,
          _float0_like(limit))


_chunk_sums.defvjp(_chunk_sums_fwd, _chunk_sums_bwd)
