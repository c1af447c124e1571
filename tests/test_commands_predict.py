"""`jaxgeo predict`: a run's predictions for new structures equal its own evaluation outputs,
B-factor PDBs hold the scores and nothing else changes, unreadable files are listed at the
end, and sequences missing from the embedding store are an error naming `jaxgeo embed` when
the language model is not at hand.

Two tiny EGNN runs on the example structures: graph-level regression (no language model) and
residue-level classification with a language-model fusion ("concat") read from a store the
test fills with fixed random rows (model "fake8").
"""
import csv
import gzip
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import cpu_subprocess_env, fail_after_first_batch, write_csv_tables
from jaxgeo import cli, structure, train
from jaxgeo import config as config_lib
from jaxgeo.commands import predict
from jaxgeo.errors import DataError
from jaxgeo.lm.features import chain_segments
from jaxgeo.lm.store import EmbeddingStore

REPO = pathlib.Path(__file__).resolve().parent.parent
STRUCTURES = REPO / "examples" / "structures"
TINY = ["model.egnn.hidden=16", "model.fusion.embed_dim=16", "model.egnn.num_layers=2",
        "train.epochs=2", "train.batch_graphs=4", "train.max_buckets=1", "train.lr=3e-3",
        "train.patience=0"]
LM_DIM = 8


def fill_store(path: pathlib.Path, files) -> None:
  store = EmbeddingStore(path)
  store.register_model("fake8", "fake8", LM_DIM)
  for f in files:
    for _, seq in chain_segments(structure.load_protein(f)):
      rng = np.random.default_rng(len(seq))
      store.put("fake8", 0, seq, rng.normal(size=(len(seq), LM_DIM)).astype(np.float32))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  """{"graph": (run_dir, setup, params), "residue": ...} after training."""
  folder = tmp_path_factory.mktemp("predict")
  graph_csv, residue_csv = write_csv_tables(folder)
  files = sorted(STRUCTURES.glob("*.pdb.gz"))
  fill_store(folder / "store", files[:-1])   # the last file is "new": not in the store
  out = {}
  for kind, task, labels, fusion in (("graph", "csv", graph_csv, []),
                                     ("residue", "csv_residue", residue_csv,
                                      ["model.fusion.mode=concat", "model.egnn.input_linear=True",
                                       f"model.fusion.lm_dim={LM_DIM}", "lm.model=fake8",
                                       "lm.layer=0", f"lm.store={folder / 'store'}"])):
    # Random split by file: keep the file without embeddings out of the LM run's splits.
    if kind == "residue":
      text = residue_csv.read_text().splitlines()
      residue_csv.write_text("\n".join(l for l in text if not l.startswith(files[-1].name))
                             + "\n")
    config = config_lib.paper_experiment(task, "egnn", "none", structures=str(STRUCTURES),
                                         labels=str(labels))
    config = config_lib.apply_overrides(config, TINY + fusion)
    run_dir = folder / kind
    train.train(config, run_dir, progress=False, echo=lambda s: None)
    setup = train.prepare(config_lib.from_json(run_dir / "config.json"))
    from jaxgeo.checkpoint import Checkpointer
    state, _, _ = Checkpointer(run_dir / "checkpoints" / "best").restore(train.init_state(setup))
    out[kind] = (run_dir, setup, state["params"])
  out["files"] = files
  out["folder"] = folder
  return out


def read_csv(path):
  with open(path) as f:
    return list(csv.DictReader(f))


def train_files(setup, split="train"):
  task, options, inputs = config_lib.task_setup(setup.config, with_lm=False)
  return [STRUCTURES / f for f in task.examples(split, options, inputs).info["files"]]


def evaluation(setup, params):
  """The run's own evaluation outputs (`train.evaluate`'s y_pred), training graph by graph
  in split order (one evaluation a graph: evaluate orders a split's batches by size)."""
  return np.concatenate([train.evaluate(setup, params, [g])["predictions"][1]
                         for g in setup.splits.train])


def test_graph_predictions_equal_the_runs_evaluation(runs, tmp_path):
  run_dir, setup, params = runs["graph"]
  files = train_files(setup)
  out = tmp_path / "pred.csv"
  assert cli.main(["predict", "--model", str(run_dir), *map(str, files), "--out", str(out),
                   "--no-progress"]) == 0
  rows = read_csv(out)
  assert [r["file"] for r in rows] == [f.name for f in files]
  np.testing.assert_allclose([float(r["score"]) for r in rows],
                             evaluation(setup, params), rtol=1e-4, atol=1e-4)
  assert not (tmp_path / "pred.csv.partial").exists()   # removed once the CSV is written


