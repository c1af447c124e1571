"""Residue graphs: exact features, invariance/equivariance, kNN/radius vs brute force."""
import numpy as np
import pytest

from jaxgeo import graph, residues, testing
from jaxgeo.errors import ConfigError, DataError


def random_rotation(rng):
  q, r = np.linalg.qr(rng.standard_normal((3, 3)))
  q *= np.sign(np.diag(r))
  if np.linalg.det(q) < 0:
    q[:, 0] *= -1
  return q


def moved(protein, rotation, translation):
  import dataclasses
  f = lambda x: (x @ rotation.T + translation).astype(np.float32)
  return dataclasses.replace(protein, backbone=f(protein.backbone), cb=f(protein.cb),
                             atom_positions=f(protein.atom_positions))


def test_dihedrals_recovered_from_ideal_backbone():
  rng = np.random.default_rng(0)
  phi, psi = rng.uniform(-np.pi, np.pi, (2, 25))
  omega = np.pi + 0.1 * rng.standard_normal(25)
  p = testing.make_protein("A" * 25, testing.ideal_backbone(phi, psi, omega))
  g = graph.residue_graph(p)
  s = g.nodes["s"]
  angle = np.arctan2(s[:, :3], s[:, 3:])
  wrap = lambda a: np.abs(np.angle(np.exp(1j * a)))
  assert wrap(angle[1:, 0] - phi[1:]).max() < 1e-4
  assert wrap(angle[:-1, 1] - psi[:-1]).max() < 1e-4
  assert wrap(angle[:-1, 2] - omega[:-1]).max() < 1e-4
  # Undefined at the chain ends: all-zero sin and cos.
  assert np.all(s[0, [0, 3]] == 0) and np.all(s[-1, [1, 2, 4, 5]] == 0)


def test_features_invariant_and_equivariant_under_rigid_motion():
  rng = np.random.default_rng(1)
  p = testing.random_protein(80, rng, chains=2)
  rot, shift = random_rotation(rng), rng.normal(size=3) * 20
  g1 = graph.residue_graph(p, k=10)
  g2 = graph.residue_graph(moved(p, rot, shift), k=10)
  np.testing.assert_array_equal(g1.senders, g2.senders)
  np.testing.assert_array_equal(g1.receivers, g2.receivers)
  np.testing.assert_allclose(g1.nodes["s"], g2.nodes["s"], atol=1e-4)
  np.testing.assert_allclose(g1.edges["s"], g2.edges["s"], atol=1e-4)
  np.testing.assert_allclose(g1.nodes["v"] @ rot.T, g2.nodes["v"], atol=1e-4)
  np.testing.assert_allclose(g1.edges["v"] @ rot.T, g2.edges["v"], atol=1e-4)
  np.testing.assert_allclose(g1.nodes["x"] @ rot.T + shift, g2.nodes["x"], atol=1e-3)


def test_shapes_and_sorted_edges():
  p = testing.random_protein(50, np.random.default_rng(2))
  g = graph.residue_graph(p, k=30)
  assert g.nodes["s"].shape == (50, graph.NODE_SCALAR_DIM)
  assert g.nodes["v"].shape == (50, graph.NODE_VECTOR_DIM, 3)
  assert g.edges["s"].shape == (50 * 30, graph.EDGE_SCALAR_DIM)
  assert g.edges["v"].shape == (50 * 30, 1, 3)
  assert np.all(np.diff(g.receivers) >= 0)
  assert not np.any(g.senders == g.receivers)
  assert g.nodes["aatype"].dtype == np.int32 and g.n_node.tolist() == [50]


def brute_force_knn(x, k):
  d = np.linalg.norm(x[:, None] - x[None], axis=-1)
  np.fill_diagonal(d, np.inf)
  pairs = set()
  for i in range(len(x)):
    for j in np.argsort(d[i], kind="stable")[:min(k, len(x) - 1)]:
      pairs.add((int(j), i))
  return pairs


