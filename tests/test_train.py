"""Training: the position task, masking, the optimizer schedule, checkpoints, end-to-end
runs through the CLI, resume, eval and the environment check.

The end-to-end runs use a tiny EGNN on 24 generated proteins of 20-60 residues (a few
seconds of compilation, then milliseconds per epoch).
"""
import json
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgeo import batching, cli
from jaxgeo import config as config_lib
from jaxgeo import rows, tasks, train
from jaxgeo.checkpoint import Checkpointer
from jaxgeo.errors import CheckpointError, ConfigError, DataError
from jaxgeo.tasks import base, position
from conftest import cpu_subprocess_env

REPO = pathlib.Path(__file__).resolve().parent.parent
DEMO = "position_demo"   # a row of jaxgeo.rows
TINY = ["task.num_train=16", "task.num_val=4", "task.num_test=4", "task.min_length=20",
        "task.max_length=60", "model.egnn.hidden=16", "model.fusion.embed_dim=16",
        "train.epochs=6", "train.batch_graphs=4", "train.max_buckets=1",
        "train.packing.buckets=1", "train.lr=3e-3",
        "train.patience=0"]


def tiny_config(*extra):
  return config_lib.apply_overrides(rows.config(DEMO), TINY + list(extra))


# --- the task ----------------------------------------------------------------------------------

def test_position_labels_follow_the_paper():
  # GGNN_Meets_PLM TOYDataset, label 'dist': min(i, L - i) for i in 0..L-1.
  np.testing.assert_array_equal(position.position_labels(5, "dist"), [0, 1, 2, 2, 1])
  np.testing.assert_allclose(position.position_labels(5, "relative"), [0, .25, .5, .75, 1])
  np.testing.assert_array_equal(position.position_labels(5, "id"), [0, 1, 2, 3, 4])
  with pytest.raises(ConfigError, match="task.target"):
    position.position_labels(5, "index")


def test_position_task_loads_deterministic_splits():
  config = tiny_config()
  task = tasks.get_task("position_generated")
  assert (task.head, task.primary_metric, task.higher_is_better) == ("node", "rmse", False)
  splits = config_lib.load_task(config, None)[1].splits
  assert splits.sizes() == {"train": 16, "val": 4, "test": 4}
  g = splits.val[1]
  n = int(g.n_node[0])
  assert 20 <= n <= 60
  np.testing.assert_allclose(g.nodes["label"], position.position_labels(n, "relative"))
  assert g.globals["group"].tolist() == [17]  # proteins are numbered across the splits
  again = config_lib.load_task(config, None)[1].splits
  np.testing.assert_array_equal(again.test[0].nodes["x"], splits.test[0].nodes["x"])
  bad = config_lib.apply_overrides(config, ["task.min_length=70"])
  with pytest.raises(ConfigError, match="min_length"):
    config_lib.load_task(bad, None)[1].splits


def test_position_with_lm_fusion_needs_the_store():
  config = config_lib.apply_overrides(tiny_config(), ["model.fusion.mode=project",
                                                      "model.fusion.lm_dim=8"])
  with pytest.raises(DataError, match="jaxgeo embed"):
    config_lib.load_task(config, None)[1].splits


def test_padding_never_counts_in_loss_or_predictions():
  task = tasks.get_task("position_generated")
  splits = config_lib.load_task(tiny_config(), None)[1].splits
  graphs = splits.train[:3]
  buckets = batching.choose_buckets(graphs, batch_graphs=3, max_buckets=1)
  batch = next(batching.batches(graphs, buckets, batch_graphs=3))
  n_real = sum(int(g.n_node[0]) for g in graphs)
  # Garbage in the padding rows must not change anything.
  pred = np.random.default_rng(0).normal(size=(batch.n_node.sum(), 1)).astype(np.float32)
  pred_garbage = pred.copy()
  pred_garbage[n_real:] = 1e6
  labels = batch.nodes["label"]
  want = float(np.mean((pred[:n_real, 0] - labels[:n_real]) ** 2))
  for p in (pred, pred_garbage):
    loss = jax.jit(lambda o, b: task.loss(o, b, {}))({"node": jnp.asarray(p)},
                                                      jax.device_put(batch))
    assert float(loss) == pytest.approx(want, rel=1e-5)
    y_true, y_pred, group = task.predictions({"node": p}, batch, {})
    assert y_true.shape == (n_real,) and np.all(np.abs(y_pred) < 1e5)
  # Groups follow the graphs; an optional label mask drops unlabelled nodes.
  np.testing.assert_array_equal(np.unique(group),
                                sorted(int(g.globals["group"][0]) for g in graphs))
  mask = np.ones(batch.n_node.sum(), bool)
  mask[:5] = False
  masked = batch._replace(nodes={**batch.nodes, "label_mask": mask})
  y_true, _, _ = task.predictions({"node": pred}, masked, {})
  assert y_true.shape == (n_real - 5,)
  want_masked = float(np.mean((pred[5:n_real, 0] - labels[5:n_real]) ** 2))
  assert float(task.loss({"node": jnp.asarray(pred)}, masked, {})) == pytest.approx(want_masked,
                                                                              rel=1e-5)