def test_residue_predictions_with_lm_equal_the_runs_evaluation(runs, tmp_path):
  run_dir, setup, params = runs["residue"]
  files = train_files(setup)
  out, pdb_out = tmp_path / "pred.csv", tmp_path / "pdb"
  assert cli.main(["predict", "--model", str(run_dir), *map(str, files), "--out", str(out),
                   "--pdb-out", str(pdb_out), "--no-progress"]) == 0
  rows = read_csv(out)
  assert set(rows[0]) >= {"file", "chain", "residue_number", "insertion_code", "residue",
                          "score", "logit"}
  # The run's evaluation: logits of the labelled residues, graph by graph in split order.
  expected = evaluation(setup, params)
  got = []
  for f, g in zip(files, setup.splits.train):
    logits = np.array([float(r["logit"]) for r in rows if r["file"] == f.name])
    assert len(logits) == int(g.n_node[0])
    got.append(logits[np.asarray(g.nodes["label_mask"], bool)])
  np.testing.assert_allclose(np.concatenate(got), expected, rtol=1e-4, atol=1e-4)
  score = {(r["file"], r["chain"], int(r["residue_number"]), r["insertion_code"]):
           float(r["score"]) for r in rows}
  np.testing.assert_allclose([score[k] for k in score],
                             [1 / (1 + np.exp(-float(r["logit"]))) for r in rows], rtol=1e-5)
  # B-factor PDBs: columns 61-66 hold the score, every other byte is the input's.
  for f in files:
    original = gzip.open(f, "rt", encoding="latin-1").read().splitlines()
    written = (pdb_out / f.name[:-3]).read_text(encoding="latin-1").splitlines()
    assert len(original) == len(written)
    atoms = 0
    for a, b in zip(original, written):
      if not a.startswith(("ATOM  ", "HETATM")):
        assert a == b
        continue
      a = a.ljust(66)
      assert b[:60] == a[:60] and b[66:] == a[66:]
      key = (f.name, a[21], int(a[22:26]), a[26].strip())
      assert b[60:66] == f"{score.get(key, 0.0):6.2f}"
      atoms += key in score
    assert atoms > 0


@pytest.mark.parametrize("kind, column", [("graph", "score"), ("residue", "logit")])
def test_predictions_on_two_cpu_devices_equal_one_devices(runs, tmp_path, kind, column):
  # A fresh process, so that the CPU is split before JAX starts; 3 files in batches of 2:
  # slots of 1 graph, the second batch's second slot all padding.
  run_dir, setup, _ = runs[kind]
  files = [str(f) for f in train_files(setup)][:3]
  one, two = tmp_path / "one.csv", tmp_path / "two.csv"
  args = ["predict", "--model", str(run_dir), *files, "--batch-graphs", "2", "--no-progress"]
  assert cli.main(args + ["--out", str(one)]) == 0
  proc = subprocess.run([sys.executable, "-m", "jaxgeo", *args, "--out", str(two),
                         "--cpu-devices", "2"], capture_output=True, text=True, timeout=300,
                        cwd=REPO, env=cpu_subprocess_env())
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert "(2 cpu device(s))" in proc.stdout
  rows_one, rows_two = read_csv(one), read_csv(two)
  strip = lambda rows: [{k: v for k, v in r.items() if k not in ("score", "logit")}
                        for r in rows]
  assert strip(rows_two) == strip(rows_one) and len(rows_one) >= 3
  np.testing.assert_allclose([float(r[column]) for r in rows_two],
                             [float(r[column]) for r in rows_one], rtol=1e-5, atol=1e-5)


def test_a_failing_batch_leaves_the_rows_predicted_before_it(runs, tmp_path, monkeypatch,
                                                              capsys):
  """Each graph's rows reach OUT.partial as soon as its batch has run: when the second of
  three one-graph batches fails, the partial file holds the first graph's rows (those of
  the complete run's CSV) and no CSV is written."""
  run_dir, setup, _ = runs["residue"]
  files = [str(f) for f in train_files(setup)][:3]
  args = ["predict", "--model", str(run_dir), *files, "--batch-graphs", "1", "--no-progress"]
  whole = tmp_path / "whole.csv"
  assert cli.main(args + ["--out", str(whole)]) == 0
  fail_after_first_batch(monkeypatch)
  out = tmp_path / "pred.csv"
  with pytest.raises(RuntimeError, match="second batch"):
    cli.main(args + ["--out", str(out)])
  assert not out.exists()
  kept = read_csv(tmp_path / "pred.csv.partial")
  assert kept and {r["file"] for r in kept} == {kept[0]["file"]}
  assert kept == [r for r in read_csv(whole) if r["file"] == kept[0]["file"]]
  assert "rows of the 1 graph(s) predicted so far are in" in capsys.readouterr().err


