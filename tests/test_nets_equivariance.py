"""Symmetries: GVP building blocks, float64 invariance, and what a reflection does.

What a reflection (a mirror image, det = -1) does to each network:
- GVP: every operation (channel-mixing linear maps, channel norms, scaling by invariant
  scalars) commutes with any orthogonal map, reflections included. A GVP-GNN is chiral only
  through its input features: the sines of the backbone dihedrals (`nodes["s"]`) change sign
  in a mirror image (pseudo-scalars). With node features on (the default), the outputs of a
  mirrored protein differ; with the papers' inputs (residue type or LM vector, edge
  distances and directions) they do not.
- EGNN and Molformer see coordinates only through distances: invariant to reflections, and
  EGNN's coordinate outputs are mirrored with the input. They too become chiral only through
  the dihedral node features.
"""
from __future__ import annotations

import dataclasses
import functools

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgeo import graph as graph_lib
from jaxgeo import nets
from jaxgeo.nets import gvp, ops, synthetic
from test_nets_models import (NETWORKS, assert_close, make_graphs, random_rotation, rng_key,
                              tiny_config, transform)


def _gvp_blocks(s, v, es, ev, senders, receivers):
  """A GVP, then a GVPConvLayer (vector gating, dropout off), on (s [N, S], v [N, 3, V])."""
  s1, v1 = gvp.GVP((7, 5), name="gvp")(s, v)
  degree = jnp.zeros(s.shape[0]).at[receivers].add(1.0)
  s2, v2 = gvp.GVPConvLayer((7, 5), name="layer")(s1, v1, es, ev, senders, receivers, degree,
                                                  is_training=False)
  return s1, v1, s2, v2


@pytest.mark.parametrize("reflect", [False, True])
def test_gvp_blocks_are_o3_equivariant(reflect):
  """Scalars invariant and vectors equivariant under rotations and reflections."""
  rng = np.random.default_rng(0)
  n, e = 9, 30
  s = rng.normal(size=(n, 4)).astype(np.float32)
  v = rng.normal(size=(n, 3, 3)).astype(np.float32)
  es = rng.normal(size=(e, 5)).astype(np.float32)
  ev = rng.normal(size=(e, 3, 1)).astype(np.float32)
  senders = rng.integers(0, n, e).astype(np.int32)
  receivers = np.sort(rng.integers(0, n, e)).astype(np.int32)
  fn = hk.without_apply_rng(hk.transform(_gvp_blocks))
  params = jax.jit(fn.init)(rng_key(0), s, v, es, ev, senders, receivers)
  apply = jax.jit(fn.apply)
  q = random_rotation(rng, reflect=reflect).astype(np.float32)
  rot = lambda x: np.einsum("ij,...jc->...ic", q, x)          # [.., 3, C] channels-last
  out = apply(params, s, v, es, ev, senders, receivers)
  moved = apply(params, s, rot(v), es, rot(ev), senders, receivers)
  for a, b, is_vector in zip(out, moved, (False, True, False, True)):
    assert_close(rot(np.asarray(a)) if is_vector else a, b, 1e-5, "GVP block")
  assert float(np.abs(out[3]).max()) > 1e-3  # the vectors are not trivially zero


def test_gvp_on_edges_equals_concatenated_messages():
  """The split first message GVP is the same function as a GVP on the concatenation."""
  rng = np.random.default_rng(1)
  n, e = 10, 40
  args = (rng.normal(size=(n, 7)), rng.normal(size=(n, 3, 4)), rng.normal(size=(e, 3)),
          rng.normal(size=(e, 3, 2)))
  args = tuple(a.astype(np.float32) for a in args)
  senders = rng.integers(0, n, e)
  receivers = np.sort(rng.integers(0, n, e))

  def both(s, v, es, ev):
    layer = gvp.GVP((6, 5), name="message")
    split = layer.on_edges(s, v, es, ev, senders, receivers)
    joined = layer(jnp.concatenate([s[senders], es, s[receivers]], -1),
                   jnp.concatenate([v[senders], ev, v[receivers]], -1))
    return split, joined

  fn = hk.without_apply_rng(hk.transform(both))
  (s1, v1), (s2, v2) = fn.apply(fn.init(rng_key(0), *args), *args)
  assert_close(s1, s2, 1e-5, "scalars")
  assert_close(v1, v2, 1e-5, "vectors")


def test_gvp_is_the_textbook_function_of_its_parameters():
  """A GVP (vector gating on the pre-activation scalars) computes s' = relu([s, |v wh|] ws +
  bs), v' = (v wh wv) * sigmoid(([s, |v wh|] ws + bs) wsv + bsv) from its parameters."""
  rng = np.random.default_rng(3)
  s = rng.normal(size=(12, 7)).astype(np.float32)
  v = rng.normal(size=(12, 3, 4)).astype(np.float32)
  fn = hk.without_apply_rng(hk.transform(lambda s, v: gvp.GVP((6, 5), name="g")(s, v)))
  params = fn.init(rng_key(0), s, v)
  out_s, out_v = fn.apply(params, s, v)
  p = {k: np.asarray(x, np.float64) for k, x in params["g"].items()}
  vh = np.einsum("nxc,cd->nxd", v, p["wh"])
  pre = np.concatenate([s, np.sqrt(np.maximum((vh ** 2).sum(1), 1e-8))], -1) @ p["ws"] + p["bs"]
  gate = 1.0 / (1.0 + np.exp(-(pre @ p["wsv"] + p["bsv"])))
  assert_close(out_s, np.maximum(pre, 0.0), 1e-5, "scalars")
  assert_close(out_v, np.einsum("nxc,cd->nxd", vh, p["wv"]) * gate[:, None, :], 1e-5,
               "vectors")


