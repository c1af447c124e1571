"""Binding affinity: SDF reading (RDKit), pockets, labels, missing ligands, real FEP targets."""
import csv
import dataclasses
import gzip

import numpy as np
import pytest

from jaxgeo import config as config_lib
from jaxgeo import residues, structure, tasks, testing
from jaxgeo.errors import ConfigError, DataError
from jaxgeo.lm.store import EmbeddingStore
from jaxgeo.tasks import affinity


def make_config(fusion="none", **options):
  config = config_lib.experiment("affinity", "gvp", fusion, head="graph", lm_dim=4)
  config.task.update(options)
  config.data.k = 8
  config.lm.model = "toy"
  config.lm.layer = 1
  return config


def write_sdf(path, molecules):
  """molecules: [(name, smiles, centre [3])] -> a gzipped SDF with 3D poses (H included)."""
  from rdkit import Chem
  from rdkit.Chem import AllChem
  from rdkit.Geometry import Point3D
  blocks = []
  for i, (name, smiles, centre) in enumerate(molecules):
    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    AllChem.EmbedMolecule(mol, randomSeed=i + 1)
    conf = mol.GetConformer()
    xyz = conf.GetPositions()
    xyz = xyz - xyz.mean(0) + np.asarray(centre)
    for j, p in enumerate(xyz):
      conf.SetAtomPosition(j, Point3D(*p))
    mol.SetProp("_Name", name)
    blocks.append(Chem.MolToMolBlock(mol) + "$$$$\n")
  with gzip.open(path, "wt") as f:
    f.write("".join(blocks))