def test_graph_helpers_mask_the_padding_graph():
  graphs = config_lib.load_task(tiny_config(), None)[1].splits.train[:2]
  graphs = [g._replace(globals={**g.globals, "label": np.array([float(i + 1)], np.float32)})
            for i, g in enumerate(graphs)]
  buckets = batching.choose_buckets(graphs, batch_graphs=2, max_buckets=1)
  batch = next(batching.batches(graphs, buckets, batch_graphs=2))
  pred = batch.globals["label"].reshape(-1, 1) + 0.5
  pred[-1] = 99.0  # the padding graph
  out = {"graph": pred}
  y_true, y_pred, group = base.graph_predictions(out, batch)
  np.testing.assert_allclose(sorted(y_true), [1.0, 2.0])
  np.testing.assert_allclose(y_pred - y_true, [0.5, 0.5])
  assert sorted(group) == [0, 1]
  mask = base.graph_label_mask(jax.device_put(batch))
  loss = base.masked_mse(jnp.asarray(pred), jnp.asarray(batch.globals["label"]), mask)
  assert float(loss) == pytest.approx(0.25)


# --- optimizer and checkpoints -----------------------------------------------------------------

def test_reduce_on_plateau_follows_the_validation_value():
  config = config_lib.apply_overrides(config_lib.base_config(), [
      "train.plateau.patience=2", "train.plateau.factor=0.5", "train.lr=1e-3",
      "train.plateau.min_lr=2e-4"])
  adam, plateau, optimizer = train.make_optimizer(config)
  params = {"w": jnp.ones(3)}
  _, plateau_state = optimizer.init(params)
  step = jax.jit(lambda s, v: plateau.update({}, s, value=v)[1])
  scales = []
  for value in [1.0, 0.5, 0.6, 0.7, 0.8, 0.9, 0.9, 0.9, 0.9, 0.9]:
    plateau_state = step(plateau_state, np.float32(value))
    scales.append(float(plateau_state.scale))
  # Improvement at 2; two bad epochs -> x0.5; two more -> x0.25 = 2e-4 / 1e-3 floor... 0.2.
  assert scales[:3] == [1.0, 1.0, 1.0]
  assert scales[3] == 0.5 and scales[5] == 0.25 and scales[-1] == pytest.approx(0.2)


def test_early_stopping_bookkeeping():
  meta = {"epoch": 0, "best_value": None, "best_epoch": None, "bad_epochs": 0,
          "stopped": False}
  flags = []
  for epoch, value in enumerate([3.0, 2.0, 2.5, float("nan"), 1.0, 1.0, 1.5], start=1):
    meta, improved = train.early_stopping(meta, epoch, value, False, patience=3)
    flags.append((improved, meta["bad_epochs"], meta["stopped"]))
  assert flags == [(True, 0, False), (True, 0, False), (False, 1, False), (False, 2, False),
                   (True, 0, False), (False, 1, False), (False, 2, False)]
  assert meta["best_epoch"] == 5 and meta["best_value"] == 1.0 and meta["epoch"] == 7
  meta, _ = train.early_stopping(meta, 8, 1.5, False, patience=3)
  assert meta["stopped"] and meta["bad_epochs"] == 3
  meta = {"epoch": 0, "best_value": 0.5, "best_epoch": 1, "bad_epochs": 0, "stopped": False}
  for epoch in range(2, 5):
    meta, improved = train.early_stopping(meta, epoch, 0.4, True, patience=3)
    assert not improved
  assert meta["stopped"] and meta["bad_epochs"] == 3
  meta, improved = train.early_stopping(meta, 5, 0.6, True, patience=0)
  assert improved and not meta["stopped"]


