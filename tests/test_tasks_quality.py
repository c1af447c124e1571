"""Docking model quality: DockQ on hand-checked cases, decoy generation, the quality task."""
import numpy as np

from jaxgeo import geometry
import pytest

from jaxgeo import config as config_lib
from jaxgeo import tasks, testing
from jaxgeo.errors import DataError
from jaxgeo.metrics import docking
from jaxgeo.datasets import db5, docking_results
from jaxgeo.tasks import quality

# mdtraj warns about the charge columns of some decoy files; the coordinates are fine.
pytestmark = pytest.mark.filterwarnings("ignore:Could not parse charge")

SMALL = "2OOB"   # the smallest DB5.5 complex (116 residues), train split


def make_config(**options):
  config = config_lib.experiment("quality", "gvp", "none", head="graph")
  config.task.update(options)
  config.data.k = 8
  return config


def generated_complex(gap=9.0, seed=0):
  rng = np.random.default_rng(seed)
  a = testing.random_protein(30, rng, source="rec")
  b = testing.random_protein(24, rng, source="lig")
  shift = a.ca.mean(0) - b.ca.mean(0)
  shift[0] += gap
  b = testing.make_protein(b.sequence, b.backbone + shift.astype(np.float32), chain_id="B",
                           source="lig")
  return a, b


@pytest.fixture(scope="module")
def small(shared_data):
  return db5.load_complex(shared_data / "db5.5", SMALL)


def test_rotation_matrix():
  r = geometry.rotation_matrix(np.array([0.0, 0.0, np.pi / 2]))
  np.testing.assert_allclose(r @ [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], atol=1e-12)
  r = geometry.rotation_matrix(np.random.default_rng(0).normal(size=3))
  np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
  assert np.linalg.det(r) == pytest.approx(1.0)
  np.testing.assert_array_equal(geometry.rotation_matrix(np.zeros(3)), np.eye(3))


def _dockq_checks(receptor, ligand):
  # Identity: DockQ 1.
  q = docking.dockq(ligand, receptor, ligand, receptor)
  assert q.dockq == pytest.approx(1.0) and q.fnat == 1.0
  assert q.irmsd == pytest.approx(0.0, abs=1e-6) and q.lrmsd == pytest.approx(0.0, abs=1e-6)
  # A known rigid shift of the ligand: LRMSD is the shift length.
  shift = np.array([1.2, -2.0, 1.5])
  q = quality.score_decoy(receptor, ligand, np.zeros(3), shift)
  assert q.lrmsd == pytest.approx(np.linalg.norm(shift), abs=1e-4)
  assert 0.0 < q.dockq < 1.0
  # A known rotation about the ligand centre: LRMSD is the backbone atoms' RMS displacement.
  rotvec = np.array([0.0, 0.3, 0.0])
  moved = quality.perturb(ligand, rotvec, np.zeros(3))
  sel = ligand.atom_mask[:, :] & False
  sel[:, [0, 1, 2, 4]] = ligand.atom_mask[:, [0, 1, 2, 4]]
  expected = np.sqrt(np.mean(np.sum((moved.atom_positions[sel].astype(float)
                                     - ligand.atom_positions[sel]) ** 2, axis=-1)))
  q = quality.score_decoy(receptor, ligand, rotvec, np.zeros(3))
  if len(ligand) <= len(receptor):  # DockQ superposes on the larger partner
    assert q.lrmsd == pytest.approx(expected, abs=1e-3)
  # Far away: no contact left, DockQ ~ 0.
  q = quality.score_decoy(receptor, ligand, np.zeros(3), np.array([0.0, 0.0, 150.0]))
  assert q.fnat == 0.0 and q.lrmsd == pytest.approx(150.0, abs=1e-3) and q.dockq < 0.02


def test_dockq_hand_checked_generated():
  receptor, ligand = generated_complex()
  assert docking.dockq(ligand, receptor, ligand, receptor).n_native_contacts > 0
  _dockq_checks(receptor, ligand)


def test_dockq_hand_checked_db5(small):
  _dockq_checks(*small)


def test_generated_decoys_span_dockq_and_are_deterministic(small):
  receptor, ligand = small
  decoys = quality.generate_decoys(receptor, ligand, 10, np.random.default_rng(3), bins=10,
                                   name=SMALL)
  again = quality.generate_decoys(receptor, ligand, 10, np.random.default_rng(3), bins=10)
  assert [d.as_list() for d in decoys] == [d.as_list() for d in again]
  values = np.array([d.dockq for d in decoys])
  assert values.min() < 0.2 and values.max() > 0.8
  assert len(set(np.minimum((values * 10).astype(int), 9))) >= 6
  # Each label is the DockQ of the decoy, rescored from scratch on Proteins.
  for d in decoys[:3]:
    moved = quality.perturb(ligand, np.array(d.rotvec), np.array(d.translation))
    assert docking.dockq_proteins(moved, receptor, ligand, receptor).dockq == pytest.approx(
        d.dockq, abs=1e-6)


