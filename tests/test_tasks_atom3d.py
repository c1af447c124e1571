"""ATOM3D LMDB reader (the real fixture and LMDBs written here) and the PSR / LBA / PPI tasks."""
import gzip
import json
import pickle

import lmdb
import numpy as np
import pytest

from jaxgeo import config as config_lib
from jaxgeo import residues, structure, tasks, testing
from jaxgeo.errors import ConfigError, DataError
from jaxgeo.lm.store import EmbeddingStore
from jaxgeo.datasets import atom3d
from jaxgeo.tasks.contacts import interface_labels


def make_config(task, head, tmp_path, fusion="none", **options):
  config = config_lib.experiment(task, "gvp", fusion, head=head, lm_dim=4)
  config.task.update(options)
  config.data.k = 8
  config.lm.model = "toy"
  config.lm.layer = 1
  return config


def keyed(protein):
  return {k: i for i, k in enumerate(zip(protein.chain_id.tolist(),
                                         protein.residue_number.tolist(),
                                         protein.insertion_code.tolist()))}


# ------------------------------------------------------------------ the real fixture


def test_fixture_lmdb_matches_the_pdb_files(shared_data):
  fixture = shared_data / "atom3d_fixture"
  with atom3d.LMDBDataset(fixture / "lmdb") as ds:
    assert len(ds) == 4 and ds.serialization_format == "json"
    assert sorted(ds.ids()) == ["103l.pdb", "117e.pdb", "11as.pdb", "2olx.pdb"]
    for pdb_id in ds.ids():
      item = ds.get(pdb_id)
      assert isinstance(item["atoms"], atom3d.AtomsTable) and item["id"] == pdb_id
      ours = atom3d.protein_from_atoms(item["atoms"], pdb_id)
      ref = structure.load_protein(fixture / "pdb" / pdb_id)
      # Same residues and atoms; ATOM3D orders HETATM amino acids (11as's ASN ligand) within
      # their chain, the PDB file after the last chain.
      a, b = keyed(ours), keyed(ref)
      assert set(a) == set(b)
      index = [a[k] for k in b]
      np.testing.assert_array_equal(ours.atom_mask[index], ref.atom_mask)
      np.testing.assert_allclose(ours.atom_positions[index], ref.atom_positions, atol=1e-3)
      assert "".join(np.array(list(ours.sequence))[index]) == ref.sequence
      assert [l.name for l in ours.ligands] == [l.name for l in ref.ligands]


# ------------------------------------------------------------------ written LMDBs


def small_protein(seed=0, length=24, chains=1):
  return testing.random_protein(length, np.random.default_rng(seed), chains=chains,
                                source=f"p{seed}")


def test_write_read_round_trip_json_and_msgpack(tmp_path):
  protein = small_protein()
  table = atom3d.atoms_table(protein)
  for fmt in ("json", "msgpack"):
    path = tmp_path / fmt
    atom3d.write_lmdb(path, [{"id": "a", "atoms": table, "scores": {"gdt_ts": 0.25}}], fmt)
    with atom3d.LMDBDataset(path) as ds:
      assert ds.serialization_format == fmt and ds.ids() == ["a"]
      item = ds[0]
      assert item["scores"] == {"gdt_ts": 0.25}
      back = atom3d.protein_from_atoms(item["atoms"], "a")
      assert back.sequence == protein.sequence
      np.testing.assert_allclose(back.atom_positions, protein.atom_positions, atol=1e-5)
  with pytest.raises(ConfigError, match="no pickles"):
    atom3d.write_lmdb(tmp_path / "p", [{"id": "a"}], "pkl")


def _raw_lmdb(path, records, fmt=b"json", meta=True):
  env = lmdb.open(str(path), map_size=1 << 22)
  with env.begin(write=True) as txn:
    for i, rec in enumerate(records):
      txn.put(str(i).encode(), rec)
    if meta:
      txn.put(b"num_examples", str(len(records)).encode())
      txn.put(b"serialization_format", fmt)
  env.close()


