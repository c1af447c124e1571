"""Task `docking` (EquiDock's IEGMN on DB5.5): options, rows, examples, per-pair RMSD metrics,
and a tiny IEGMN overfitting three training complexes through the real trainer."""
from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from jaxgeo import batching, rows, tasks, train
from jaxgeo import config as config_lib
from jaxgeo.errors import ConfigError
from jaxgeo.metrics import docking

SMALL = ("2OOB", "1GCQ", "2X9A")       # the three smallest DB5.5 complexes (116-151 CAs)
# A tiny IEGMN and a short, fast schedule (the docking row's other settings unchanged).
TINY = ["model.iegmn.num_layers=2", "model.iegmn.hidden=16", "model.iegmn.num_keypoints=8",
        "model.iegmn.fusion.embed_dim=16", "model.fusion.embed_dim=16", "train.max_buckets=1",
        "train.patience=0"]


def small_splits(tmp_path, train_ids=SMALL, val_ids=SMALL, test_ids=SMALL):
  folder = tmp_path / "splits"
  folder.mkdir(exist_ok=True)
  for split, ids in (("train", train_ids), ("val", val_ids), ("test", test_ids)):
    (folder / f"{split}.txt").write_text("\n".join(ids) + "\n")
  return folder


def tiny_config(shared_data, splits_dir, *overrides):
  config = rows.config("docking_iegmn_none")
  return config_lib.apply_overrides(config, [f"data.root={shared_data}",
                                             f"task.splits_dir={splits_dir}", *TINY,
                                             *overrides])


def test_rows_and_options():
  task = tasks.get_task("docking")
  assert (task.primary_metric, task.higher_is_better) == ("complex_rmsd_median", False)
  names = [n for n in rows.names() if n.startswith("docking_")]
  assert set(names) == {"docking_iegmn_none", "docking_iegmn_replace_randomlm",
                        "docking_iegmn_replace_randomlm_unirep256"} | {
      f"docking_iegmn_{f}{s}" for f in ("replace", "concat", "project")
      for s in ("", "_unirep", "_unirep256")}
  for name in names:
    config = rows.config(name)
    model = config_lib.model_config(config)
    assert model.network == "iegmn" and model.iegmn.fusion == model.fusion
    # EquiDock's schedule, early stopping on the validation complex RMSD.
    assert (config.train.monitor, config.train.lr, config.train.batch_graphs,
            config.train.patience) == ("metric", 3e-4, 10, 50)
    assert (model.iegmn.hidden, model.iegmn.num_layers, model.iegmn.num_keypoints) == (64, 5, 50)
  options = task.options({})
  assert (options.ligand_mse_weight, options.ot_weight, options.intersection_weight) == (
      1.0, 0.01, 1.0)
  for bad in ({"train_poses": 0}, {"ot_weight": -1.0}, {"no_such_option": 1}):
    with pytest.raises(ConfigError, match="task"):
      task.options(bad)
  stats = task.stats(options, [])
  assert stats["ot_weight"] == 0.01 and stats["sinkhorn_iterations"] == 100.0


def test_examples_are_seeded_pairs(shared_data, tmp_path):
  task = tasks.get_task("docking")
  splits = small_splits(tmp_path, SMALL[:2], SMALL[1:], SMALL[:2])
  inputs = tasks.Inputs(data_root=shared_data)
  options = task.options({"splits_dir": str(splits), "limit": 2, "train_poses": 2})
  data = task.load(options, inputs)
  assert data.splits.sizes() == {"train": 4, "val": 2, "test": 2}
  again = task.load(options, inputs)
  for a, b in zip(data.splits.val + data.splits.test, again.splits.val + again.splits.test):
    np.testing.assert_array_equal(a.nodes["x"], b.nodes["x"])      # fixed val / test inputs
  groups = {}
  for g in data.splits.train + data.splits.val + data.splits.test:
    part = g.nodes["partner"]
    assert g.n_node.shape == (1,) and set(np.unique(part)) == {0, 1}
    # The receptor is as bound, the ligand moved rigidly away from its bound pose.
    np.testing.assert_allclose(g.nodes["x"][part == 1], g.nodes["x_true"][part == 1])
    assert docking.ligand_rmsd(g.nodes["x"][part == 0], g.nodes["x_true"][part == 0]) > 1.0
    assert docking.rmsd(g.nodes["x"][part == 0], g.nodes["x_true"][part == 0],
                        align=True) < 1e-3
    groups.setdefault(int(g.globals["group"][0]), []).append(g.nodes["x"])
  # 1GCQ (group 0): two train poses, val, test: four different inputs.
  poses = groups[0]
  assert len(poses) == 4
  assert all(not np.allclose(poses[i], poses[j]) for i in range(4) for j in range(i + 1, 4))