def test_complex_without_contact_raises():
  receptor, ligand = generated_complex(gap=80.0)
  with pytest.raises(DataError, match="complex FAR1 .*do not touch"):
    quality.generate_decoys(receptor, ligand, 2, np.random.default_rng(0), name="FAR1")


def test_task_load_real_decoys_and_cache(shared_data, tmp_path, monkeypatch):
  config = make_config(limit=1, decoys_per_complex=3, val_decoys_per_complex=2,
                       methods="hdock,equidock", cache_dir=str(tmp_path / "cache"),
                       data_dir=str(shared_data / "db5.5"),
                       docking_dir=str(shared_data / "db5_docking"))
  task = tasks.get_task("quality")
  config_lib.validate(config, task)
  dataset = config_lib.load_task(config, None)[1]
  splits = dataset.splits
  assert splits.sizes() == {"train": 3, "val": 2, "test": 2}
  g = splits.train[0]
  assert set(g.nodes["partner"].tolist()) == {0, 1}
  assert g.edges["s"][:, -1].sum() > 0            # inter-partner edges flagged
  assert g.globals["label"].dtype == np.float32 and g.globals["label"].shape == (1,)
  # The test decoys are the methods' models, scored against the ground truth.
  pdb_id = docking_results.docking_complex_ids(shared_data / "db5_docking")[0]
  rec_path, lig_path = docking_results.ground_truth_files(shared_data / "db5_docking", pdb_id)
  native_rec, native_lig = quality._load(rec_path), quality._load(lig_path)
  _, model_lig_path = docking_results.decoy_files(shared_data / "db5_docking", "equidock", pdb_id)
  expected = docking.dockq_proteins(quality._load(model_lig_path), native_rec, native_lig,
                                    native_rec).dockq
  assert float(splits.test[1].globals["label"][0]) == pytest.approx(expected, abs=1e-6)
  assert splits.test[0].n_node[0] == len(native_rec) + len(native_lig)
  assert dataset.info["splits"]["test"]["dockq"]["n"] == 2

  # Second load: labels from the cache, no DockQ computed.
  def fail(*args, **kwargs):
    raise AssertionError("DockQ recomputed despite the cache")
  monkeypatch.setattr(quality, "generate_decoys", fail)
  monkeypatch.setattr(quality.docking, "dockq_proteins", fail)
  again = config_lib.load_task(config, None)[1].splits
  for a, b in zip(splits.train + splits.test, again.train + again.test):
    assert a.globals["label"] == b.globals["label"]
    np.testing.assert_array_equal(a.nodes["x"], b.nodes["x"])
  # A damaged cache is reported, naming the file.
  (cache_file,) = (tmp_path / "cache").iterdir()
  cache_file.write_text("{broken")
  with pytest.raises(DataError, match="quality_labels_.*delete it"):
    config_lib.load_task(config, None)[1].splits


def test_metrics():
  task = tasks.get_task("quality")
  m = task.metrics(np.array([0.1, 0.5, 0.9, 0.2, 0.4]), np.array([0.0, 0.4, 1.0, 0.1, 0.3]),
                   np.array([0, 0, 0, 1, 1]), {})
  assert m["spearman"] == pytest.approx(1.0) and m["spearman_per_target"] == pytest.approx(1.0)
  assert m["rmse"] == pytest.approx(0.1, abs=1e-6)


def test_listed_sequences_cover_every_lookup(shared_data, tmp_path):
  from jaxgeo.lm.store import EmbeddingStore
  config = make_config(limit=1, decoys_per_complex=2, methods="attract,cluspro",
                       data_dir=str(shared_data / "db5.5"),
                       docking_dir=str(shared_data / "db5_docking"))
  config.model.fusion.mode = "replace"
  config.model.fusion.lm_dim = 4
  config.lm.model, config.lm.layer = "toy", 1
  task = tasks.get_task("quality")
  store = EmbeddingStore(tmp_path / "store")
  for seq in task.sequences(*config_lib.task_setup(config, with_lm=False)[1:]):
    store.put("toy", 1, seq, np.full((len(seq), 4), len(seq), np.float32))
  splits = config_lib.load_task(config, store)[1].splits
  assert splits.sizes() == {"train": 2, "val": 2, "test": 2}
  for g in splits.train + splits.val + splits.test:
    assert g.nodes["lm"].shape == (g.n_node[0], 4) and np.all(g.nodes["lm"] > 0)