@pytest.mark.parametrize("network", ["egnn", "gvp"])
def test_fresh_parameters_are_the_op_by_op_initialisation(network):
  """`init_state` initialises under jit: the same bits as the model's init run op by op, and
  `abstract_state` has its shapes."""
  extra = ["model.gvp.node_dims=(16, 4)", "model.gvp.num_layers=1"] if network == "gvp" else []
  setup = train.prepare(tiny_config(f"model.network={network}", *extra))
  state = train.init_state(setup)
  init_key, _ = jax.random.split(jax.random.key(int(setup.config.train.seed)))
  example = next(batching.batches(setup.splits.train[:1], setup.buckets, setup.device_graphs,
                                  packing=setup.packing))
  eager = setup.model.init(init_key, example, is_training=True)
  leaves = jax.tree_util.tree_leaves
  assert jax.tree_util.tree_structure(state["params"]) == jax.tree_util.tree_structure(eager)
  for a, b in zip(leaves(state["params"]), leaves(eager)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  shapes = train.abstract_state(setup)
  assert [(x.shape, x.dtype) for x in leaves(shapes)] == [
      (np.shape(x), np.asarray(x).dtype) for x in leaves(state)]


def test_checkpoint_round_trip_keeps_optimizer_types(tmp_path):
  config = config_lib.base_config()
  _, _, optimizer = train.make_optimizer(config)
  params = {"layer": {"w": jnp.arange(6.0).reshape(2, 3), "b": jnp.zeros(3)}}
  state = {"params": params, "opt_state": optimizer.init(params),
           "key": jax.random.key_data(jax.random.key(3))}
  ckpt = Checkpointer(tmp_path / "last")
  with pytest.raises(CheckpointError):
    ckpt.restore(state)
  ckpt.save(1, state, {"epoch": 1, "best_value": None})
  ckpt.save(2, jax.tree_util.tree_map(lambda x: x + 1, state), {"epoch": 2, "best_value": 0.5})
  assert ckpt.latest_step() == 2 and not (tmp_path / "last" / "1").exists()
  restored, meta, step = ckpt.restore(state)
  assert step == 2 and meta == {"epoch": 2, "best_value": 0.5}
  assert type(restored["opt_state"][1]) is type(state["opt_state"][1])
  np.testing.assert_array_equal(restored["params"]["layer"]["w"], params["layer"]["w"] + 1)
  assert jax.tree_util.tree_structure(restored) == jax.tree_util.tree_structure(state)
  # A template of shapes only (jax.eval_shape: nothing computed) restores the same arrays.
  abstract = jax.eval_shape(lambda: state)
  again, _, _ = ckpt.restore(abstract)
  assert jax.tree_util.tree_structure(again) == jax.tree_util.tree_structure(state)
  for a, b in zip(jax.tree_util.tree_leaves(again), jax.tree_util.tree_leaves(restored)):
    assert isinstance(a, jax.Array) and a.dtype == b.dtype
    np.testing.assert_array_equal(a, b)


def test_restore_params_from_shapes_and_no_folder_created(tmp_path):
  """`restore_params` restores the saved parameters through a template of shapes (the init it
  is given is traced, not run); a folder without a checkpoint is an error that creates
  nothing."""
  config = config_lib.base_config()
  _, _, optimizer = train.make_optimizer(config)
  params = {"layer": {"w": jnp.arange(6.0).reshape(2, 3), "b": jnp.ones(3)}}
  Checkpointer(tmp_path / "best").save(3, {"params": params, "opt_state": optimizer.init(params),
                                            "key": jax.random.key_data(jax.random.key(1))}, {})
  ran = []

  def init():
    ran.append(isinstance(jnp.zeros(()), jax.core.Tracer))
    return {"layer": {"w": jnp.zeros((2, 3)), "b": jnp.zeros(3)}}

  restored, step = train.restore_params(config, init, tmp_path / "best")
  assert step == 3 and ran == [True]           # traced once, never run on values
  np.testing.assert_array_equal(restored["layer"]["w"], params["layer"]["w"])
  np.testing.assert_array_equal(restored["layer"]["b"], params["layer"]["b"])
  with pytest.raises(CheckpointError, match="no checkpoint"):
    train.restore_params(config, init, tmp_path / "last")
  assert not (tmp_path / "last").exists()


# --- end to end ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
  """An uninterrupted tiny run through `jaxgeo train`."""
  run_dir = tmp_path_factory.mktemp("runs") / "full"
  args = ["train", "--config", str(DEMO), "--run-dir", str(run_dir), "--no-progress"]
  for item in TINY:
    args += ["--set", item]
  assert cli.main(args) == 0
  return run_dir


@pytest.mark.slow
def test_train_end_to_end_improves_and_writes_the_run_folder(cli_run):
  for name in ("config.json", "model.json", "log.jsonl", "test_metrics.json"):
    assert (cli_run / name).is_file(), name
  assert (cli_run / "checkpoints" / "last" / "6").is_dir()
  assert not list(cli_run.rglob("*.pkl")) and not list(cli_run.rglob("*.pickle"))
  log = train.read_log(cli_run)
  assert [r["epoch"] for r in log] == list(range(1, 7))
  for record in log:
    for key in ("train_loss", "val_loss", "val", "lr", "seconds", "compilations",
                "padding_efficiency", "best_epoch"):
      assert key in record, key
    assert 0 < record["padding_efficiency"]["nodes"] <= 1
  # One bucket: the train and eval steps compile once each, whatever the epoch count.
  assert log[0]["compilations"] == log[-1]["compilations"] == 2
  # The validation metric improves.
  rmse = [r["val"]["rmse"] for r in log]
  assert min(rmse[1:]) < rmse[0]
  result = json.loads((cli_run / "test_metrics.json").read_text())
  assert result["best_epoch"] == 1 + int(np.argmin([r["val_loss"] for r in log]))
  assert np.isfinite(result["test"]["rmse"]) and result["test_count"] > 0
  assert result["compilations"] == 2
  saved = config_lib.from_json(cli_run / "config.json")
  assert saved.name == "position_demo" and saved.train.epochs == 6


@pytest.mark.slow
def test_resumed_run_may_change_speed_settings_only(tmp_path):
  """A run folder saved before `model.egnn.edge_chunk`, `store_chunk_dots` and the
  `eval_unroll`s existed (or with other edge chunks or unrolling) resumes under a config that
  sets them, taking the given settings; a change to what is computed is refused."""
  saved = tiny_config()
  saved_dict = config_lib.to_dict(saved)
  del saved_dict["model"]["egnn"]["edge_chunk"]          # as saved by an earlier version
  del saved_dict["model"]["egnn"]["store_chunk_dots"]
  for net in ("gvp", "egnn", "molformer"):
    del saved_dict["model"][net]["eval_unroll"]
  (tmp_path / train.CONFIG_FILE).write_text(json.dumps(saved_dict))
  given = tiny_config("model.egnn.edge_chunk=2048", "model.gvp.edge_chunk=1024",
                      "model.gvp.unroll=5", "model.egnn.eval_unroll=4",
                      "model.molformer.unroll=2", "train.epochs=9",
                      "model.egnn.store_chunk_dots=True")
  merged = train.resolve_run_config(given, tmp_path)
  assert merged.model.egnn.edge_chunk == 2048 and merged.model.gvp.edge_chunk == 1024
  assert merged.model.egnn.store_chunk_dots is True
  assert (merged.model.gvp.unroll, merged.model.egnn.eval_unroll,
          merged.model.molformer.unroll) == (5, 4, 2)
  assert merged.train.epochs == 9
  assert config_lib.diff(merged, given) == []
  assert "edge_chunk" not in train.resolve_run_config(None, tmp_path).model.egnn
  with pytest.raises(ConfigError, match="differs in model.egnn.hidden"):
    train.resolve_run_config(tiny_config("model.egnn.hidden=8"), tmp_path)


def test_interrupted_run_resumes_to_the_same_result(cli_run, tmp_path):
  config = tiny_config()
  run_dir = tmp_path / "resumed"
  assert train.train(config, run_dir, progress=False, stop_after_epochs=3) is None
  assert len(train.read_log(run_dir)) == 3 and not (run_dir / "test_metrics.json").exists()
  # A log line written after the last checkpoint (killed in between) is dropped on resume.
  with open(run_dir / "log.jsonl", "a") as f:
    f.write(json.dumps({"epoch": 4, "partial": True}) + "\n")
  with pytest.raises(ConfigError, match="train.lr"):
    train.train(config_lib.apply_overrides(config, ["train.lr=1e-2"]), run_dir,
                progress=False)
  result = train.train(None, run_dir, progress=False)
  full = json.loads((cli_run / "test_metrics.json").read_text())
  assert result["best_epoch"] == full["best_epoch"]
  for split in ("test", "val"):
    for key, value in full[split].items():
      assert result[split][key] == pytest.approx(value, rel=1e-6, abs=1e-6), (split, key)
  log, full_log = train.read_log(run_dir), train.read_log(cli_run)
  assert [r["epoch"] for r in log] == list(range(1, 7))
  for a, b in zip(log, full_log):
    assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-6)
  # Training a finished run again does nothing and returns the same result.
  assert train.train(None, run_dir, progress=False)["test"] == result["test"]


