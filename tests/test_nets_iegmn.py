"""IEGMN (EquiDock) in Haiku: invariance, reflections, padding, losses, and overfitting three
real DB5.5 complexes."""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxgeo import batching, geometry, structure
from jaxgeo.datasets import synthetic
from jaxgeo.metrics import docking
from jaxgeo.nets import docking_losses, iegmn

BUCKET = batching.Bucket(n_node=192, n_edge=2048, n_graph=3)       # two pairs
BIG_BUCKET = batching.Bucket(n_node=320, n_edge=3072, n_graph=5)
MIRROR = np.diag([1.0, 1.0, -1.0])
TOL = 1e-3                                                          # Angstrom, float32


@pytest.fixture(scope="module")
def proteins():
  return _synthetic()


@pytest.fixture(scope="module")
def model():
  """(apply jitted on batches, params) of the tiny IEGMN."""
  config = iegmn.tiny_config()
  transformed = iegmn.make_iegmn(config)
  lig, rec = _synthetic()
  batch = batching.pad([iegmn.pair_graph(lig, rec, rng=0)] * 2, BUCKET)
  params = jax.jit(transformed.init)(jax.random.PRNGKey(0), batch)
  apply = jax.jit(lambda p, b: transformed.apply(p, None, b))
  return apply, params


@functools.lru_cache(maxsize=1)
def _synthetic():
  """A synthetic ligand (30 residues) touching a synthetic receptor (45)."""
  rng = np.random.default_rng(0)
  rec = synthetic.random_protein(45, rng)
  lig = synthetic.random_protein(30, rng)
  lig = geometry.move_protein(lig, np.eye(3), rec.ca.mean(0) - lig.ca.mean(0))
  for shift in np.arange(0.0, 100.0, 0.5):       # slide the ligand out until it touches (5 A)
    x = lig.ca + np.array([shift, 0.0, 0.0])
    if np.min(np.linalg.norm(x[:, None] - rec.ca[None], axis=-1)) > 5.0:
      break
  return geometry.move_protein(lig, np.eye(3), np.array([shift, 0.0, 0.0])), rec


def _predict(model, graphs, bucket=BUCKET):
  apply, params = model
  out = apply(params, batching.pad(graphs, bucket))
  offsets = np.concatenate([[0], np.cumsum([g.n_node[0] for g in graphs])])
  x_pred = np.asarray(out["x_pred"])
  return [x_pred[offsets[i]:offsets[i + 1]] for i in range(len(graphs))], out


def _ligand(graph, x):
  return x[graph.nodes["partner"] == 0]


def test_pair_graph_layout(proteins):
  lig, rec = proteins
  g = iegmn.pair_graph(lig, rec, rng=3)
  n_lig, n = len(lig), len(lig) + len(rec)
  assert g.n_node.tolist() == [n]
  np.testing.assert_array_equal(g.nodes["partner"], [0] * n_lig + [1] * len(rec))
  assert g.edges["s"].shape == (g.n_edge[0], iegmn.EDGE_DIM)
  # edges stay within a partner, at most 10 per receiver, sorted by receiver
  part = g.nodes["partner"]
  assert (part[g.senders] == part[g.receivers]).all()
  assert np.bincount(g.receivers).max() == iegmn.KNN
  assert (np.diff(g.receivers) >= 0).all()
  # receptor untouched; ligand input = x_true moved by the stored rigid motion
  np.testing.assert_allclose(g.nodes["x"][n_lig:], g.nodes["x_true"][n_lig:])
  r, t = g.globals["ligand_rotation"][0], g.globals["ligand_translation"][0]
  assert np.linalg.det(r) == pytest.approx(1.0, abs=1e-5)
  np.testing.assert_allclose(geometry.apply_transform(g.nodes["x_true"][:n_lig], r, t),
                             g.nodes["x"][:n_lig], atol=1e-3)
  assert np.abs(g.nodes["x"][:n_lig] - g.nodes["x_true"][:n_lig]).max() > 1.0
  # the pocket: interface residues of both partners, in both frames
  assert g.nodes["pocket_mask"][:n_lig].any() and g.nodes["pocket_mask"][n_lig:].any()
  # seeded
  g2 = iegmn.pair_graph(lig, rec, rng=3)
  np.testing.assert_array_equal(g.nodes["x"], g2.nodes["x"])


def test_prediction_invariant_to_rigid_motions_of_either_input(model, proteins):
  lig, rec = proteins
  rng = np.random.default_rng(11)
  g0 = iegmn.pair_graph(lig, rec, rng=0)
  g1 = iegmn.pair_graph(lig, rec, rng=1)            # the ligand input rotated/translated anew
  q, s = geometry.random_rotation(rng), rng.standard_normal(3) * 20.0
  g2 = iegmn.pair_graph(geometry.move_protein(lig, q, s), geometry.move_protein(rec, q, s), rng=0)
  (p0, p1), out = _predict(model, [g0, g1])
  (p2, _), _ = _predict(model, [g2, g0])
  assert np.isfinite(p0).all()
  # the ligand's input poses differ by tens of A, its predicted pose by < 1e-3 A
  assert np.abs(_ligand(g0, g0.nodes["x"]) - _ligand(g1, g1.nodes["x"])).max() > 5.0
  assert np.abs(_ligand(g0, p0) - _ligand(g1, p1)).max() < TOL
  # receptor moved: the prediction follows it (compared in the receptor's frame)
  back = (p2 - s) @ q
  assert np.abs(_ligand(g0, back) - _ligand(g0, p0)).max() < TOL
  rot = np.asarray(out["rotation"])[:2]
  np.testing.assert_allclose(np.linalg.det(rot), 1.0, atol=1e-5)


