"""experiments/score_docking_baselines.py on the real DB5.5 docking outputs (skips without data).

EquiDock's published DB5.5 test-set numbers (Ganea et al., ICLR 2022, Table 1): complex RMSD
median / mean / std 14.13 / 14.72 / 5.31, interface RMSD 11.97 / 13.23 / 4.93.
"""
import gzip
import importlib.util
import json

import numpy as np
import pytest

from conftest import REPO
from jaxgeo import structure
from jaxgeo.metrics import docking

# mdtraj warns about the charge columns of some decoy files; the coordinates are fine.
pytestmark = pytest.mark.filterwarnings("ignore:Could not parse charge")


def _script():
  path = REPO / "experiments" / "score_docking_baselines.py"
  spec = importlib.util.spec_from_file_location("score_docking_baselines", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


@pytest.fixture(scope="module")
def db5(shared_data):
  data = shared_data / "db5_docking"
  if not (data / "ground_truth").is_dir():
    pytest.skip(f"{data} not found")
  return data


def test_equidock_reproduces_published_table(db5):
  script = _script()
  rows = script.score_method(db5, "equidock")
  assert len(rows) == 25
  summary = script.summarize(rows)
  for metric, published in (("complex_rmsd", (14.13, 14.72, 5.31)),
                            ("interface_rmsd", (11.97, 13.23, 4.93))):
    ours = (summary[metric]["median"], summary[metric]["mean"], summary[metric]["std"])
    np.testing.assert_allclose(ours, published, atol=0.02, err_msg=metric)
  # EquiDock's outputs have exactly the ground truth's residues, paired in order.
  for row in rows:
    for side in ("ligand", "receptor"):
      pairing = row["pairing"][side]
      assert pairing["method"] == "order" and pairing["matched"] == pairing["native"]
      assert pairing["name_mismatches"] == 0
  assert all(0.0 <= r["dockq"] <= 1.0 for r in rows)


def test_ground_truth_scores_perfectly(db5):
  lig = structure.load_protein(db5 / "ground_truth" / "1AVX_l_b_COMPLEX.pdb.gz")
  rec = structure.load_protein(db5 / "ground_truth" / "1AVX_r_b_COMPLEX.pdb.gz")
  result = docking.dockq_proteins(lig, rec, lig, rec)
  assert result.n_native_contacts > 10
  assert result.dockq == pytest.approx(1.0)
  rmsds = docking.equidock_rmsds_proteins(lig, rec, lig, rec)
  assert rmsds["complex_rmsd"] == pytest.approx(0.0, abs=1e-3)
  assert rmsds["interface_rmsd"] == pytest.approx(0.0, abs=1e-3)


SMALL = ("2OOB", "1GCQ", "2X9A")       # three small DB5.5 complexes (116-151 CAs)


def _pdb_text(path) -> str:
  data = path.read_bytes()
  return (gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data).decode()


@pytest.fixture(scope="module")
def small_results(shared_data, tmp_path_factory):
  """A results folder of three complexes and two ligand-only methods: `shifted` (the
  ligand moved 2, 5 and 9 A along x) and `partial` (the ligand of the first two complexes
  rotated about its centre by 20 degrees; no file for the third)."""
  from jaxgeo.commands import dock
  folder = shared_data / "db5.5" / "structures"
  if not folder.is_dir():
    pytest.skip(f"{folder} not found")
  root = tmp_path_factory.mktemp("docking_results")
  for sub in ("ground_truth", "decoys/shifted", "decoys/partial"):
    (root / sub).mkdir(parents=True)
  angle = np.deg2rad(20.0)
  rot = np.array([[np.cos(angle), -np.sin(angle), 0.0], [np.sin(angle), np.cos(angle), 0.0],
                  [0.0, 0.0, 1.0]])
  for i, (pdb_id, shift) in enumerate(zip(SMALL, (2.0, 5.0, 9.0))):
    lig = _pdb_text(folder / f"{pdb_id}_l_b.pdb.gz")
    (root / "ground_truth" / f"{pdb_id}_l_b_COMPLEX.pdb").write_text(lig)
    (root / "ground_truth" / f"{pdb_id}_r_b_COMPLEX.pdb.gz").write_bytes(
        (folder / f"{pdb_id}_r_b.pdb.gz").read_bytes())
    (root / "decoys/shifted" / f"{pdb_id}_l_b_SHIFTED.pdb").write_text(
        dock.move_pdb_text(lig, np.eye(3), np.array([shift, 0.0, 0.0])))
    if i < 2:
      centre = structure.load_protein(folder / f"{pdb_id}_l_b.pdb.gz").ca.mean(0)
      (root / "decoys/partial" / f"{pdb_id}_l_b_PARTIAL.pdb").write_text(
          dock.move_pdb_text(lig, rot, centre - rot @ centre))
  return root


def test_per_complex_values_are_what_the_summary_aggregates(small_results, shared_data, capsys):
  """score-docking --json: per_complex {metric: {id: value}} of every method; the median and
  mean of those lists are the summary's; each value is the complex's own row."""
  from jaxgeo import cli
  assert cli.main(["score-docking", str(small_results), "--json", "--no-progress"]) == 0
  scores = json.loads(capsys.readouterr().out)
  assert scores["complexes"] == sorted(SMALL)
  for method, ids in (("shifted", sorted(SMALL)), ("partial", sorted(SMALL[:2]))):
    result = scores["methods"][method]
    assert set(result["per_complex"]) == {"complex_rmsd", "interface_rmsd", "dockq"}
    rows = {row["id"]: row for row in result["complexes"]}
    for metric, by_id in result["per_complex"].items():
      assert sorted(by_id) == ids
      values = np.array([by_id[i] for i in ids])
      summary = result["summary"][metric]
      assert summary["n"] == len(ids)
      assert np.median(values) == pytest.approx(summary["median"], abs=1e-12)
      assert np.mean(values) == pytest.approx(summary["mean"], abs=1e-12)
      assert np.std(values) == pytest.approx(summary["std"], abs=1e-12)
      for i in ids:
        assert by_id[i] == rows[i][metric]
  # The values are the complexes' own: a pure shift of the ligand, scored on CA atoms.
  shifted = scores["methods"]["shifted"]["per_complex"]
  folder = shared_data / "db5.5" / "structures"
  for pdb_id, shift in zip(SMALL, (2.0, 5.0, 9.0)):
    lig = structure.load_protein(folder / f"{pdb_id}_l_b.pdb.gz")
    rec = structure.load_protein(folder / f"{pdb_id}_r_b.pdb.gz")
    moved = lig.ca + np.array([shift, 0.0, 0.0])
    assert shifted["complex_rmsd"][pdb_id] == pytest.approx(
        docking.complex_rmsd(moved, rec.ca, lig.ca, rec.ca), abs=2e-3)
  assert (shifted["complex_rmsd"]["2OOB"] < shifted["complex_rmsd"]["1GCQ"]
          < shifted["complex_rmsd"]["2X9A"])
  # --compact: the summaries and per-complex values only, the same numbers.
  assert cli.main(["score-docking", str(small_results), "--json", "--compact",
                   "--no-progress"]) == 0
  small = json.loads(capsys.readouterr().out)
  assert small["complexes"] == scores["complexes"]
  for method, result in small["methods"].items():
    assert set(result) == {"summary", "per_complex"}
    assert result["per_complex"] == scores["methods"][method]["per_complex"]
    assert result["summary"] == scores["methods"][method]["summary"]
  assert cli.main(["score-docking", str(small_results), "--compact"]) == 2
  assert "--compact goes with --json" in capsys.readouterr().err


def test_committed_baselines_hold_per_complex_values():
  """experiments/results/docking_baselines.json: 25 complexes per method, keyed by id, whose
  median / mean are the table's."""
  data = json.loads((REPO / "experiments" / "results" / "docking_baselines.json").read_text())
  assert len(data["methods"]) == 6
  for method, result in data["methods"].items():
    for metric in ("complex_rmsd", "interface_rmsd", "dockq"):
      by_id = result["per_complex"][metric]
      assert len(by_id) == 25 and sorted(by_id) == [r["id"] for r in result["complexes"]]
      values = np.array(list(by_id.values()), np.float64)
      assert np.median(values) == pytest.approx(result["summary"][metric]["median"], abs=1e-9)
      assert np.mean(values) == pytest.approx(result["summary"][metric]["mean"], abs=1e-9)