def test_corrupt_records_name_the_file_and_record(tmp_path):
  good = {"id": "x", "atoms": atom3d.atoms_table(small_protein()).to_split(),
          "types": {"atoms": atom3d.DATAFRAME_TYPE}}
  bad_table = json.loads(json.dumps(good))
  bad_table["atoms"]["data"][3] = bad_table["atoms"]["data"][3][:-2]
  records = [gzip.compress(json.dumps(good).encode()),
             b"this is not gzip",
             gzip.compress(json.dumps(good).encode())[:40],       # truncated gzip
             gzip.compress(b"{not json"),
             gzip.compress(json.dumps(bad_table).encode())]
  _raw_lmdb(tmp_path / "db", records)
  with atom3d.LMDBDataset(tmp_path / "db") as ds:
    assert len(ds[0]["atoms"]) > 0
    for index, cause in ((1, "corrupt gzip"), (2, "corrupt gzip"), (3, "not valid JSON"),
                         (4, "row 3 has")):
      with pytest.raises(DataError, match=cause) as info:
        ds[index]
      assert str(tmp_path / "db") in str(info.value) and f"record {index}" in str(info.value)


def test_not_an_atom3d_lmdb(tmp_path):
  with pytest.raises(DataError, match="no such LMDB"):
    atom3d.LMDBDataset(tmp_path / "missing")
  (tmp_path / "empty").mkdir()
  with pytest.raises(DataError, match="no data.mdb"):
    atom3d.LMDBDataset(tmp_path / "empty")
  _raw_lmdb(tmp_path / "nometa", [b"x"], meta=False)
  with pytest.raises(DataError, match="not an ATOM3D dataset"):
    atom3d.LMDBDataset(tmp_path / "nometa")
  _raw_lmdb(tmp_path / "fmt", [b"x"], fmt=b"yaml")
  with pytest.raises(DataError, match="unknown serialization_format"):
    atom3d.LMDBDataset(tmp_path / "fmt")
  (tmp_path / "junk").mkdir()
  (tmp_path / "junk" / "data.mdb").write_bytes(b"\x00" * 100)
  with pytest.raises(DataError, match="junk"):
    atom3d.LMDBDataset(tmp_path / "junk")


class _Payload:
  """Unpickling this creates a file: evidence of code running from the data."""

  def __init__(self, marker):
    self.marker = str(marker)

  def __reduce__(self):
    return (open, (self.marker, "w"))


def test_pickle_lmdb_refused_unless_allowed(tmp_path):
  marker = tmp_path / "pwned"
  record = gzip.compress(pickle.dumps({"id": "a", "payload": _Payload(marker),
                                       "atoms": atom3d.atoms_table(small_protein()).to_split()}))
  _raw_lmdb(tmp_path / "pkl", [record], fmt=b"pkl")
  with pytest.raises(DataError, match="allow_pickle=True"):
    atom3d.LMDBDataset(tmp_path / "pkl")
  assert not marker.exists()
  # The task option is the same switch.
  config = make_config("atom3d_psr", "graph", tmp_path, train=str(tmp_path / "pkl"),
                       val=str(tmp_path / "pkl"), test=str(tmp_path / "pkl"))
  with pytest.raises(DataError, match="allow_pickle"):
    config_lib.load_task(config, None)[1].splits
  assert not marker.exists()
  with atom3d.LMDBDataset(tmp_path / "pkl", allow_pickle=True) as ds:
    item = ds[0]
  assert marker.exists()  # the user allowed it: the pickle ran
  assert isinstance(item["atoms"], atom3d.AtomsTable)


# ------------------------------------------------------------------ tasks


def _write_splits(root, make_items):
  for split in ("train", "val", "test"):
    atom3d.write_lmdb(root / split, make_items(split))


def test_psr_task_labels_and_groups_by_target(tmp_path):
  proteins = {f"T{t}": small_protein(seed=t, length=20 + t) for t in range(3)}

  def items(split):
    out = []
    for target, protein in proteins.items():
      for model in range(2):
        out.append({"id": str((target, f"{split}_m{model}")), "atoms": atom3d.atoms_table(protein),
                    "scores": {"gdt_ts": 0.1 * model + 0.3, "rmsd": 1.0}})
    return out

  _write_splits(tmp_path / "psr", items)
  task = tasks.get_task("atom3d_psr")
  config = make_config("atom3d_psr", "graph", tmp_path, data_dir=str(tmp_path / "psr"))
  config_lib.validate(config, task)
  splits = config_lib.load_task(config, None)[1].splits
  assert splits.sizes() == {"train": 6, "val": 6, "test": 6}
  g = splits.train[0]
  assert g.n_node[0] == 20 and g.globals["label"].shape == (1,)
  groups = [int(g.globals["group"][0]) for g in splits.train]
  assert groups == [0, 0, 1, 1, 2, 2]
  assert [float(g.globals["label"][0]) for g in splits.train[:2]] == pytest.approx([0.3, 0.4])
  assert atom3d.parse_target("('T0759', '3D-JIGSAW_TS1')") == "T0759"
  m = task.metrics(np.array([0.1, 0.2, 0.3, 0.4]), np.array([0.1, 0.3, 0.2, 0.5]),
                   np.array([0, 0, 1, 1]), {})
  assert m["spearman_per_target"] == pytest.approx(1.0)
  # A record without the label.
  atom3d.write_lmdb(tmp_path / "nolabel", [{"id": "('T', 'm')",
                                           "atoms": atom3d.atoms_table(proteins["T0"])}])
  config.task.update({"train": str(tmp_path / "nolabel")})
  with pytest.raises(DataError, match=r"nolabel: record 0 .*no scores\['gdt_ts'\]"):
    config_lib.load_task(config, None)[1].splits