def test_reflection_of_both_inputs(model, proteins):
  """Distance-only features (orientation=False): a mirror image of both inputs gives the
  mirror image of the prediction (Kabsch of mirrored keypoints is the conjugated rotation).
  With EquiDock's orientation features (local frames n = u x t are chiral) the network
  sees a different input and the prediction is NOT the mirror image: measured at random
  initialisation, the ligand lands ~16 A (RMS over its CAs) from it."""
  lig, rec = proteins
  m_lig = geometry.move_protein(lig, MIRROR, np.zeros(3))
  m_rec = geometry.move_protein(rec, MIRROR, np.zeros(3))
  deviation = {}
  for orientation in (False, True):
    g = iegmn.pair_graph(lig, rec, rng=0, orientation=orientation)
    gm = iegmn.pair_graph(m_lig, m_rec, rng=0, orientation=orientation)
    (p, pm), _ = _predict(model, [g, gm])
    diff = _ligand(g, pm) - _ligand(g, p @ MIRROR.T)
    deviation[orientation] = np.sqrt(np.mean(np.sum(diff ** 2, axis=-1)))
  assert deviation[False] < TOL
  assert deviation[True] > 2.0


def test_padding_does_not_change_real_outputs(model, proteins):
  lig, rec = proteins
  graphs = [iegmn.pair_graph(lig, rec, rng=0),
            iegmn.pair_graph(lig.take(np.arange(25)), rec.take(np.arange(5, 45)), rng=1)]
  (a0, a1), out_a = _predict(model, graphs, BUCKET)
  (b0, b1), out_b = _predict(model, graphs, BIG_BUCKET)
  # equal up to float32 summation order (amplified a little by the Kabsch of keypoints that
  # are still close together at initialisation)
  np.testing.assert_allclose(a0, b0, atol=TOL)
  np.testing.assert_allclose(a1, b1, atol=TOL)
  for key, tol in (("rotation", 1e-4), ("translation", TOL), ("ligand_keypoints", 1e-4),
                   ("receptor_keypoints", 1e-4)):
    np.testing.assert_allclose(np.asarray(out_a[key])[:2], np.asarray(out_b[key])[:2],
                               atol=tol)
  # and the losses per real graph
  losses = jax.jit(lambda out, batch: [
      fn(out, batch) for fn in (docking_losses.ligand_mse, docking_losses.ot_keypoint_loss,
                                docking_losses.intersection_loss)])
  for la, lb in zip(losses(out_a, batching.pad(graphs, BUCKET)),
                    losses(out_b, batching.pad(graphs, BIG_BUCKET))):
    la, lb = np.asarray(la), np.asarray(lb)
    np.testing.assert_allclose(la[:2], lb[:2], rtol=1e-4, atol=1e-3)
    assert (la[2:] == 0).all() and (lb[2:] == 0).all()