@pytest.mark.slow
def test_eval_command_reproduces_the_test_metrics(cli_run, capsys):
  assert cli.main(["eval", str(cli_run), "--no-progress"]) == 0
  out = json.loads((cli_run / "eval_best.json").read_text())
  full = json.loads((cli_run / "test_metrics.json").read_text())
  assert out["epoch"] == full["best_epoch"]
  for key, value in full["test"].items():
    assert out["test"]["metrics"][key] == pytest.approx(value, rel=1e-6, abs=1e-6)
  assert "test" in capsys.readouterr().out


@pytest.mark.slow
def test_eval_command_on_two_cpu_devices_reproduces_the_test_metrics(cli_run):
  # A fresh process, so that the CPU is split into 2 devices before JAX starts; the run
  # trained on one (this process's), so its test metrics are one device's.
  proc = subprocess.run([sys.executable, "-m", "jaxgeo", "eval", str(cli_run), "--split", "test",
                         "--cpu-devices", "2", "--no-progress"], capture_output=True, text=True,
                        timeout=300, cwd=REPO, env=cpu_subprocess_env())
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert "2 cpu device(s)" in proc.stdout
  out = json.loads((cli_run / "eval_best.json").read_text())
  full = json.loads((cli_run / "test_metrics.json").read_text())
  assert out["test"]["count"] == full["test_count"]
  for key, value in full["test"].items():
    assert out["test"]["metrics"][key] == pytest.approx(value, rel=1e-5, abs=1e-5)