@pytest.mark.parametrize("n,k", [(1, 5), (7, 30), (60, 5), (3000, 30)])
def test_knn_matches_brute_force(n, k):
  x = np.random.default_rng(n).normal(scale=20, size=(n, 3))
  senders, receivers = graph.knn_edges(x, k)
  if n < 3000:
    assert set(zip(senders.tolist(), receivers.tolist())) == brute_force_knn(x, k)
  else:  # chunked path: check a sample of receivers
    d = np.linalg.norm(x[:50, None] - x[None], axis=-1)
    for i in range(50):
      d[i, i] = np.inf
      expected = set(np.argsort(d[i])[:k].tolist())
      assert set(senders[receivers == i].tolist()) == expected
  assert np.all(np.bincount(receivers, minlength=n) == min(k, n - 1))


def test_radius_graph_with_cap():
  x = np.random.default_rng(3).normal(scale=6, size=(200, 3))
  senders, receivers = graph.radius_edges(x, 8.0, None)
  d = np.linalg.norm(x[:, None] - x[None], axis=-1)
  expected = {(j, i) for i in range(200) for j in range(200) if i != j and d[i, j] < 8.0}
  assert set(zip(senders.tolist(), receivers.tolist())) == expected
  capped_s, capped_r = graph.radius_edges(x, 8.0, 5)
  assert np.bincount(capped_r, minlength=200).max() <= 5
  for i in range(200):
    mine = capped_s[capped_r == i]
    within = np.sort(d[i][(d[i] < 8.0) & (np.arange(200) != i)])
    np.testing.assert_allclose(np.sort(d[i, mine]), within[:5])


def test_chain_breaks_and_partner_flags():
  rng = np.random.default_rng(4)
  a = testing.random_protein(20, rng)
  bb = a.backbone.copy()
  bb[10:] += np.array([30.0, 0, 0], np.float32)  # a break between residues 9 and 10
  broken = testing.make_protein(a.sequence, bb)
  g = graph.residue_graph(broken, k=19)
  flags = g.edges["s"][:, -4:]
  across = (g.senders < 10) != (g.receivers < 10)
  assert np.all(flags[across, 1] == 1) and np.all(flags[~across, 0] == 1)
  assert np.all(g.nodes["v"][9, 0] == 0) and np.all(g.nodes["v"][10, 1] == 0)
  b = testing.random_protein(15, rng)
  c = graph.complex_graph(a, b, k=10)
  partner = c.nodes["partner"]
  inter = partner[c.senders] != partner[c.receivers]
  np.testing.assert_array_equal(c.edges["s"][:, -1], inter)
  # Same chain id "A" in both partners still counts as different chains.
  assert np.all(c.edges["s"][inter, -2] == 1)
  assert np.all(c.edges["s"][inter, graph.NUM_RBF:graph.NUM_RBF + graph.NUM_POSITIONAL] == 0)


def test_atoms_as_extra_nodes():
  p = testing.random_protein(30, np.random.default_rng(5))
  atoms = p.ca[:3] + 1.0
  g = graph.residue_graph(p, k=8, atoms=(atoms, ["C", "N", "Zn"]))
  assert g.n_node.tolist() == [33]
  assert g.nodes["aatype"][-3:].tolist() == [residues.LIGAND_ATOM] * 3
  assert g.nodes["element"][-3:].tolist() == [residues.element_index(e) for e in "C N Zn".split()]
  assert np.all(g.nodes["element"][:30] == 0)
  np.testing.assert_array_equal(g.nodes["s"][-3:], 0)
  with pytest.raises(DataError):
    graph.residue_graph(p, atoms=(atoms, ["C"]))


def test_with_nodes_checks_length_and_bad_options():
  p = testing.random_protein(12, np.random.default_rng(6))
  g = graph.residue_graph(p, k=4)
  g2 = graph.with_nodes(g, lm=np.ones((12, 5), np.float32))
  assert g2.nodes["lm"].shape == (12, 5) and "lm" not in g.nodes
  with pytest.raises(DataError, match="lm"):
    graph.with_nodes(g, lm=np.ones((11, 5)))
  with pytest.raises(ConfigError, match="edges='grid'"):
    graph.residue_graph(p, edges="grid")
  with pytest.raises(ConfigError, match="k=0"):
    graph.residue_graph(p, k=0)
