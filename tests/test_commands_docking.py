"""`jaxgeo dock` (a trained IEGMN run moves a ligand file onto its receptor) and
`jaxgeo score-docking` (complex / interface RMSD and DockQ of methods' outputs)."""
from __future__ import annotations

import gzip
import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, cpu_subprocess_env, fail_after_first_batch
from jaxgeo import cli, geometry, structure, train
from jaxgeo.commands import dock
from jaxgeo.errors import DataError
from jaxgeo.metrics import docking, docking_scores
from test_tasks_docking import SMALL, small_splits, tiny_config

pytestmark = pytest.mark.filterwarnings("ignore:Could not parse charge")

EXTRA = ("REMARK   1 a remark that must stay as it is\n"
         "HETATM 9001  C1  LIG X 901      10.000  20.000  30.000  0.50 12.34           C  \n"
         "HETATM 9002  O   HOH W 902      -1.500   2.250  -3.125  1.00  5.00           O  \n")


def _text(path) -> str:
  data = open(path, "rb").read()
  return (gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data).decode()


def _coords(line: str) -> np.ndarray:
  return np.array([float(line[30:38]), float(line[38:46]), float(line[46:54])])


@pytest.fixture(scope="module")
def run_dir(shared_data, tmp_path_factory):
  """A one-epoch tiny IEGMN run on the three small complexes (any weights will do)."""
  tmp = tmp_path_factory.mktemp("dock_run")
  config = tiny_config(shared_data, small_splits(tmp), "train.batch_graphs=3", "train.epochs=1")
  result = train.train(config, tmp / "run", progress=False)
  return tmp / "run", result


@pytest.fixture(scope="module")
def pair_files(shared_data, tmp_path_factory):
  """2OOB's bound receptor, and its ligand moved away (with a HETATM ligand, a water and a
  remark appended) as a docking input."""
  tmp = tmp_path_factory.mktemp("pair")
  folder = shared_data / "db5.5" / "structures"
  rec = tmp / "2OOB_r_b.pdb"
  rec.write_text(_text(folder / "2OOB_r_b.pdb.gz"))
  rot, shift = geometry.random_rigid_motion(np.random.default_rng(3), 20.0)
  lines = [l for l in _text(folder / "2OOB_l_b.pdb.gz").splitlines(keepends=True)
           if not l.startswith("END")]
  lig = tmp / "2OOB_l_b.pdb"
  lig.write_text(dock.move_pdb_text("".join(lines) + EXTRA, rot, shift) + "END\n")
  return rec, lig


def test_move_pdb_text_changes_only_coordinates():
  rot = geometry.random_rotation(np.random.default_rng(0))
  t = np.array([1.0, -2.0, 3.5])
  text = ("HEADER    x\nATOM      1  CA  ALA A   1       1.000   2.000   3.000  1.00  0.00"
          "           C  \n" + EXTRA + "END\n")
  out = dock.move_pdb_text(text, rot, t)
  for a, b in zip(text.splitlines(), out.splitlines()):
    assert a[:30] == b[:30] and a[54:] == b[54:]
    if a.startswith(("ATOM", "HETATM")):
      np.testing.assert_allclose(_coords(b), rot @ _coords(a) + t, atol=6e-4)
    else:
      assert a == b
  with pytest.raises(DataError, match="do not fit"):
    dock.move_pdb_text(text, np.eye(3), np.array([1e5, 0.0, 0.0]))


def test_checkpoint_round_trip_gives_identical_predictions(run_dir):
  run, result = run_dir
  again = train.evaluate_run(run, "best", splits=("test",), progress=False)
  assert again["test"]["metrics"] == result["test"]


def test_dock_moves_every_ligand_atom_by_the_predicted_transform(run_dir, pair_files, tmp_path):
  run, _ = run_dir
  rec, lig = pair_files
  out = tmp_path / "docked.pdb"
  assert cli.main(["dock", "--model", str(run), "--receptor", str(rec), "--ligand", str(lig),
                   "--out", str(out)]) == 0
  docker = dock.Docker(run)
  rotation, translation = docker.transform(rec, lig)
  np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-5)
  assert np.linalg.det(rotation) == pytest.approx(1.0, abs=1e-5)
  before, after = _text(lig).splitlines(), _text(out).splitlines()
  assert len(before) == len(after)
  moved = 0
  for a, b in zip(before, after):
    if a.startswith(("ATOM", "HETATM")):
      assert a[:30] == b[:30] and a[54:] == b[54:]     # names, chains, numbers, B-factors ...
      np.testing.assert_allclose(_coords(b), rotation @ _coords(a) + translation, atol=6e-4)
      moved += 1
    else:
      assert a == b
  assert moved > 500 and sum(l.startswith("HETATM") for l in after) == 2
  # The docked ligand is where the model puts it: its CAs are the model's x_pred.
  docked = structure.load_protein(out)
  given = structure.load_protein(lig)
  np.testing.assert_allclose(docked.ca, given.ca @ rotation.T + translation, atol=2e-3)


