"""`nets.edge_chunks`: sums over edges in chunks, recomputed or stored for the backward pass.

Small hand-made message functions (tanh MLPs of distinct widths, so that each product is
recognisable by its operand shapes), chunks of at most 16 edges over 90 edges (6 chunks of
15, the last one padded), compared with the sum over all edges at once.
"""
from __future__ import annotations

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgeo.nets import edge_chunks
from conftest import jaxpr_equations

NODES, EDGES, CHUNK = 30, 90, 16
SIZE = -(-EDGES // edge_chunks.num_chunks(EDGES, CHUNK))    # 6 chunks of 15, the last padded
IN, HIDDEN, OUT = 5, 7, 3


def edges(seed: int = 0):
  rng = np.random.default_rng(seed)
  receivers = np.sort(rng.integers(0, NODES, EDGES)).astype(np.int32)
  senders = rng.integers(0, NODES, EDGES).astype(np.int32)
  nodes = rng.normal(size=(NODES, IN)).astype(np.float32)
  edge_x = rng.normal(size=(EDGES, IN)).astype(np.float32)
  return jnp.asarray(nodes), jnp.asarray(edge_x), jnp.asarray(senders), jnp.asarray(receivers)


def model(edge_chunk: int, remat: bool = False, store_dots: bool = False,
          first_padding: int | None = None, recompute_vjp: bool = False):
  """A Haiku function of (nodes [N, IN], edge_x [E, IN], senders, receivers): per edge a
  two-layer MLP of the sender's features plus the edge's, [E, OUT], and a second term
  [E, 1], summed into the receivers; -> a scalar of the sums."""

  def f(nodes, edge_x, senders, receivers):
    first = hk.Linear(HIDDEN, name="first")
    w2 = hk.get_parameter("w2", (HIDDEN, OUT), init=hk.initializers.RandomNormal(0.5))
    scaled = nodes * hk.get_parameter("scale", (IN,), init=jnp.ones)   # closed over

    def terms(edge_x, none, senders, receivers):
      assert none is None
      h = jnp.tanh(first(jnp.take(scaled, senders, axis=0) + edge_x))
      out = jnp.tanh(h @ w2)
      return out, None, jnp.sum(h * jnp.take(scaled, receivers, axis=0)[:, :1], axis=-1,
                                keepdims=True)

    zeros = (jnp.zeros((NODES, OUT)), None, jnp.zeros((NODES, 1)))
    limit = None if first_padding is None else jnp.asarray(first_padding, jnp.int32)
    a, _, b = edge_chunks.sum_over_edges(terms, (edge_x, None), senders, receivers, zeros,
                                         edge_chunk, remat, limit, store_dots,
                                         recompute_vjp)
    return jnp.sum(jnp.sin(a)) + jnp.sum(b ** 2)
  return hk.without_apply_rng(hk.transform(f))


def value_and_grads(fn, params, nodes, edge_x, senders, receivers):
  return jax.jit(jax.value_and_grad(fn.apply, argnums=(0, 1, 2)))(
      params, nodes, edge_x, senders, receivers)


def assert_trees_close(a, b, tol):
  """Each leaf equal to `tol` relative to its largest magnitude (sums in another order)."""
  assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
  for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
    np.testing.assert_allclose(x, y, rtol=0, atol=tol * max(1.0, float(np.max(np.abs(y)))))


CUSTOM_VJPS = ({"store_dots": True}, {"remat": True, "recompute_vjp": True})


@pytest.mark.parametrize("custom", CUSTOM_VJPS, ids=("store_dots", "recompute_vjp"))
@pytest.mark.parametrize("first_padding", [None, 20])
def test_stored_chunks_give_the_sums_and_gradients_of_all_edges_at_once(first_padding, custom):
  """Chunks differentiated by `stored_chunk_sums`' custom VJP, whether it keeps their matmul
  outputs for the backward pass (`store_dots`) or nothing (`recompute_vjp`), give the value
  and the gradients (parameters, closed-over and edge arrays) of the scan of recomputed
  chunks and of all edges at once; with `first_padding`, the chunks whose first receiver is
  at or past it are skipped in both loops, as the recomputed chunks' cond skips them."""
  nodes, edge_x, senders, receivers = edges()
  whole = model(0)
  params = whole.init(jax.random.PRNGKey(0), nodes, edge_x, senders, receivers)
  stored = model(CHUNK, first_padding=first_padding, **custom)
  recomputed = model(CHUNK, remat=True, first_padding=first_padding)
  got = value_and_grads(stored, params, nodes, edge_x, senders, receivers)
  assert_trees_close(got, value_and_grads(recomputed, params, nodes, edge_x, senders,
                                          receivers), 1e-5)
  reference = value_and_grads(whole, params, nodes, edge_x, senders, receivers)
  if first_padding is None:
    assert_trees_close(got, reference, 1e-5)
  else:   # the skipped chunks' edges (receivers from the chunk that starts past 20) are gone
    skipped = int(np.argmax(np.asarray(receivers)[::SIZE] >= first_padding)) * SIZE
    assert 0 < skipped < EDGES
    assert not np.allclose(got[0], reference[0])
    kept = value_and_grads(whole, params, nodes, edge_x[:skipped], senders[:skipped],
                           receivers[:skipped])
    assert_trees_close(got[0], kept[0], 1e-5)
    np.testing.assert_array_equal(got[1][2][skipped:], 0.0)
    assert_trees_close(got[1][2][:skipped], kept[1][2], 1e-5)


def _products(fn, params, *args):
  """(lhs shape, rhs shape) of every dot_general in the gradient's program."""
  jaxpr = jax.make_jaxpr(jax.grad(fn.apply))(params, *args).jaxpr
  return [tuple(tuple(v.aval.shape) for v in e.invars) for e in jaxpr_equations(jaxpr)
          if e.primitive.name == "dot_general"]


def test_stored_chunks_do_not_recompute_their_matmuls():
  """The point of `store_dots`: the backward pass reads each chunk's forward products
  instead of running them again. The gradient's program holds each forward product ([SIZE,
  IN] x [IN, HIDDEN] and [SIZE, HIDDEN] x [HIDDEN, OUT]) once, in the forward loop; with the
  recomputed chunks (`remat`, a scan or `recompute_vjp`), twice."""
  nodes, edge_x, senders, receivers = edges()
  params = model(0).init(jax.random.PRNGKey(0), nodes, edge_x, senders, receivers)
  forward = [((SIZE, IN), (IN, HIDDEN)), ((SIZE, HIDDEN), (HIDDEN, OUT))]
  for kwargs, expected in (({"store_dots": True}, 1), ({"remat": True}, 2),
                           ({"remat": True, "recompute_vjp": True}, 2)):
    products = _products(model(CHUNK, **kwargs), params, nodes, edge_x, senders, receivers)
    assert [products.count(p) for p in forward] == [expected] * 2, kwargs


def test_a_chunk_stores_its_matmul_outputs_only():
  """What a chunk keeps for the backward pass is the outputs of its products; its inputs
  (the shared constants, its edge arrays and indices) are read again, not copied."""
  rng = np.random.default_rng(2)
  w1, w2 = (jnp.asarray(rng.normal(size=shape), jnp.float32)
            for shape in ((IN, HIDDEN), (HIDDEN, OUT)))
  edge_x = jnp.asarray(rng.normal(size=(SIZE, IN)), jnp.float32)
  senders, receivers = (jnp.arange(SIZE, dtype=jnp.int32),) * 2

  def pure(arrays, senders, receivers, w1, w2):
    return jnp.tanh(jnp.tanh(arrays[0] @ w1) @ w2) * senders[:, None]
  pullbacks = edge_chunks._Pullbacks(pure)
  _, stored = pullbacks.vjp((w1, w2), (edge_x,), senders, receivers)
  assert [x.shape for x in stored] == [(SIZE, HIDDEN), (SIZE, OUT)]
  # Storing nothing (`recompute_vjp`): the pullback is rebuilt from the inputs alone.
  recompute = edge_chunks._Pullbacks(pure, jax.checkpoint_policies.nothing_saveable)
  assert recompute.vjp((w1, w2), (edge_x,), senders, receivers)[1] == []


def test_stored_chunks_at_init_create_the_parameters_of_the_recomputed_ones():
  """At init the stored path is the plain chunk scan (closure conversion cannot create
  parameters): the same parameter tree and values."""
  args = edges()
  key = jax.random.PRNGKey(1)
  assert_trees_close(model(CHUNK, store_dots=True).init(key, *args),
                     model(CHUNK, remat=True).init(key, *args), 0.0)
