"""User errors of `jaxgeo COMMAND ...` that used to end in a traceback (or pass silently): each
is now one line on stderr naming the file or option and the cause, with exit status 2, and is
raised before anything is computed (outputs are checked first, so nothing computed is lost).
"""
import json
import pathlib
import shutil

import pytest

from jaxgeo import cli
from jaxgeo.errors import DataError

REPO = pathlib.Path(__file__).resolve().parent.parent
STRUCTURES = REPO / "examples" / "structures"
LIG, REC = STRUCTURES / "1AY7_l_b.pdb.gz", STRUCTURES / "1AY7_r_b.pdb.gz"


def one_line_error(capsys, argv, *words):
  """Runs `jaxgeo argv` and checks: exit status 2, one stderr line holding every word."""
  assert cli.main([str(a) for a in argv]) == 2
  err = capsys.readouterr().err
  assert err.count("\n") == 1 and "Traceback" not in err, err
  for word in words:
    assert str(word) in err, (word, err)
  return err


@pytest.fixture
def a_file(tmp_path):
  path = tmp_path / "notes.txt"
  path.write_text("mine\n")
  return path


# --- outputs that cannot be written: checked before the run is loaded -------------------------

@pytest.mark.parametrize("out,cause", [("folder", "is a folder, not a file"),
                                       ("under_a_file", "is a file, not a folder")])
def test_predict_out_that_cannot_be_written(tmp_path, capsys, a_file, out, cause):
  # Before: a traceback from the atomic write, after every prediction was computed.
  target = tmp_path if out == "folder" else a_file / "pred.csv"
  one_line_error(capsys, ["predict", "--model", tmp_path / "no_run", LIG, "--out", target,
                          "--no-progress"], "--out", target, cause)


def test_predict_pdb_out_that_is_a_file(tmp_path, capsys, a_file):
  one_line_error(capsys, ["predict", "--model", tmp_path / "no_run", LIG, "--out",
                          tmp_path / "p.csv", "--pdb-out", a_file, "--no-progress"],
                 "--pdb-out", a_file, "is a file, not a folder")
  assert not (tmp_path / "p.csv").exists()


def test_predict_damaged_dataset_json_names_it(tmp_path):
  from jaxgeo.commands import predict
  (tmp_path / "dataset.json").write_text('{"stats": ')
  with pytest.raises(DataError, match="dataset.json: cannot be read"):
    predict.run_stats(tmp_path, None, None)


def test_dock_out_that_cannot_be_written(tmp_path, capsys, a_file):
  # Before: a traceback from mkdir / os.replace after the pair was docked.
  one_line_error(capsys, ["dock", "--model", tmp_path / "no_run", "--receptor", REC,
                          "--ligand", LIG, "--out", tmp_path], "--out", "is a folder, not a file")
  one_line_error(capsys, ["dock", "--model", tmp_path / "no_run", "--receptor", REC,
                          "--ligand", LIG, "--out", a_file / "x.pdb"], "--out", a_file)
  pairs = tmp_path / "pairs"
  pairs.mkdir()
  shutil.copy(LIG, pairs / "1AY7_l_b.pdb.gz")
  shutil.copy(REC, pairs / "1AY7_r_b.pdb.gz")
  one_line_error(capsys, ["dock", "--model", tmp_path / "no_run", "--pairs", pairs, "--out",
                          a_file, "--no-progress"], "--out", a_file, "is a file, not a folder")


def _docking_json(tmp_path, value):
  path = tmp_path / "docking.json"
  path.write_text(json.dumps({"methods": {"m": {"per_complex": {"complex_rmsd": {"X": value}}}}}))
  return path


def test_report_out_that_is_a_file(tmp_path, capsys, a_file):
  one_line_error(capsys, ["report", "--docking", _docking_json(tmp_path, 1.5), "--out", a_file],
                 "--out", a_file, "is a file, not a folder")


# --- report: damaged inputs -------------------------------------------------------------------

def _run_folder(root, metrics):
  run = root / "runs" / "r1"
  run.mkdir(parents=True)
  (run / "test_metrics.json").write_text(json.dumps(metrics))
  (run / "config.json").write_text(json.dumps({"name": "row", "train": {"seed": 0}}))
  (run / "log.jsonl").write_text(json.dumps({"epoch": 1, "val": {"rmse": 1.0}}) + "\n")
  return run