def test_dock_reports_missing_language_model_rows(run_dir, pair_files):
  run, _ = run_dir
  rec, lig = pair_files

  class NoRows:
    def rows(self, protein):
      raise DataError("embedding store /x: no entry for this sequence")

  docker = dock.Docker(run)
  object.__setattr__(docker, "features", NoRows())
  with pytest.raises(DataError, match=f"{lig.name}: no language-model rows"):
    docker.transform(rec, lig)


def test_dock_folder_lists_failures_and_docks_the_rest(run_dir, pair_files, tmp_path, capsys):
  run, _ = run_dir
  rec, lig = pair_files
  pairs = tmp_path / "pairs"
  pairs.mkdir()
  (pairs / "AAAA_r_b.pdb").write_text(rec.read_text())
  (pairs / "AAAA_l_b.pdb.gz").write_bytes(gzip.compress(lig.read_bytes()))
  (pairs / "BBBB_l_b.pdb").write_text(lig.read_text())                  # no receptor
  (pairs / "CCCC_r_b.pdb").write_text("this is not a structure\n")       # unreadable
  (pairs / "CCCC_l_b.pdb").write_text(lig.read_text())
  out = tmp_path / "out"
  status = cli.main(["dock", "--model", str(run), "--pairs", str(pairs), "--out", str(out),
                     "--no-progress"])
  printed = capsys.readouterr().out
  assert status == 1
  assert (out / "AAAA_l_b_IEGMN.pdb").is_file()
  # The receptor is copied as it is, so that the folder scores as a method's outputs.
  assert sorted(p.name for p in out.iterdir()) == ["AAAA_l_b_IEGMN.pdb", "AAAA_r_b_IEGMN.pdb"]
  assert (out / "AAAA_r_b_IEGMN.pdb").read_text() == rec.read_text()
  assert "docked 1 of 2 pairs" in printed and "s per complex" in printed
  assert "2 failed" in printed
  assert "BBBB_l_b.pdb: its partner BBBB_r_b.pdb[.gz] is missing" in printed
  assert "CCCC_r_b.pdb" in printed


@pytest.fixture(scope="module")
def pairs_folder(shared_data, tmp_path_factory):
  """The three small complexes as docking inputs: each ligand moved away (seeded), the
  receptor as bound."""
  folder = tmp_path_factory.mktemp("pairs")
  structures = shared_data / "db5.5" / "structures"
  for k, pdb_id in enumerate(SMALL):
    rot, shift = geometry.random_rigid_motion(np.random.default_rng(10 + k), 20.0)
    (folder / f"{pdb_id}_r_b.pdb").write_text(_text(structures / f"{pdb_id}_r_b.pdb.gz"))
    (folder / f"{pdb_id}_l_b.pdb").write_text(
        dock.move_pdb_text(_text(structures / f"{pdb_id}_l_b.pdb.gz"), rot, shift))
  return folder


def _docked_cas(folder, pdb_ids=SMALL) -> dict[str, np.ndarray]:
  return {i: structure.load_protein(folder / f"{i}_l_b_IEGMN.pdb").ca for i in pdb_ids}


def test_dock_folder_in_batches_moves_each_pair_as_alone(run_dir, pairs_folder, tmp_path):
  """Pairs docked together (batches of 2 and of 3, padded, as the run's batches were) get the
  rigid motion each gets docked alone."""
  run, _ = run_dir
  docker = dock.Docker(run)
  for batch in (2, 3):
    out = tmp_path / f"batch{batch}"
    assert cli.main(["dock", "--model", str(run), "--pairs", str(pairs_folder), "--out",
                     str(out), "--batch-graphs", str(batch), "--no-progress"]) == 0
    docked = _docked_cas(out)
    for pdb_id in SMALL:
      rec, lig = pairs_folder / f"{pdb_id}_r_b.pdb", pairs_folder / f"{pdb_id}_l_b.pdb"
      rotation, translation = docker.transform(rec, lig)
      given = structure.load_protein(lig).ca
      np.testing.assert_allclose(docked[pdb_id], given @ rotation.T + translation, atol=3e-3)