# --- the CLI's errors and the environment check ----------------------------------------------

def test_check_env_reports_a_missing_embedding_store(tmp_path, capsys, monkeypatch):
  monkeypatch.delenv("JAXGEO_STORE", raising=False)
  args = ["train", "--config", str(DEMO), "--check-only", "--run-dir", str(tmp_path / "r"),
          "--set", "model.fusion.mode=project", "--set", "model.fusion.lm_dim=8",
          "--set", f"lm.store={tmp_path / 'no_store'}", "--set", "task.num_train=3",
          "--set", "task.num_val=1", "--set", "task.num_test=1"]
  assert cli.main(args) == 2
  captured = capsys.readouterr()
  assert "MISSING embedding store" in captured.out
  assert "jaxgeo embed" in captured.err and "no_store" in captured.err
  fasta = tmp_path / "r" / "missing_sequences.fasta"   # inside the run folder
  assert fasta.read_text().count(">") == 5
  # Without LM fusion everything is there.
  assert cli.main(["train", "--config", str(DEMO), "--check-only", "--run-dir",
                   str(tmp_path / "r")]) == 0
  assert "ok      jax devices" in capsys.readouterr().out


def test_train_command_errors_are_one_line(tmp_path, capsys):
  assert cli.main(["train", "--config", str(DEMO), "--set", "train.nope=1",
                   "--run-dir", str(tmp_path / "r")]) == 2
  assert "train.nope" in capsys.readouterr().err
  assert cli.main(["train", "--config", str(tmp_path / "none.py")]) == 2
  assert "none.py" in capsys.readouterr().err
  assert cli.main(["eval", str(tmp_path)]) == 2
  assert "not a run folder" in capsys.readouterr().err
  assert cli.main(["train"]) == 2
  assert "--config" in capsys.readouterr().err