@pytest.mark.parametrize("metrics,words", [
    ([1, 2], ["test_metrics.json", "holds a JSON list"]),
    ({"task": "position"}, ["not a finished jaxgeo run", "primary_metric"]),
])
def test_report_test_metrics_of_the_wrong_shape(tmp_path, capsys, metrics, words):
  # Before: TypeError / KeyError tracebacks while reading the validation curve.
  run = _run_folder(tmp_path, metrics)
  one_line_error(capsys, ["report", tmp_path / "runs", "--out", tmp_path / "out",
                          "--no-figures"], run, *words)


def test_report_docking_value_that_is_not_a_number(tmp_path, capsys):
  path = _docking_json(tmp_path, "far")
  one_line_error(capsys, ["report", "--docking", path, "--out", tmp_path / "out"],
                 path, "method m", "not a number")


# --- score-docking: a decoy of another protein ------------------------------------------------

def test_score_docking_decoy_matching_no_residue_of_the_truth(tmp_path, capsys):
  # Before: the receptor alone was scored: complex RMSD 0.00, exit status 0.
  (tmp_path / "ground_truth").mkdir()
  shutil.copy(LIG, tmp_path / "ground_truth" / "X_l_b_COMPLEX.pdb.gz")
  shutil.copy(REC, tmp_path / "ground_truth" / "X_r_b_COMPLEX.pdb.gz")
  decoys = tmp_path / "decoys" / "m"
  decoys.mkdir(parents=True)
  decoy = decoys / "X_l_b_M.pdb.gz"
  shutil.copy(STRUCTURES / "1CGI_l_b.pdb.gz", decoy)     # chain I, another protein
  one_line_error(capsys, ["score-docking", tmp_path, "--no-progress"], decoy,
                 "no residue of this predicted ligand matches")


# --- train / grid / embed options -------------------------------------------------------------

def test_unknown_fusion_mode_is_named_not_the_store(tmp_path, capsys, monkeypatch):
  # Before: "embedding store embeddings: no such store ..." (the store was opened first).
  monkeypatch.setenv("JAXGEO_STORE", str(tmp_path / "no_store"))
  one_line_error(capsys, ["train", "--config", "position_demo", "--set",
                          "model.fusion.mode=nosuch", "--run-dir", tmp_path / "run",
                          "--no-progress"], "model.fusion.mode='nosuch'")


def test_config_file_whose_get_config_raises(tmp_path, capsys):
  path = tmp_path / "mine.py"
  path.write_text("def get_config():\n  raise ValueError('no table yet')\n")
  one_line_error(capsys, ["train", "--config", path, "--run-dir", tmp_path / "run"],
                 path, "get_config() failed", "no table yet")


@pytest.mark.parametrize("argv,words", [
    (["--seeds", "-1"], ["--seeds -1"]),
    (["--max-runs", "-1"], ["--max-runs -1"]),
])
def test_grid_negative_counts(capsys, argv, words):
  one_line_error(capsys, ["grid", *argv, "--list"], *words)


def test_embed_max_tokens_must_be_positive(tmp_path, capsys):
  from jaxgeo.lm import esm2
  config = esm2.ESM2Config(num_layers=1, hidden_size=16, num_heads=2, intermediate_size=32,
                           name="esm2_tiny_errors")
  esm2.save_converted(tmp_path / "model", config, esm2.flatten_params(esm2.init_params(config)))
  fasta = tmp_path / "a.fasta"
  fasta.write_text(">a\nMKTAYIAK\n")
  for value in ("0", "-1"):   # before: 0 meant the default, -1 one row a batch
    one_line_error(capsys, ["embed", "--model", tmp_path / "model", "--fasta", fasta,
                            "--store", tmp_path / "store", "--max-tokens", value,
                            "--no-progress"], f"--max-tokens {value}")


# --- grid: nothing finished yet ---------------------------------------------------------------

def test_grid_with_no_finished_cell_skips_the_report(tmp_path, capsys):
  # Before: "results: no such folder of runs", exit status 2, after the grid had run.
  assert cli.main(["grid", "--tasks", "position", "--nets", "gvp", "--fusions", "none",
                   "--seeds", "0", "--max-runs", "0", "--runs", str(tmp_path / "runs"),
                   "--results", str(tmp_path / "results"), "--report-dir",
                   str(tmp_path / "report"), "--no-progress"]) == 0
  captured = capsys.readouterr()
  assert "no cell has finished yet" in captured.out and "no report written" in captured.out
  assert captured.err == "" and not (tmp_path / "report").exists()