def test_dock_folder_writes_each_batch_as_it_runs(run_dir, pairs_folder, tmp_path,
                                                  monkeypatch):
  """A batch's files are on disk before the next batch runs: when the second of three
  one-pair batches fails, the first pair is docked (ligand moved, receptor copied)."""
  run, _ = run_dir
  fail_after_first_batch(monkeypatch)
  pairs, _ = dock.find_pairs(pairs_folder)
  out = tmp_path / "out"
  with pytest.raises(RuntimeError, match="second batch"):
    dock.Docker(run).dock_pairs(pairs, out, batch_graphs=1, progress=False)
  written = sorted(p.name for p in out.iterdir())
  assert len(written) == 2 and written[0].endswith("_l_b_IEGMN.pdb"), written
  assert written[1] == written[0].replace("_l_b_", "_r_b_")


def test_dock_folder_on_two_cpu_devices_equals_one(run_dir, pairs_folder, tmp_path):
  """`--cpu-devices 2` (each batch of 2 pairs cut into one pair a device) writes the poses
  one device writes, and says it used two devices."""
  run, _ = run_dir
  outs = {}
  for devices in (1, 2):
    outs[devices] = tmp_path / f"devices{devices}"
    proc = subprocess.run(
        [sys.executable, "-m", "jaxgeo", "dock", "--model", str(run), "--pairs",
         str(pairs_folder), "--out", str(outs[devices]), "--batch-graphs", "2",
         "--cpu-devices", str(devices), "--no-progress"],
        capture_output=True, text=True, timeout=300, cwd=REPO, env=cpu_subprocess_env())
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "docked 3 of 3 pairs" in proc.stdout
    assert f"over {devices} cpu device(s)" in proc.stdout
  one, two = _docked_cas(outs[1]), _docked_cas(outs[2])
  for pdb_id in SMALL:
    np.testing.assert_allclose(two[pdb_id], one[pdb_id], atol=3e-3)


def test_dock_errors_are_one_line(run_dir, pair_files, tmp_path, capsys):
  run, _ = run_dir
  rec, lig = pair_files
  assert cli.main(["dock", "--model", str(tmp_path), "--receptor", str(rec), "--ligand",
                   str(lig), "--out", str(tmp_path / "o")]) == 2
  assert "not a run folder" in capsys.readouterr().err
  assert cli.main(["dock", "--model", str(run), "--receptor", str(tmp_path / "no.pdb"),
                   "--ligand", str(tmp_path / "no.pdb"), "--out", str(tmp_path / "o")]) == 2
  assert "no.pdb: no such file" in capsys.readouterr().err
  assert cli.main(["dock", "--model", str(run), "--receptor", str(rec), "--ligand", str(lig),
                   "--out", str(tmp_path / "o"), "--cpu-devices", "2"]) == 2
  assert "--cpu-devices is for --pairs" in capsys.readouterr().err
  assert cli.main(["dock", "--model", str(run), "--pairs", str(rec.parent), "--out",
                   str(tmp_path / "o"), "--batch-graphs", "0"]) == 2
  assert "--batch-graphs 0: must be at least 1" in capsys.readouterr().err