@pytest.mark.parametrize("vector_gate", [True, False])
def test_gvp_mean_over_edges_equals_mean_of_messages(vector_gate):
  """The last message GVP averaged per node before its scalar matmul is the same function
  as the mean of its outputs over incoming edges (node 0 has no incoming edge: 0)."""
  rng = np.random.default_rng(2)
  n, e = 10, 40
  s = rng.normal(size=(e, 7)).astype(np.float32)
  v = rng.normal(size=(e, 3, 4)).astype(np.float32)
  receivers = np.sort(rng.integers(1, n, e))
  degree = np.bincount(receivers, minlength=n).astype(np.float32)

  def both(s, v):
    layer = gvp.GVP((6, 5), activations=(None, None), vector_gate=vector_gate, name="last")
    ms, mv = layer(s, v)
    mean = lambda x: ops.mean_aggregate(x, receivers, degree)
    return layer.mean_over_edges(s, v, receivers, degree), (mean(ms), mean(mv))

  fn = hk.transform(both)
  params = fn.init(rng_key(0), s, v)
  params = jax.tree_util.tree_map(lambda p: p + 0.1, params)     # non-zero biases
  (s1, v1), (s2, v2) = fn.apply(params, None, s, v)
  assert_close(s1, s2, 1e-5, "scalars")
  assert_close(v1, v2, 1e-5, "vectors")
  assert float(np.abs(s2[1:]).min()) > 0 and not np.any(s1[0]) and not np.any(v1[0])
  with pytest.raises(ValueError, match="without activations"):
    hk.transform(lambda s, v: gvp.GVP((6, 5), name="relu").mean_over_edges(
        s, v, receivers, degree)).init(rng_key(0), s, v)


@pytest.mark.parametrize("network", NETWORKS)
def test_float64_invariance(network):
  """In float64 mode the invariance holds to 1e-6 (float32 tests use 1e-4)."""
  with jax.enable_x64(True):
    graphs = make_graphs(seed=3)
    batch = synthetic.pad_batch(graphs, extra_nodes=2, extra_edges=3)
    batch = batch._replace(nodes={k: v.astype(np.float64) if v.dtype == np.float32 else v
                                  for k, v in batch.nodes.items()},
                           edges={k: v.astype(np.float64) for k, v in batch.edges.items()})
    model = nets.make_model(tiny_config(network))
    params = jax.jit(model.init)(rng_key(0), batch)
    apply = jax.jit(functools.partial(model.apply, is_training=False))
    out = apply(params, None, batch)
    assert out["node"].dtype == jnp.float64
    n_real = int(batch.n_node[:-1].sum())
    rng = np.random.default_rng(4)
    rot, shift = random_rotation(rng), rng.normal(size=3) * 20
    moved = apply(params, None, transform(batch, rot, shift))
    assert_close(out["node"][:n_real], moved["node"][:n_real], 1e-6, "float64 node outputs")
    if "x" in out:
      assert_close(np.asarray(out["x"][:n_real]) @ rot.T + shift, moved["x"][:n_real], 1e-6,
                   "float64 coordinates")


def _mirror(protein):
  flip = np.array([-1.0, 1.0, 1.0], np.float32)
  return dataclasses.replace(protein, backbone=protein.backbone * flip, cb=protein.cb * flip,
                             atom_positions=protein.atom_positions * flip)


@pytest.mark.parametrize("network", NETWORKS)
def test_reflection(network):
  """Mirror image of a protein, features recomputed by `residue_graph` (see the module
  docstring): invariant without the dihedral node features, different with them."""
  protein = synthetic.random_protein(np.random.default_rng(5), 24)
  graphs = [graph_lib.residue_graph(p, edges="knn", k=6) for p in (protein, _mirror(protein))]
  # The features transform as expected: dihedral sines flip, cosines and distances do not.
  np.testing.assert_allclose(graphs[1].nodes["s"][:, :3], -graphs[0].nodes["s"][:, :3],
                             atol=1e-5)
  np.testing.assert_allclose(graphs[1].nodes["s"][:, 3:], graphs[0].nodes["s"][:, 3:],
                             atol=1e-5)
  np.testing.assert_allclose(graphs[1].edges["s"], graphs[0].edges["s"], atol=1e-5)
  for node_features in (False, True):
    config = tiny_config(network, head="graph", node_features=node_features,
                         fusion=nets.FusionConfig(mode="none", embed_dim=6))
    model = nets.make_model(config)
    params = jax.jit(model.init)(rng_key(0), graphs[0])
    apply = jax.jit(functools.partial(model.apply, is_training=False))
    original, mirrored = (apply(params, None, g) for g in graphs)
    if node_features:
      assert not np.allclose(original["graph"], mirrored["graph"], atol=1e-4), (
          "dihedral node features make the network chiral")
    else:
      assert_close(original["graph"], mirrored["graph"], 1e-4, "mirror image")
      if "x" in original:
        flip = np.array([-1.0, 1.0, 1.0])
        assert_close(np.asarray(original["x"]) * flip, mirrored["x"], 1e-4, "coordinates")