def test_missing_embeddings_name_the_embed_command(runs, tmp_path):
  run_dir, _, _ = runs["residue"]
  new = runs["files"][-1]
  for flags in ([], ["--no-embed"]):
    with pytest.raises(DataError, match=r"lack fake8 layer 0 .*jaxgeo embed --model fake8"):
      predict.predict(run_dir, [new], progress=False, embed=not flags)
  assert cli.main(["predict", "--model", str(run_dir), str(new), "--out",
                   str(tmp_path / "x.csv"), "--no-progress"]) == 2


def test_unreadable_files_are_listed_and_the_rest_predicted(runs, tmp_path, capsys):
  run_dir, setup, _ = runs["graph"]
  folder = tmp_path / "in"
  folder.mkdir()
  for f in runs["files"][:2]:
    shutil.copy(f, folder / f.name)
  (folder / "empty.pdb").write_text("")
  (folder / "zz_garbage.pdb.gz").write_bytes(b"not gzip")
  out = tmp_path / "pred.csv"
  assert cli.main(["predict", "--model", str(run_dir), "--structures", str(folder),
                   "--out", str(out), "--no-progress"]) == 1
  assert [r["file"] for r in read_csv(out)] == [f.name for f in runs["files"][:2]]
  err = capsys.readouterr().err
  assert "2 structure(s) could not be read" in err
  assert "empty.pdb" in err and "zz_garbage.pdb.gz" in err


def test_bfactor_rewrite_keeps_every_other_column():
  text = ("HEADER    TEST\n"
          "ATOM      1  N   ALA A  10A     11.104   6.134  -6.504  1.00 35.00           N\n"
          "ATOM      2  CA  ALA A  11      11.639   6.071  -5.147  1.00\n"
          "HETATM    3  O   HOH A 100       1.000   2.000   3.000  1.00 20.00           O\r\n"
          "END\n")
  out = predict.bfactor_pdb(text, {("A", 10, "A"): 0.9876, ("A", 11, ""): 1234.5})
  lines = out.splitlines(keepends=True)
  assert lines[0] == "HEADER    TEST\n" and lines[-1] == "END\n"
  assert lines[1][60:66] == "  0.99" and lines[1][:60] + lines[1][66:] == (
      text.splitlines(keepends=True)[1][:60] + text.splitlines(keepends=True)[1][66:])
  assert lines[2].rstrip("\n") == text.splitlines()[2].ljust(60) + "999.99"
  assert lines[3][60:66] == "  0.00" and lines[3].endswith("O\r\n")


def test_scores_by_kind():
  def run(kind, classes=(), stats=None):
    return predict.Run(None, None, None, None, None, stats or {}, kind, classes)
  value, score, _ = predict.scores(run("regression", stats={"label_mean": 10.0,
                                                            "label_std": 2.0}), [[1.0], [-1.0]])
  np.testing.assert_allclose(value, [12.0, 8.0]) and np.testing.assert_allclose(score, value)
  logit, prob, _ = predict.scores(run("binary"), [[0.0], [np.log(3.0)]])
  np.testing.assert_allclose(prob, [0.5, 0.75])
  index, prob, probs = predict.scores(run("multiclass", ("a", "b", "c")),
                                      [[0.0, np.log(2.0), np.log(5.0)]])
  assert index.tolist() == [2] and prob[0] == pytest.approx(0.625)
  row = predict._values(run("multiclass", ("a", "b", "c")), index[0], prob[0], probs[0])
  assert row["predicted"] == "c" and float(row["p_a"]) == pytest.approx(0.125)


@pytest.mark.parametrize("kind", ["graph", "residue"])
def test_predictions_do_not_depend_on_how_graphs_are_batched(runs, kind):
  """`apply_batched` under each train.batching gives every graph the same rows (the batches,
  shapes and order differ)."""
  import copy
  _, setup, params = runs[kind]
  head = "node" if kind == "residue" else "graph"
  forward = lambda p, b: setup.model.apply(p, None, b, is_training=False, padded=True)[head]
  graphs = list(setup.splits.train) + list(setup.splits.val)
  out = {}
  for batching in ("fixed", "balanced", "packed"):
    config = copy.deepcopy(setup.config)
    with config.train.unlocked():
      config.train.batching = batching
    out[batching] = predict.apply_batched(forward, params, config, graphs,
                                          per_node=kind == "residue", batch_graphs=3,
                                          progress=False)
  for batching in ("balanced", "packed"):
    for a, b in zip(out[batching], out["fixed"]):
      np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