def test_losses():
  # ligand MSE: zero at the truth, a third of the squared RMSD otherwise
  lig, rec = _synthetic()
  g = iegmn.pair_graph(lig, rec, rng=0)
  batch = jax.tree_util.tree_map(jnp.asarray, batching.pad([g], batching.Bucket(96, 1024, 2)))
  truth = {"x_pred": batch.nodes["x_true"]}
  assert float(docking_losses.ligand_mse(truth, batch)[0]) == 0.0
  shifted = {"x_pred": batch.nodes["x_true"] + jnp.where(
      (batch.nodes["partner"] == 0)[:, None], jnp.array([3.0, 0.0, 0.0]), 0.0)}
  assert float(docking_losses.ligand_mse(shifted, batch)[0]) == pytest.approx(3.0)
  # non-intersection: larger when the ligand is pushed into the receptor
  onto = {"x_pred": batch.nodes["x_true"] + jnp.where(
      (batch.nodes["partner"] == 0)[:, None],
      jnp.asarray(rec.ca.mean(0) - lig.ca.mean(0)), 0.0)}
  far = {"x_pred": batch.nodes["x_true"] + jnp.where(
      (batch.nodes["partner"] == 0)[:, None], jnp.array([200.0, 0.0, 0.0]), 0.0)}
  intersection = jax.jit(docking_losses.intersection_loss)
  inter = lambda out: float(intersection(out, batch)[0])
  assert inter(far) == 0.0 and inter(onto) > inter(truth) >= 0.0
  # OT: keypoints sitting on the pocket points cost ~0; the plan has the right marginals
  pocket_mask = np.asarray(batch.nodes["pocket_mask"])
  pts = np.asarray(batch.nodes["pocket"])[pocket_mask]
  pts_in = np.asarray(batch.nodes["pocket_input"])[pocket_mask]
  out = {"ligand_keypoints": jnp.asarray(pts_in)[None].repeat(2, 0),
         "receptor_keypoints": jnp.asarray(pts)[None].repeat(2, 0)}
  ot = jax.jit(docking_losses.ot_keypoint_loss)
  assert float(ot(out, batch)[0]) < 1e-2 * np.var(pts) + 1e-3
  moved = {k: v + 5.0 for k, v in out.items()}
  assert float(ot(moved, batch)[0]) > 40.0
  rng = np.random.default_rng(0)
  cost = jnp.asarray(rng.uniform(0, 10, (7, 4)), jnp.float32)
  valid = jnp.array([True, True, False, True, True, True, False])
  segments = jnp.array([0, 0, 0, 1, 1, 1, 1])
  plan = np.asarray(docking_losses.sinkhorn_plan(cost, valid, segments, 2, 0.05, 200))
  np.testing.assert_allclose(plan[[0, 1]].sum(1), 0.5, atol=1e-3)
  np.testing.assert_allclose(plan[[3, 4, 5]].sum(1), 1 / 3, atol=1e-3)
  np.testing.assert_allclose(plan[:3].sum(0), 0.25, atol=1e-3)
  assert (plan[[2, 6]] == 0).all()


DB5_SMALL = ("2OOB", "1GCQ", "2X9A")        # the three smallest DB5.5 complexes (116-151 CAs)


def test_overfits_three_db55_complexes(shared_data):
  """Adam on the docking loss reaches complex RMSD < 2 A on three training complexes.

  Weights: ligand MSE 1, OT 0.01, non-intersection 1. EquiDock's own (1, 1, 10) trade the
  ligand pose for keypoints on the pocket and for non-intersection (the true complexes
  themselves pay ~1.8 of intersection loss with CA points); this tiny network then stays at
  3-5 A after 300 steps."""
  folder = shared_data / "db5.5" / "structures"
  graphs, truths = [], []
  for i, pdb_id in enumerate(DB5_SMALL):
    lig = structure.load_protein(folder / f"{pdb_id}_l_b.pdb.gz")
    rec = structure.load_protein(folder / f"{pdb_id}_r_b.pdb.gz")
    graphs.append(iegmn.pair_graph(lig, rec, rng=i))
    truths.append((lig.ca, rec.ca))
  batch = jax.tree_util.tree_map(jnp.asarray,
                                 batching.pad(graphs, batching.Bucket(448, 4096, 4)))
  transformed = iegmn.make_iegmn(iegmn.tiny_config())
  params = jax.jit(transformed.init)(jax.random.PRNGKey(0), batch)
  loss_config = docking_losses.DockingLossConfig(ot_weight=0.01, intersection_weight=1.0)
  optimizer = optax.adam(3e-3)

  def loss_fn(p):
    return docking_losses.docking_loss(transformed.apply(p, None, batch), batch, loss_config)

  @jax.jit
  def train(p):
    def step(carry, _):
      p, state = carry
      (_, terms), grads = jax.value_and_grad(loss_fn, has_aux=True)(p)
      updates, state = optimizer.update(grads, state, p)
      return (optax.apply_updates(p, updates), state), terms["loss"]
    before = transformed.apply(p, None, batch)["x_pred"]
    (p, _), losses = jax.lax.scan(step, (p, optimizer.init(p)), None, length=120)
    return losses, before, transformed.apply(p, None, batch)["x_pred"]

  def complex_rmsds(x_pred):
    out, start = [], 0
    for g, (true_lig, true_rec) in zip(graphs, truths):
      x = np.asarray(x_pred)[start:start + g.n_node[0]]
      part = g.nodes["partner"]
      out.append(docking.complex_rmsd(x[part == 0], x[part == 1], true_lig, true_rec))
      start += g.n_node[0]
    return np.array(out)

  losses, x_before, x_after = train(params)
  before, after = complex_rmsds(x_before), complex_rmsds(x_after)
  print("complex RMSD before", before.round(2), "after 120 Adam steps", after.round(2))
  assert np.isfinite(np.asarray(losses)).all()
  assert (before > 5.0).all(), before
  assert (after < 2.0).all(), after


def test_equidock_default_parameter_count_is_pinned():
  """EquiDock's DB5.5 IEGMN (hidden 64, 5 layers, 50 keypoints) through `nets.count_params`;
  `replace` with UniRep 1900 widens the node input to the language model's width."""
  from jaxgeo import nets
  from jaxgeo.nets import config as nets_config
  count = lambda fusion: nets.count_params(nets_config.paper_config(
      "iegmn", fusion=fusion, head="graph", lm_dim=1900))
  assert (count("none"), count("replace"), count("project")) == (527271, 22910439, 648935)