def _ligand_table(xyz, elements):
  n = len(elements)
  return atom3d.AtomsTable({
      "chain": np.full(n, "L"), "hetero": np.full(n, "H_LIG"), "residue": np.ones(n, np.int64),
      "resname": np.full(n, "LIG"), "name": np.array([f"{e}{i}" for i, e in enumerate(elements)]),
      "element": np.array(elements), "x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2]})


def test_lba_task_pocket_plus_ligand_elements(tmp_path):
  protein = small_protein(seed=3, length=30)
  centre = protein.ca[10]
  elements = ["C", "N", "O", "H", "CL", "H", "S"]
  xyz = centre + np.random.default_rng(1).normal(scale=1.5, size=(len(elements), 3))
  pocket = protein.take(np.arange(5, 16))

  def items(split):
    return [{"id": f"{split}1", "atoms_protein": atom3d.atoms_table(protein),
             "atoms_pocket": atom3d.atoms_table(pocket),
             "atoms_ligand": _ligand_table(xyz, elements), "scores": {"neglog_aff": 6.5}}]

  _write_splits(tmp_path / "lba", items)
  # LM rows come from the whole chain (pocket rows selected), ligand atoms get zeros.
  store = EmbeddingStore(tmp_path / "store")
  full = np.random.default_rng(0).normal(size=(len(protein), 4)).astype(np.float32)
  store.put("toy", 1, protein.sequence, full)
  config = make_config("atom3d_lba", "graph", tmp_path, fusion="project",
                       data_dir=str(tmp_path / "lba"))
  splits = config_lib.load_task(config, store)[1].splits
  g = splits.test[0]
  n_res, heavy = len(pocket), [e for e in elements if e != "H"]
  assert g.n_node[0] == n_res + len(heavy)
  assert np.all(g.nodes["aatype"][n_res:] == residues.LIGAND_ATOM)
  assert g.nodes["element"][n_res:].tolist() == [residues.element_index(e) for e in heavy]
  assert g.nodes["element"][n_res + 3] == residues.element_index("Cl")
  np.testing.assert_allclose(g.nodes["x"][n_res:], xyz[[e != "H" for e in elements]], atol=1e-5)
  assert g.nodes["partner"].tolist() == [0] * n_res + [1] * len(heavy)
  np.testing.assert_allclose(g.nodes["lm"][:n_res], full[5:16], atol=1e-6)
  assert np.all(g.nodes["lm"][n_res:] == 0)
  assert float(g.globals["label"][0]) == pytest.approx(6.5)

  # A record whose ligand is missing.
  atom3d.write_lmdb(tmp_path / "noligand", [{"id": "x", "atoms_pocket": atom3d.atoms_table(pocket),
                                             "scores": {"neglog_aff": 5.0}}])
  config.task.update({"train": str(tmp_path / "noligand")})
  with pytest.raises(DataError, match=r"noligand: record 0 \(id 'x'\): .*ligand is missing"):
    config_lib.load_task(config, store)[1].splits


def _pair_complex(gap):
  """Two generated chains side by side, `gap` A apart along x (same-shape chains)."""
  a = small_protein(seed=5, length=25)
  b = small_protein(seed=6, length=25)
  shift = a.ca.mean(0) - b.ca.mean(0)
  shift[0] += gap
  b = testing.make_protein(b.sequence, b.backbone + shift.astype(np.float32), chain_id="B")
  return a, b


def test_ppi_task_neighbours_and_distance_labels(tmp_path):
  a, b = _pair_complex(gap=6.0)
  heavy_a, heavy_b = interface_labels(a, b, "heavy", 6.0)
  assert heavy_a.any() and not heavy_a.all()
  pos = [(i, j) for i in range(len(a)) for j in range(len(b))
         if np.min(np.linalg.norm(a.atom_positions[i][a.atom_mask[i]][:, None]
                                  - b.atom_positions[j][b.atom_mask[j]][None], axis=-1)) < 6.0]
  n = len(pos)
  neighbors = atom3d.AtomsTable({
      "ensemble0": np.full(n, "e"), "subunit0": np.full(n, "e_lig"),
      "chain0": np.full(n, "A"), "residue0": np.array([a.residue_number[i] for i, _ in pos]),
      "ensemble1": np.full(n, "e"), "subunit1": np.full(n, "e_rec"),
      "chain1": np.full(n, "B"), "residue1": np.array([b.residue_number[j] for _, j in pos])})
  pairs_cols = {k: np.concatenate([atom3d.atoms_table(a, "e", "e_lig")[k],
                                   atom3d.atoms_table(b, "e", "e_rec")[k]])
                for k in atom3d.atoms_table(a).names}

  def items(split):
    return [{"id": "e", "atoms_pairs": atom3d.AtomsTable(pairs_cols),
             "atoms_neighbors": neighbors}]

  _write_splits(tmp_path / "ppi", items)
  task = tasks.get_task("atom3d_ppi")
  assert task.options({}).definition == "ca"          # the paper's labels by default
  config = make_config("atom3d_ppi", "node", tmp_path, data_dir=str(tmp_path / "ppi"),
                       definition="neighbors")
  splits = config_lib.load_task(config, None)[1].splits
  assert splits.sizes() == {"train": 2, "val": 2, "test": 2}
  g0, g1 = splits.train
  np.testing.assert_array_equal(g0.nodes["label"], heavy_a.astype(np.float32))
  np.testing.assert_array_equal(g1.nodes["label"], heavy_b.astype(np.float32))
  # The paper's CA definition computed from the coordinates instead.
  config.task.update({"definition": "ca", "cutoff": 8.0})
  ca_a, ca_b = interface_labels(a, b, "ca", 8.0)
  g0, g1 = config_lib.load_task(config, None)[1].splits.val
  np.testing.assert_array_equal(g0.nodes["label"], ca_a.astype(np.float32))
  np.testing.assert_array_equal(g1.nodes["label"], ca_b.astype(np.float32))
  # A pair that does not touch.
  far_a, far_b = _pair_complex(gap=40.0)
  cols = {k: np.concatenate([atom3d.atoms_table(far_a, "f", "f_lig")[k],
                             atom3d.atoms_table(far_b, "f", "f_rec")[k]])
          for k in atom3d.atoms_table(a).names}
  atom3d.write_lmdb(tmp_path / "apart", [{"id": "f", "atoms_pairs": atom3d.AtomsTable(cols)}])
  config.task.update({"train": str(tmp_path / "apart")})
  with pytest.raises(DataError, match=r"apart: record 0 \(id 'f'\): subunits f_lig and f_rec "
                                      "do not touch"):
    config_lib.load_task(config, None)[1].splits


def test_unknown_option_and_missing_split(tmp_path):
  with pytest.raises(ConfigError, match="unknown option"):
    config_lib.load_task(make_config("atom3d_psr", "graph", tmp_path, cutof=3), None)[1].splits
  with pytest.raises(DataError, match="no train LMDB found"):
    config_lib.load_task(make_config("atom3d_psr", "graph", tmp_path, data_dir=str(tmp_path)))


def test_ppi_paper_split_re_splits_the_test_lmdb(tmp_path):
  """main.py: split_randomly(LMDBDataset(test)): 80 / 10 / 10 of the test LMDB alone."""
  a, b = _pair_complex(gap=6.0)
  cols = {k: np.concatenate([atom3d.atoms_table(a, "e", "e_lig")[k],
                             atom3d.atoms_table(b, "e", "e_rec")[k]])
          for k in atom3d.atoms_table(a).names}
  atom3d.write_lmdb(tmp_path / "ppi" / "test", [
      {"id": f"e{i}", "atoms_pairs": atom3d.AtomsTable(cols)} for i in range(20)])
  config = make_config("atom3d_ppi", "node", tmp_path, data_dir=str(tmp_path / "ppi"),
                       split="paper")
  task, options, inputs = config_lib.task_setup(config)
  parts = {s: task.record_indices(s, options, inputs, 20)[1] for s in ("train", "val", "test")}
  assert [len(parts[s]) for s in ("train", "val", "test")] == [16, 2, 2]
  assert sorted(sum(parts.values(), [])) == list(range(20))
  dataset = config_lib.load_task(config)[1]
  assert dataset.splits.sizes() == {"train": 32, "val": 4, "test": 4}   # two graphs a pair
  with pytest.raises(ConfigError, match="task.split"):
    task.options({"split": "random"})