# --- finished runs, the language model a run trained with -------------------------------------

@pytest.mark.slow
def test_finished_run_is_extended_when_epochs_grow(cli_run, tmp_path):
  run_dir = tmp_path / "extended"
  first = train.train(tiny_config("train.epochs=4"), run_dir, progress=False)
  assert first["epochs_run"] == 4
  said = []
  again = train.train(tiny_config("train.epochs=4"), run_dir, progress=False, echo=said.append)
  assert again["test"] == first["test"] and "--set train.epochs=N, N > 4" in said[0]
  # Before: a finished run re-run with more epochs exited 0 doing nothing.
  longer = train.train(tiny_config(), run_dir, progress=False, echo=said.append)   # 6 epochs
  assert any("extending" in line for line in said)
  full = json.loads((cli_run / "test_metrics.json").read_text())
  assert longer["epochs_run"] == 6 and longer["best_epoch"] == full["best_epoch"]
  for key, value in full["test"].items():
    assert longer["test"][key] == pytest.approx(value, rel=1e-6, abs=1e-6), key
  assert [r["epoch"] for r in train.read_log(run_dir)] == list(range(1, 7))
  assert config_lib.from_json(run_dir / "config.json").train.epochs == 6


def _fill_store(store, config, fingerprint, seed, dim=8):
  """Random 'language-model' rows of every sequence the task reads, under `fingerprint`
  (None: written by name, as stores were before fingerprints)."""
  from jaxgeo import tasks as tasks_lib
  _, options, inputs = config_lib.task_setup(config, with_lm=False)
  task = tasks_lib.get_task(str(config.task.name))
  model = fingerprint or "fake_lm"
  store.register_model("fake_lm", "nowhere", dim, fingerprint=fingerprint)
  rng = np.random.default_rng(seed)
  for s in task.sequences(options, inputs):
    store.put(model, 1, s, rng.normal(size=(len(s), dim)).astype(np.float32))


@pytest.mark.slow
def test_run_records_its_lm_fingerprint_and_eval_refuses_other_vectors(tmp_path):
  from jaxgeo.lm.store import EmbeddingStore
  fp_a, fp_b = "a" * 64, "b" * 64
  store = EmbeddingStore(tmp_path / "store")
  config = tiny_config("model.fusion.mode=project", "model.fusion.lm_dim=8",
                       "lm.model=fake_lm", "lm.layer=1", f"lm.store={tmp_path / 'store'}",
                       "train.epochs=1")
  _fill_store(store, config, fp_a, seed=0)
  run_dir = tmp_path / "run"
  result = train.train(config, run_dir, progress=False)
  assert result["lm_fingerprint"] == fp_a
  assert json.loads((run_dir / "lm.json").read_text())["fingerprint"] == fp_a
  # Another model converted under the same name lands in the same store: its entries are
  # kept apart, and the run still reads the vectors it trained with.
  _fill_store(store, config, fp_b, seed=1)
  out = train.evaluate_run(run_dir, progress=False)
  for key, value in result["test"].items():
    assert out["test"]["metrics"][key] == pytest.approx(value, rel=1e-6, abs=1e-6), key
  # A store holding only the other model's vectors under that name: refused.
  other = EmbeddingStore(tmp_path / "other")
  _fill_store(other, config, fp_b, seed=1)
  with pytest.raises(DataError, match="trained with fake_lm fingerprint aaaaaaaaaaaa"):
    train.evaluate_run(run_dir, progress=False, store=other)
  # A store from before fingerprints: refused too (nothing says its vectors are the same).
  legacy = EmbeddingStore(tmp_path / "legacy")
  _fill_store(legacy, config, None, seed=0)
  with pytest.raises(DataError, match="without a fingerprint"):
    train.evaluate_run(run_dir, progress=False, store=legacy)
  # Training on a legacy store works, with a note, and records no fingerprint.
  said = []
  legacy_run = train.train(config_lib.apply_overrides(config, [f"lm.store={legacy.path}"]),
                           tmp_path / "legacy_run", progress=False, echo=said.append)
  assert legacy_run["lm_fingerprint"] is None
  assert any("without a fingerprint" in line for line in said)