def test_predictions_are_per_pair_rmsds(shared_data, tmp_path):
  task = tasks.get_task("docking")
  options = task.options({"splits_dir": str(small_splits(tmp_path)), "limit": 2})
  graphs = task.load(options, tasks.Inputs(data_root=shared_data)).splits.test
  batch = batching.pad(graphs, batching.Bucket(n_node=512, n_edge=4096, n_graph=3))
  truth = np.asarray(batch.nodes["x_true"])
  y_true, y_pred, group = task.predictions({"x_pred": truth}, batch, {})
  assert y_pred.shape == (2, 3) and np.allclose(y_pred, 0.0, atol=1e-3)
  assert list(group) == [int(g.globals["group"][0]) for g in graphs]
  # The input pose: its complex RMSD is the one metrics.docking gives for it.
  x_in = np.asarray(batch.nodes["x"])
  _, y_pred, _ = task.predictions({"x_pred": x_in}, batch, {})
  g = graphs[0]
  part = g.nodes["partner"]
  expected = docking.complex_rmsd(g.nodes["x"][part == 0], g.nodes["x"][part == 1],
                                  g.nodes["x_true"][part == 0], g.nodes["x_true"][part == 1])
  assert y_pred[0, 0] == pytest.approx(expected, rel=1e-5) and expected > 1.0
  metrics = task.metrics(y_true, y_pred, group, {})
  assert metrics["complex_rmsd_median"] == pytest.approx(np.median(y_pred[:, 0]))
  assert metrics["n"] == 2.0


def test_tiny_iegmn_overfits_three_complexes_through_the_trainer(shared_data, tmp_path):
  """The real trainer (early stopping on the validation complex RMSD, checkpoints, test at
  the best epoch) fits three training complexes' poses below 2 A complex RMSD."""
  # IEGMN is E(3)-equivariant, so the predicted complex does not depend on the ligand's
  # input pose: four poses per complex are four steps per epoch on the same problem.
  config = tiny_config(shared_data, small_splits(tmp_path), "train.lr=3e-3",
                       "train.batch_graphs=1", "train.epochs=10", "task.train_poses=4")
  result = train.train(config, tmp_path / "run", progress=False)
  log = train.read_log(tmp_path / "run")
  first = log[0]["val"]["complex_rmsd_median"]
  print("val complex RMSD median by epoch",
        [round(r["val"]["complex_rmsd_median"], 2) for r in log])
  assert first > 4.0
  assert result["test"]["complex_rmsd_median"] < 2.0, result["test"]
  assert result["test"]["complex_rmsd_mean"] < 2.5, result["test"]
  assert result["val"]["complex_rmsd_median"] == pytest.approx(
      min(r["val"]["complex_rmsd_median"] for r in log))


TWO_DEVICES = r"""
import json, sys
from jaxgeo import parallel
parallel.split_cpu(2)
from jaxgeo import batching, rows, testing
from jaxgeo import config as config_lib
overrides = json.loads(sys.argv[1])
def cfg(devices):
  c = config_lib.apply_overrides(rows.config("docking_iegmn_none"), overrides)
  with c.train.unlocked():
    c.train.devices = devices
  return c
out = testing.parallel_step_vs_one_device(cfg, 2, batching.Bucket(2048, 65536, 3))
print("RESULT " + json.dumps(out))
"""


def test_iegmn_trains_on_two_cpu_devices_like_one_device(shared_data, tmp_path):
  """`jaxgeo train` splits the CPU into devices by default: a docking step on two devices
  (the keypoint OT loss's Sinkhorn loop included) equals one device's on the same complexes.
  Fails with a shard_map type error when a loop starts from an untyped constant."""
  from conftest import cpu_subprocess_env
  repo = pathlib.Path(__file__).resolve().parent.parent
  overrides = [f"data.root={shared_data}", f"task.splits_dir={small_splits(tmp_path)}", *TINY,
               "train.batch_graphs=2", "model.iegmn.dropout=0.0"]
  proc = subprocess.run([sys.executable, "-c", TWO_DEVICES, json.dumps(overrides)],
                        capture_output=True, text=True, timeout=600, cwd=repo,
                        env=cpu_subprocess_env())
  line = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
  assert proc.returncode == 0 and line, proc.stdout[-2000:] + proc.stderr[-3000:]
  out = json.loads(line[0][len("RESULT "):])
  assert out["slots"] == [1, 1]
  assert out["loss"][0] == pytest.approx(out["loss"][1], rel=1e-5)
  assert out["param_diff"] < 1e-5
