"""experiments/score_docking_baselines.py on the real DB5.5 docking outputs (skips without data).

EquiDock's published DB5.5 test-set numbers (Ganea et al., ICLR 2022, Table 1): complex RMSD
median / mean / std 14.13 / 14.72 / 5.31, interface RMSD 11.97 / 13.23 / 4.93.
"""
import importlib.util

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
