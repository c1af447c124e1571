"""The networks on graphs of the paper's featurisation (`residue_graph(features="paper")`):
no node vectors or dihedrals, 16 RBF edge scalars + the edge direction.

Each network runs (shapes, finite), reads the narrower inputs with the input widths it should
(GVP: no input vector channels, a 16-wide edge input), and keeps its symmetries: outputs
invariant to rotations, translations and reflections (nothing in a paper graph is chiral),
EGNN coordinates equivariant.
"""
from __future__ import annotations

import dataclasses
import functools

import jax
import numpy as np
import pytest

from jaxgeo import graph as graph_lib
from jaxgeo import nets
from jaxgeo.errors import DataError
from jaxgeo.nets import synthetic

NETWORKS = ("gvp", "egnn", "molformer")
LM_DIM = 4


def paper_tiny_config(network: str, head: str = "node") -> nets.ModelConfig:
  """Small widths; node inputs from the fusion only, as every paper configuration."""
  return nets.ModelConfig(
      network=network, head=head, out_dim=2, node_features=False,
      fusion=nets.FusionConfig(mode="concat", lm_dim=LM_DIM, embed_dim=6),
      gvp=nets.GVPConfig(node_dims=(8, 4), edge_dims=(6, 1), num_layers=2),
      egnn=nets.EGNNConfig(hidden=8, num_layers=2, normalize=False),
      molformer=nets.MolformerConfig(width=8, num_heads=2, ffn_dim=8, num_layers=2,
                                     query_block=8, key_block=8))


@pytest.fixture(scope="module")
def batch():
  rng = np.random.default_rng(0)
  graphs = [synthetic.random_graph(rng, 12, lm_dim=LM_DIM, k=6, features="paper"),
            synthetic.random_graph(rng, 15, lm_dim=LM_DIM, edges="radius",
                                   num_ligand_atoms=3, features="paper"),
            synthetic.random_graph(rng, 9, lm_dim=LM_DIM, k=6, features="paper")]
  return synthetic.pad_batch(graphs, extra_nodes=3, extra_edges=5)


def _rotation(rng, reflect):
  q, r = np.linalg.qr(rng.normal(size=(3, 3)))
  q = q * np.sign(np.diag(r))
  if (np.linalg.det(q) < 0) != reflect:
    q[:, 0] = -q[:, 0]
  return q.astype(np.float32)


def _moved(batch, rotation, shift):
  """A paper graph's only geometric arrays: node positions and edge directions."""
  nodes = dict(batch.nodes, x=batch.nodes["x"] @ rotation.T + shift.astype(np.float32))
  edges = dict(batch.edges, v=batch.edges["v"] @ rotation.T)
  return batch._replace(nodes=nodes, edges=edges)


def _close(a, b, tol, what):
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  err = float(np.max(np.abs(a - b))) / max(1.0, float(np.max(np.abs(a))))
  assert err <= tol, f"{what}: relative error {err:.1e}"


def test_paper_batch_has_only_the_papers_arrays(batch):
  assert set(batch.nodes) == {"x", "aatype", "element", "lm"}
  assert batch.edges["s"].shape[1] == graph_lib.PAPER_EDGE_SCALAR_DIM == 16
  assert batch.edges["v"].shape[1:] == (1, 3)


@pytest.mark.parametrize("network", NETWORKS)
def test_forward_and_symmetries_on_paper_graphs(network, batch):
  model = nets.make_model(paper_tiny_config(network))
  params = jax.jit(model.init)(jax.random.key(0, impl="rbg"), batch)
  apply = jax.jit(functools.partial(model.apply, is_training=False))
  out = apply(params, None, batch)
  n = batch.nodes["x"].shape[0]
  n_real = int(batch.n_node[:-1].sum())
  assert out["node"].shape == (n, 2) and np.all(np.isfinite(out["node"]))
  rng = np.random.default_rng(1)
  for reflect in (False, True):
    rotation, shift = _rotation(rng, reflect), rng.normal(size=3) * 20
    moved = apply(params, None, _moved(batch, rotation, shift))
    _close(out["node"][:n_real], moved["node"][:n_real], 1e-4,
           f"{network} node outputs (reflect={reflect})")
    if "x" in out:
      _close(np.asarray(out["x"][:n_real]) @ rotation.T + shift, moved["x"][:n_real], 1e-4,
             "EGNN coordinates")