# --- store verify: entry files the index does not list ----------------------------------------

def test_store_verify_reports_and_repairs_entry_files_the_index_lost(tmp_path, capsys):
  # Before: "0 entries", exit status 0, not a word about the files.
  import os
  import sqlite3
  import numpy as np
  from jaxgeo.lm.store import EmbeddingStore
  store = EmbeddingStore(tmp_path / "s")
  for seq in ("MKTAY", "GGWW", "PPPLLL"):
    store.put("m", 1, seq, np.ones((len(seq), 4), np.float32))
  kept = store.entry_path("m", 1, "PPPLLL")
  lost = [store.entry_path("m", 1, s) for s in ("GGWW", "MKTAY")]
  store.close()
  with sqlite3.connect(tmp_path / "s" / "index.sqlite") as db:
    db.execute("DELETE FROM entries WHERE sequence != 'PPPLLL'")
  argv = ["store", "verify", str(tmp_path / "s")]
  assert cli.main(argv) == 1
  out = capsys.readouterr().out
  assert "1 entries: ok 1" in out and "2 entry file(s) the index does not list" in out
  assert str(min(lost)) in out and "--repair" in out
  # A file written in the last minutes may be a `jaxgeo embed` between file and row: kept.
  os.utime(lost[0], (1, 1))
  assert cli.main(argv[:2] + ["--repair"] + argv[2:]) == 1
  out = capsys.readouterr().out
  assert f"removed 1 entry file(s) the index does not list (e.g. {lost[0]})" in out
  assert "cannot be re-indexed" in out and "left 1 entry file(s)" in out
  assert not lost[0].exists() and lost[1].exists() and kept.exists()
  os.utime(lost[1], (1, 1))
  assert cli.main(argv[:2] + ["--repair"] + argv[2:]) == 0
  assert not lost[1].exists() and kept.exists()
  capsys.readouterr()
  assert cli.main(argv) == 0
  assert "does not list" not in capsys.readouterr().out


# --- messages that name a file once and say what it is -----------------------------------------

def test_predict_names_an_unreadable_file_once(tmp_path, capsys, monkeypatch):
  # Before: "  /x/bad.pdb: /x/bad.pdb: no ATOM/HETATM records ...".
  from types import SimpleNamespace
  from jaxgeo.commands import predict
  bad = tmp_path / "bad.pdb"
  bad.write_text("not a structure\n")

  def predict_nothing(model, paths, **kwargs):
    _, failed = predict.read_proteins("csv", paths, None, progress=False)
    return SimpleNamespace(kind="graph"), [], [], failed
  monkeypatch.setattr(predict, "predict", predict_nothing)
  missing = tmp_path / "no.pdb"
  assert cli.main(["predict", "--model", str(tmp_path / "run"), str(bad), str(missing),
                   "--out", str(tmp_path / "p.csv"), "--no-progress"]) == 1
  err = capsys.readouterr().err
  assert err.count(str(bad)) == 1 and err.count(str(missing)) == 1, err
  assert f"{bad}: no ATOM/HETATM records" in err


def test_dock_receptor_that_is_a_folder(tmp_path, capsys):
  # Before: "SOME_FOLDER: no such file".
  one_line_error(capsys, ["dock", "--model", tmp_path / "no_run", "--receptor", tmp_path,
                          "--ligand", LIG, "--out", tmp_path / "x.pdb"],
                 f"--receptor {tmp_path}: is a folder, not a file")


def test_task_structures_that_is_a_file(tmp_path, capsys):
  # Before: "task.structures='.../x.pdb.gz': no such folder".
  labels = tmp_path / "labels.csv"
  labels.write_text("file,label\n1AY7_l_b.pdb.gz,1.0\n")
  config = tmp_path / "mine.py"
  config.write_text("from jaxgeo import config\n\ndef get_config():\n  return config."
                    f"paper_experiment('csv', 'egnn', 'none', structures={str(LIG)!r}, "
                    f"labels={str(labels)!r})\n")
  one_line_error(capsys, ["train", "--config", config, "--run-dir", tmp_path / "run",
                          "--no-progress"], f"task.structures='{LIG}': is a file, not a folder")
