"""Interface labels (generated complexes, brute force) and the DB5.5 interface task."""
import numpy as np
import pytest

from jaxgeo import config as config_lib
from jaxgeo import tasks, testing
from jaxgeo.errors import ConfigError, DataError
from jaxgeo.lm.store import EmbeddingStore
from jaxgeo.datasets import db5 as docking_data
from jaxgeo.lm.features import Features
from jaxgeo.tasks import contacts, interface


def make_config(fusion="none", **options):
  config = config_lib.experiment("interface", "gvp", fusion, head="node", lm_dim=4)
  config.task.update(options)
  config.data.k = 8
  config.lm.model = "toy"
  config.lm.layer = 1
  return config


def side_by_side(gap, seed=0):
  """Two generated chains (A, B), B's centroid `gap` A from A's along x."""
  rng = np.random.default_rng(seed)
  a = testing.random_protein(30, rng, source="a")
  b = testing.random_protein(20, rng, source="b")
  shift = a.ca.mean(0) - b.ca.mean(0)
  shift[0] += gap
  b = testing.make_protein(b.sequence, b.backbone + shift.astype(np.float32), chain_id="B",
                           source="b")
  return a, b


def brute_force(a, b, definition, cutoff):
  la, lb = np.zeros(len(a), bool), np.zeros(len(b), bool)
  for i in range(len(a)):
    for j in range(len(b)):
      if definition == "ca":
        d = np.linalg.norm(a.ca[i].astype(float) - b.ca[j])
      else:
        xa = a.atom_positions[i][a.atom_mask[i]].astype(float)
        xb = b.atom_positions[j][b.atom_mask[j]].astype(float)
        d = np.min(np.linalg.norm(xa[:, None] - xb[None], axis=-1))
      if d < cutoff:
        la[i] = lb[j] = True
  return la, lb


@pytest.mark.parametrize("definition,cutoff", [("ca", 8.0), ("heavy", 6.0), ("ca", 12.0)])
def test_labels_match_brute_force(definition, cutoff):
  a, b = side_by_side(gap=8.0)
  la, lb = contacts.interface_labels(a, b, definition, cutoff)
  ra, rb = brute_force(a, b, definition, cutoff)
  np.testing.assert_array_equal(la, ra)
  np.testing.assert_array_equal(lb, rb)
  assert la.any() and not la.all()


def test_hand_checked_pair():
  # Two straight strands 7 A apart, overlapping over their last / first 5 residues.
  phi, psi = np.full(12, -2.4), np.full(12, 2.4)
  bb = testing.ideal_backbone(phi, psi).astype(np.float32)
  axis = bb[-1, 1] - bb[0, 1]
  axis /= np.linalg.norm(axis)
  normal = np.cross(axis, [0.0, 0.0, 1.0])
  normal /= np.linalg.norm(normal)
  step = np.linalg.norm(bb[-1, 1] - bb[0, 1]) / 11
  a = testing.make_protein("A" * 12, bb)
  b = testing.make_protein("G" * 12, (bb + (axis * 7 * step + normal * 7.0)).astype(np.float32),
                           chain_id="B")
  la, lb = contacts.interface_labels(a, b, "ca", 8.0)
  ra, rb = brute_force(a, b, "ca", 8.0)
  np.testing.assert_array_equal(la, ra)
  np.testing.assert_array_equal(lb, rb)
  assert la[:6].sum() == 0 and la[-3:].all()    # only the overlapping end of A
  assert lb[-6:].sum() == 0 and lb[:3].all()    # only the overlapping start of B


def test_graphs_carry_labels_group_and_lm(tmp_path):
  a, b = side_by_side(gap=8.0)
  store = EmbeddingStore(tmp_path / "store")
  rows = {}
  for p in (a, b):
    rows[p.source] = np.random.default_rng(len(p)).normal(size=(len(p), 4)).astype(np.float32)
    store.put("toy", 1, p.sequence, rows[p.source])
  features = Features(store, "toy", 1)
  lm = (features.rows(a), features.rows(b))
  ga, gb = interface.labelled_graphs(a, b, "toy", 7, "ca", 8.0, {"k": 8}, lm)
  la, lb = contacts.interface_labels(a, b)
  np.testing.assert_array_equal(ga.nodes["label"], la.astype(np.float32))
  np.testing.assert_array_equal(gb.nodes["label"], lb.astype(np.float32))
  assert ga.globals["group"].tolist() == [7] and gb.globals["group"].dtype == np.int32
  np.testing.assert_allclose(ga.nodes["lm"], rows["a"])
  np.testing.assert_allclose(gb.nodes["lm"], rows["b"])
  # A missing entry names the command that computes it.
  empty = EmbeddingStore(tmp_path / "empty")
  with pytest.raises(DataError, match="jaxgeo embed"):
    Features(empty, "toy", 1).rows(a)