def test_input_widths_on_paper_graphs(batch):
  """GVP-GNN: the node input GVP has no vector input (the paper's GVP((embed, 0) ->
  (100, 16))), the edge input GVP reads 16 scalars + 1 vector; EGNN's edge MLP reads 16."""
  shapes = {}
  for network in ("gvp", "egnn"):
    model = nets.make_model(paper_tiny_config(network))
    shapes[network] = jax.eval_shape(model.init, jax.random.key(0), batch)
  node_in = shapes["gvp"]["gvp_gnn/node_in"]
  assert "wh" not in node_in                           # no input vector channels
  assert node_in["ws"].shape == (6 + LM_DIM, 8)        # fused (embed ++ lm) -> 8 scalars
  edge_in = shapes["gvp"]["gvp_gnn/edge_in"]
  assert edge_in["ws"].shape == (16 + 1, 6)            # 16 RBFs ++ |vh| of 1 hidden vector
  egnn_w = shapes["egnn"]["egnn/layers/gcl"]["edge_mlp_0_w"]
  assert egnn_w.shape == (2, 2 * 8 + 1 + 16, 8)        # 2 stacked layers


def test_gvp_gradients_finite_without_node_vectors(batch):
  """The zero vector channels made by the node input GVP keep gradients finite."""
  model = nets.make_model(paper_tiny_config("gvp"))
  params = jax.jit(model.init)(jax.random.key(0, impl="rbg"), batch)
  n_real = int(batch.n_node[:-1].sum())

  def loss(p):
    out = model.apply(p, jax.random.key(1, impl="rbg"), batch, is_training=True)
    return (out["node"][:n_real] ** 2).sum()

  with jax.debug_nans(True):
    grads = jax.jit(jax.grad(loss))(params)
  leaves = jax.tree_util.tree_leaves(grads)
  assert all(np.all(np.isfinite(g)) for g in leaves)
  assert sum(float(np.abs(g).sum()) for g in leaves) > 0


def test_node_features_need_rich_graphs(batch):
  config = dataclasses.replace(paper_tiny_config("gvp"), node_features=True)
  with pytest.raises(DataError, match="node_features"):
    nets.make_model(config).init(jax.random.key(0), batch)


def test_paper_configs_follow_the_papers_code():
  """Architecture defaults checked against smiles724/GGNN_Meets_PLM."""
  egnn = nets.paper_config("egnn")
  assert egnn.egnn.normalize is False and egnn.egnn.attention is False
  assert (egnn.egnn.hidden, egnn.egnn.num_layers, egnn.egnn.activation) == (32, 4, "silu")
  assert nets.paper_config("egnn", fusion="replace").egnn.hidden == 1280
  gvp = nets.paper_config("gvp").gvp
  assert (gvp.node_dims, gvp.edge_dims, gvp.num_layers, gvp.dropout) == (
      (100, 16), (32, 1), 5, 0.1)
  assert (gvp.n_message, gvp.n_feedforward, gvp.vector_gate) == (3, 2, True)
  mol = nets.paper_config("molformer").molformer
  assert (mol.width, mol.num_layers, mol.num_heads, mol.ffn_dim, mol.dropout) == (
      32, 2, 4, 32, 0.1)
  for network in NETWORKS:
    assert nets.paper_config(network).node_features is False
  # normalize changes the function, never the parameter count.
  on = nets.paper_config("egnn").replace(
      egnn=dataclasses.replace(nets.paper_config("egnn").egnn, normalize=True))
  assert nets.count_params(on) == nets.count_params(nets.paper_config("egnn"))


def test_paper_egnn_runs_on_a_paper_graph():
  """The full paper EGNN (hidden 32, 4 layers, unnormalised coordinate updates) on a real
  paper-featurised graph: finite outputs and its parameter count."""
  rng = np.random.default_rng(2)
  g = synthetic.random_graph(rng, 40, edges="radius", features="paper")
  config = nets.paper_config("egnn", head="node")
  model = nets.make_model(config)
  params = jax.jit(model.init)(jax.random.key(0, impl="rbg"), g)
  out = jax.jit(functools.partial(model.apply, is_training=False))(params, None, g)
  assert out["node"].shape == (40, 1) and np.all(np.isfinite(out["node"]))
  assert nets.param_count(params) == nets.count_params(config, "paper")