def make_dataset(root, targets):
  """targets: {name: [(ligand, smiles, dG)]}; every ligand posed near residue 12."""
  rows = []
  for t_index, (target, ligands) in enumerate(targets.items()):
    folder = root / target
    folder.mkdir(parents=True)
    protein = testing.random_protein(40, np.random.default_rng(t_index), source=target)
    structure.write_pdb(protein, folder / "protein.pdb.gz")
    write_sdf(folder / "ligands.sdf.gz",
              [(name, smiles, protein.ca[12] + [0.0, 0.0, 2.0]) for name, smiles, _ in ligands])
    rows += [(target, name, dg) for name, _, dg in ligands]
  with open(root / "affinities.csv", "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["target", "ligand", "measurement_type", "value", "unit", "dg_exp_kcal_mol", "doi"])
    for target, name, dg in rows:
      w.writerow([target, name, "ki", "1", "uM", dg, "x"])


LIGANDS = [("lig_a", "CCO", -7.0), ("lig_b", "c1ccccc1Cl", -8.5), ("lig_c", "CC(=O)N", -6.0)]


def test_read_sdf_elements_and_hydrogens(tmp_path):
  write_sdf(tmp_path / "l.sdf.gz", [("lig_b", "c1ccccc1Cl", [1.0, 2.0, 3.0])])
  (pose,), problems = affinity.read_sdf(tmp_path / "l.sdf.gz")
  assert problems == [] and pose.name == "lig_b"
  assert sorted(pose.element.tolist()) == ["C"] * 6 + ["Cl"]
  np.testing.assert_allclose(pose.positions.mean(0), [1.0, 2.0, 3.0], atol=1.0)
  (with_h,), _ = affinity.read_sdf(tmp_path / "l.sdf.gz", hydrogens=True)
  assert (with_h.element == "H").sum() == 5
  with pytest.raises(DataError, match="ligand file not found"):
    affinity.read_sdf(tmp_path / "none.sdf")


def test_unreadable_sdf_record(tmp_path):
  write_sdf(tmp_path / "two.sdf.gz", [("lig_a", "CCO", [0.0, 0.0, 0.0]),
                                      ("lig_c", "CC(=O)N", [0.0, 0.0, 0.0])])
  first, second = gzip.open(tmp_path / "two.sdf.gz", "rt").read().split("$$$$\n")[:2]
  broken = first + "$$$$\nlig_bad\n  junk\n\n  3  2  0 garbage V2000\nnot atoms\n$$$$\n" + second
  (tmp_path / "bad.sdf").write_text(broken + "$$$$\n")
  poses, problems = affinity.read_sdf(tmp_path / "bad.sdf")
  assert [p.name for p in poses] == ["lig_a", "lig_c"]
  assert len(problems) == 1 and "bad.sdf: record 2" in problems[0]
  with pytest.raises(DataError, match="bad.sdf: record 2 cannot be read"):
    affinity.read_sdf(tmp_path / "bad.sdf", strict=True)
  (tmp_path / "trunc.sdf.gz").write_bytes(gzip.compress(np.random.default_rng(0).bytes(2000))[:100])
  with pytest.raises(DataError, match="corrupt gzip"):
    affinity.read_sdf(tmp_path / "trunc.sdf.gz")


def test_pocket_matches_brute_force():
  protein = testing.random_protein(40, np.random.default_rng(0))
  lig = protein.ca[[5, 20]] + 1.0
  index = affinity.pocket_index(protein, lig, 8.0)
  expected = [i for i in range(len(protein))
              if np.min(np.linalg.norm(protein.atom_positions[i][protein.atom_mask[i]][:, None]
                                       - lig[None], axis=-1)) < 8.0]
  assert index.tolist() == expected and 5 in expected and 20 in expected


def test_load_labels_groups_and_lm(tmp_path):
  make_dataset(tmp_path / "fep", {"t1": LIGANDS, "t2": LIGANDS[:2], "t3": LIGANDS[1:]})
  task = tasks.get_task("affinity")
  store = EmbeddingStore(tmp_path / "store")
  protein = structure.load_protein(tmp_path / "fep" / "t1" / "protein.pdb.gz")
  full = {}
  for t in ("t1", "t2", "t3"):
    p = structure.load_protein(tmp_path / "fep" / t / "protein.pdb.gz")
    full[t] = np.random.default_rng(len(t)).normal(size=(len(p), 4)).astype(np.float32)
    store.put("toy", 1, p.sequence, full[t])
  config = make_config("project", data_dir=str(tmp_path / "fep"), train_targets="t1",
                       val_targets="t2", test_targets="t3", pocket_cutoff=8.0)
  config_lib.validate(config, task)
  dataset = config_lib.load_task(config, store)[1]
  splits, stats = dataset.splits, dataset.stats
  assert splits.sizes() == {"train": 3, "val": 2, "test": 2}
  assert [float(g.globals["label"][0]) for g in splits.train] == [-7.0, -8.5, -6.0]
  assert len({int(g.globals["group"][0]) for g in splits.train}) == 1
  assert splits.train[0].globals["group"] != splits.val[0].globals["group"]
  g = splits.train[1]  # chlorobenzene: 7 heavy atoms
  pose = affinity.read_sdf(tmp_path / "fep" / "t1" / "ligands.sdf.gz")[0][1]
  index = affinity.pocket_index(protein, pose.positions, 8.0)
  n_res = len(index)
  assert g.n_node[0] == n_res + 7
  assert np.all(g.nodes["aatype"][n_res:] == residues.LIGAND_ATOM)
  assert sorted(g.nodes["element"][n_res:].tolist()) == sorted(
      [residues.element_index("C")] * 6 + [residues.element_index("Cl")])
  assert g.nodes["partner"].tolist() == [0] * n_res + [1] * 7
  np.testing.assert_allclose(g.nodes["lm"][:n_res], full["t1"][index], atol=1e-6)
  assert np.all(g.nodes["lm"][n_res:] == 0)
  # Without the store entry: the store's error naming `jaxgeo embed`.
  with pytest.raises(DataError, match="jaxgeo embed"):
    config_lib.load_task(config, EmbeddingStore(tmp_path / "empty"))[1].splits
  # Standardized outputs: output 0 means the training mean; exact outputs give loss 0.
  from jaxgeo import batching
  assert stats["label_mean"] == pytest.approx(-7.1666667) and stats["label_std"] > 0
  buckets = batching.choose_buckets(splits.train, batch_graphs=4, max_buckets=1)
  (batch,) = list(batching.batches(splits.train, buckets, batch_graphs=4))
  labels = np.asarray(batch.globals["label"])
  y_true, y_pred, _ = task.predictions({"graph": np.zeros((labels.shape[0], 1))}, batch, stats)
  np.testing.assert_allclose(sorted(y_true), [-8.5, -7.0, -6.0])
  np.testing.assert_allclose(y_pred, stats["label_mean"], atol=1e-5)
  exact = ((labels - stats["label_mean"]) / stats["label_std"])[:, None]
  assert float(task.loss({"graph": exact}, batch, stats)) == pytest.approx(0.0, abs=1e-10)
  assert np.allclose(task.predictions({"graph": exact}, batch, stats)[1], y_true, atol=1e-5)
  m = task.metrics(np.array([-7.0, -8.0, -9.0, -6.0, -5.0]),
                   np.array([-7.5, -8.0, -8.5, -6.0, -5.5]), np.array([0, 0, 0, 1, 1]), {})
  assert m["pearson_per_target"] == pytest.approx(1.0) and task.primary_metric in m


def test_missing_ligands_skipped_or_strict(tmp_path):
  make_dataset(tmp_path / "fep", {"t1": LIGANDS, "t2": LIGANDS, "t3": LIGANDS})
  # The CSV lists lig_x, absent from t1's SDF; t2's SDF gets a molecule without a CSV row.
  with open(tmp_path / "fep" / "affinities.csv", "a") as f:
    f.write("t1,lig_x,ki,1,uM,-9.0,x\n")
  write_sdf(tmp_path / "fep" / "t2" / "ligands.sdf.gz",
            [(n, s, [0.0, 0.0, 0.0]) for n, s, _ in LIGANDS] + [("lig_y", "CO", [0.0, 0.0, 0.0])])
  options = dict(data_dir=str(tmp_path / "fep"), train_targets="t1", val_targets="t2",
                 test_targets="t3")
  dataset = config_lib.load_task(make_config(**options), None)[1]
  assert dataset.splits.sizes() == {"train": 3, "val": 3, "test": 3}
  skipped = "\n".join(dataset.info["splits"]["train"]["skipped"]
                      + dataset.info["splits"]["val"]["skipped"])
  assert "target t1: ligand lig_x" in skipped and "lig_y" in skipped
  with pytest.raises(DataError, match="target t1: ligand lig_x .*no molecule named 'lig_x'"):
    config_lib.load_task(make_config(strict=True, **options), None)[1].splits
  # A target without its ligand file.
  (tmp_path / "fep" / "t3" / "ligands.sdf.gz").unlink()
  with pytest.raises(DataError, match="t3/ligands.sdf.gz: ligand file not found"):
    config_lib.load_task(make_config(**options), None)[1].splits


def test_splits_must_hold_out_targets(tmp_path):
  with pytest.raises(ConfigError, match="hold out whole targets"):
    config_lib.load_task(make_config(train_targets="cdk2,p38", val_targets="p38"), None)[1].splits


def test_real_fep_targets(shared_data):
  data = shared_data / "fep_benchmark"
  task = tasks.get_task("affinity")
  config = make_config(data_dir=str(data))
  _, options, inputs = config_lib.task_setup(config)
  inputs = dataclasses.replace(inputs, graph_options={"k": 16})
  table = affinity.read_affinities(data / "affinities.csv")
  assert sum(len(v) for v in table.values()) == 370 and len(table) == 15
  assert {k: options.targets(k) for k in affinity.DEFAULT_SPLIT} == {
      k: list(v) for k, v in affinity.DEFAULT_SPLIT.items()}
  skipped = []
  graphs = task.target_examples("thrombin", table["thrombin"], options, inputs, skipped)
  assert len(graphs) == 22 and len(skipped) == 1 and "lig_7d" in skipped[0]
  graphs = task.target_examples("cmet", table["cmet"], options, inputs, skipped)
  poses = affinity.read_sdf(data / "cmet" / "ligands.sdf.gz")[0]
  for g, pose in zip(graphs, poses):
    assert float(g.globals["label"][0]) == pytest.approx(table["cmet"][pose.name])
    n_lig = len(pose.element)
    assert int(np.sum(g.nodes["aatype"] == residues.LIGAND_ATOM)) == n_lig
    assert 15 < g.n_node[0] - n_lig < 120
    assert "H" not in pose.element