def test_partners_that_do_not_touch_raise():
  a, b = side_by_side(gap=60.0)
  with pytest.raises(DataError, match="complex 9XYZ .*do not touch"):
    interface.labelled_graphs(a, b, "9XYZ", 0)


def test_metrics_perfect_and_per_complex():
  task = tasks.get_task("interface")
  y = np.array([1, 0, 0, 1, 0, 0], np.float32)
  m = task.metrics(y, np.array([2.0, -1, -2, 3, 0, -3]), np.array([0, 0, 0, 1, 1, 1]), {})
  assert m["auroc"] == pytest.approx(1.0) and m["auroc_per_complex"] == pytest.approx(1.0)
  assert m["auprc"] == pytest.approx(1.0)
  assert task.primary_metric in m


def test_options_checked():
  with pytest.raises(ConfigError, match="unknown option"):
    config_lib.load_task(make_config(cutof=3.0), None)[1].splits
  with pytest.raises(ConfigError, match="definition"):
    config_lib.load_task(make_config(definition="cb"), None)[1].splits


def test_db5_load_one_complex_per_split(shared_data, tmp_path):
  config = make_config(limit=1, data_dir=str(shared_data / "db5.5"))
  task = tasks.get_task("interface")
  config_lib.validate(config, task)
  splits = config_lib.load_task(config, None)[1].splits
  assert splits.sizes() == {"train": 2, "val": 2, "test": 2}
  _, options, inputs = config_lib.task_setup(config)
  ids = {s: task.split_ids(s, options, inputs) for s in ("train", "val", "test")}
  assert ids == {s: docking_data.read_split(shared_data / "db5.5", s)[:1]
                 for s in ("train", "val", "test")}
  receptor, ligand = docking_data.load_complex(shared_data / "db5.5", ids["train"][0])
  g_rec, g_lig = splits.train
  assert g_rec.n_node[0] == len(receptor) and g_lig.n_node[0] == len(ligand)
  la, lb = contacts.interface_labels(receptor, ligand)
  np.testing.assert_array_equal(g_rec.nodes["label"], la)
  assert 0.0 < float(np.mean(la)) < 0.5 and g_rec.globals["group"] == g_lig.globals["group"]
  assert len({int(g.globals["group"][0]) for s in splits.sizes() for g in getattr(splits, s)}) == 3
  # Missing split file / structure.
  with pytest.raises(DataError, match="split file not found"):
    config_lib.load_task(make_config(data_dir=str(tmp_path)))


def test_listed_sequences_cover_every_lookup(shared_data, tmp_path):
  """`sequences()` (what `jaxgeo train --check-env` asks the store for) is exactly what the
  loader looks up: fill a store with them and the LM run loads."""
  config = make_config("replace", limit=1, data_dir=str(shared_data / "db5.5"))
  task = tasks.get_task("interface")
  store = EmbeddingStore(tmp_path / "store")
  sequences = task.sequences(*config_lib.task_setup(config, with_lm=False)[1:])
  for seq in sequences:
    store.put("toy", 1, seq, np.full((len(seq), 4), len(seq), np.float32))
  splits = config_lib.load_task(config, store)[1].splits
  for g in splits.train + splits.val + splits.test:
    assert g.nodes["lm"].shape == (g.n_node[0], 4)
  # One entry fewer: the store's error naming the command.
  partial = EmbeddingStore(tmp_path / "partial")
  for seq in sequences[1:]:
    partial.put("toy", 1, seq, np.zeros((len(seq), 4), np.float32))
  with pytest.raises(DataError, match="jaxgeo embed"):
    config_lib.load_task(config, partial)[1].splits