def test_score_docking_on_a_small_folder(shared_data, tmp_path, capsys):
  """Two complexes, two methods: `exact` (the truth, receptor moved along with the ligand:
  every score perfect) and `shifted` (ligand-only, moved 6 A: the scores metrics.docking
  gives)."""
  folder = shared_data / "db5.5" / "structures"
  root = tmp_path / "results"
  for sub in ("ground_truth", "decoys/exact", "decoys/shifted"):
    (root / sub).mkdir(parents=True)
  rot = geometry.random_rotation(np.random.default_rng(1))
  expected = []
  for pdb_id in SMALL[:2]:
    lig, rec = _text(folder / f"{pdb_id}_l_b.pdb.gz"), _text(folder / f"{pdb_id}_r_b.pdb.gz")
    (root / "ground_truth" / f"{pdb_id}_l_b_COMPLEX.pdb").write_text(lig)
    (root / "ground_truth" / f"{pdb_id}_r_b_COMPLEX.pdb.gz").write_bytes(gzip.compress(
        rec.encode()))
    (root / "decoys/exact" / f"{pdb_id}_l_b_EXACT.pdb").write_text(
        dock.move_pdb_text(lig, rot, np.ones(3)))
    (root / "decoys/exact" / f"{pdb_id}_r_b_EXACT.pdb").write_text(
        dock.move_pdb_text(rec, rot, np.ones(3)))
    shifted = dock.move_pdb_text(lig, np.eye(3), np.array([6.0, 0.0, 0.0]))
    (root / "decoys/shifted" / f"{pdb_id}_l_b_SHIFTED.pdb").write_text(shifted)
    p_lig = structure.load_protein(root / "decoys/shifted" / f"{pdb_id}_l_b_SHIFTED.pdb")
    t_lig = structure.load_protein(folder / f"{pdb_id}_l_b.pdb.gz")
    t_rec = structure.load_protein(folder / f"{pdb_id}_r_b.pdb.gz")
    expected.append((docking.complex_rmsd(p_lig.ca, t_rec.ca, t_lig.ca, t_rec.ca),
                     docking.dockq_proteins(p_lig, t_rec, t_lig, t_rec).dockq))
  assert cli.main(["score-docking", str(root), "--json", "--no-progress"]) == 0
  scores = json.loads(capsys.readouterr().out)
  assert scores["complexes"] == sorted(SMALL[:2])
  assert list(scores["methods"]) == ["exact", "shifted"]
  exact = scores["methods"]["exact"]["summary"]
  assert exact["complexes"] == 2 and exact["acceptable_or_better"] == 2
  assert exact["complex_rmsd"]["median"] == pytest.approx(0.0, abs=2e-3)
  assert exact["interface_rmsd"]["mean"] == pytest.approx(0.0, abs=2e-3)
  assert exact["dockq"]["mean"] == pytest.approx(1.0, abs=1e-3)
  shifted = scores["methods"]["shifted"]["summary"]
  crmsd = np.array([e[0] for e in expected])
  assert shifted["complex_rmsd"]["mean"] == pytest.approx(crmsd.mean(), abs=1e-6)
  assert shifted["complex_rmsd"]["std"] == pytest.approx(crmsd.std(), abs=1e-6)
  assert shifted["dockq"]["median"] == pytest.approx(np.median([e[1] for e in expected]))
  assert crmsd.min() > 1.0
  # The table: one row per method, two decimals.
  assert cli.main(["score-docking", str(root), "--no-progress"]) == 0
  table = capsys.readouterr().out.splitlines()
  assert [line.split()[0] for line in table[2:]] == ["exact", "shifted"]
  assert f"{crmsd.mean():.2f}" in table[3]
  # An unknown method and a folder without ground truth are one-line errors.
  assert cli.main(["score-docking", str(root), "--methods", "nope"]) == 2
  assert "no method folder nope" in capsys.readouterr().err
  assert cli.main(["score-docking", str(tmp_path)]) == 2
  assert "ground_truth: no such folder" in capsys.readouterr().err


def test_score_docking_reproduces_equidocks_table(shared_data):
  """EquiDock's published DB5.5 numbers (Ganea et al. 2022, Table 1): EquiDock complex
  RMSD 14.13 / 14.72 / 5.31, interface RMSD 11.97 / 13.23 / 4.93; HDOCK complex RMSD
  median 0.30, mean 5.34. Our scoring of the released outputs gives 14.136 / 14.726 / 5.312:
  the same to 0.01 (EquiDock's own script on these files gives the same as ours)."""
  root = shared_data / "db5_docking"
  if not (root / "decoys").is_dir():
    pytest.skip(f"{root} not found")
  scores = docking_scores.score_folder(root, ["equidock", "hdock"])
  s = scores["methods"]["equidock"]["summary"]
  got = [s[m][k] for m in ("complex_rmsd", "interface_rmsd") for k in ("median", "mean", "std")]
  np.testing.assert_allclose(got, [14.13, 14.72, 5.31, 11.97, 13.23, 4.93], atol=0.01)
  h = scores["methods"]["hdock"]["summary"]
  assert f"{h['complex_rmsd']['median']:.2f}" == "0.30"
  assert f"{h['complex_rmsd']['mean']:.2f}" == "5.34"
  assert s["complexes"] == h["complexes"] == 25 and h["acceptable_or_better"] == 20
