"""The CSV tasks (`csv`, `csv_residue`): a researcher's structures and a table of labels.

The tests write their own tables over the eight example structures (examples/structures):
graph-level regression (radius of gyration) and residue-level classification (buried or not,
every second residue labelled), train both end to end with a tiny EGNN, and check every
bad-input case for one DataError naming the file, the line and the cause.
"""
import pathlib
import shutil

import numpy as np
import pytest

from conftest import write_csv_tables
from jaxgeo import config as config_lib
from jaxgeo import structure, tasks, train
from jaxgeo.datasets import csv_table
from jaxgeo.errors import ConfigError, DataError

REPO = pathlib.Path(__file__).resolve().parent.parent
STRUCTURES = REPO / "examples" / "structures"
TINY = ["model.egnn.hidden=16", "model.fusion.embed_dim=16", "model.egnn.num_layers=2", "train.epochs=3",
        "train.batch_graphs=4", "train.max_buckets=1", "train.lr=3e-3", "train.patience=0"]


def proteins():
  return {p.name: structure.load_protein(p) for p in sorted(STRUCTURES.glob("*.pdb.gz"))}


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
  return write_csv_tables(tmp_path_factory.mktemp("csv"))


def csv_config(task: str, labels, *extra, network: str = "egnn", features: str = "paper",
               **options):
  config = config_lib.paper_experiment(task, network, "none", structures=str(STRUCTURES),
                                       labels=str(labels), features=features, **options)
  return config_lib.apply_overrides(config, TINY + list(extra))


def load(task: str, labels, **options):
  t = tasks.get_task(task)
  opts = t.options({"structures": str(STRUCTURES), "labels": str(labels), **options})
  return t, t.load(opts, tasks.Inputs(graph_options={"edges": "radius", "features": "paper"}))


# --- the table --------------------------------------------------------------------------------

def test_graph_table_regression_with_groups_split_together(tables):
  task, data = load("csv", tables[0])
  assert (task.head, task.out_dim) == ("graph", 1)
  info = data.info["splits"]
  assert info["train"]["kind"] == "regression" and "regression" in info["train"]["kind_choice"]
  assert info["train"]["split_by"].startswith("random by group")
  files = {s: set(info[s]["files"]) for s in ("train", "val", "test")}
  assert sum(map(len, files.values())) == 8 and not files["train"] & files["test"]
  for s, names in files.items():   # both partners of a complex (one group) in one split
    assert {n[:4] for n in names}.isdisjoint({n[:4] for t, o in files.items() if t != s
                                              for n in o})
  labels = [float(g.globals["label"][0]) for g in data.splits.train]
  assert data.stats["label_mean"] == pytest.approx(np.mean(labels), rel=1e-6)
  # Group ids: the complex, the same for both partners.
  g = {n: int(gr.globals["group"][0]) for n, gr in zip(info["train"]["files"], data.splits.train)}
  assert len(set(g.values())) == len({n[:4] for n in g})


def test_residue_table_labels_only_listed_residues(tables):
  task, data = load("csv_residue", tables[1])
  assert (task.head, task.out_dim_for(task.options({"labels": str(tables[1]),
                                                     "structures": str(STRUCTURES)}))) == ("node", 1)
  graph = data.splits.train[0]
  mask = graph.nodes["label_mask"]
  assert mask.dtype == bool and mask[0::2].all() and not mask[1::2].any()
  assert set(np.unique(graph.nodes["label"][mask])) <= {0.0, 1.0}
  assert data.info["splits"]["train"]["kind"] == "binary"
  assert data.info["splits"]["train"]["split_by"].startswith("random by file")


def test_split_column_and_multiclass_with_named_classes(tmp_path):
  names = sorted(proteins())
  lines = ["file,chains,fold,split"]
  for i, name in enumerate(names):
    split = ["train", "train", "val", "test"][i % 4]
    lines.append(f"{name},,{['alpha', 'beta', 'mixed'][i % 3]},{split}")
  path = tmp_path / "labels.csv"
  path.write_text("\n".join(lines) + "\n")
  task, data = load("csv", path)
  opts = task.options({"structures": str(STRUCTURES), "labels": str(path)})
  assert task.out_dim_for(opts) == 3 and task.class_names(opts) == ("alpha", "beta", "mixed")
  assert data.splits.sizes() == {"train": 4, "val": 2, "test": 2}
  assert data.info["splits"]["val"]["files"] == [names[2], names[6]]
  config = config_lib.paper_experiment("csv", "gvp", "none", structures=str(STRUCTURES),
                                       labels=str(path))
  assert (config.model.head, config.model.out_dim) == ("graph", 3)
  # Given class order: the positive class of a binary column is the last one.
  table = csv_table.read_table(path, "graph", kind="multiclass", classes="mixed,beta,alpha")
  assert table.classes == ("mixed", "beta", "alpha") and table.rows[0].label == 2.0


def test_metrics_by_kind():
  task = tasks.get_task("csv")
  y = np.array([0., 1, 1, 0, 1, 0])
  group = np.array([0, 0, 0, 1, 1, 1])
  reg = task.metrics(y * 3, y * 3 + 0.5, group, {"label_mean": 0.0, "label_std": 1.0})
  assert reg["rmse"] == pytest.approx(0.5) and reg["mae"] == pytest.approx(0.5)
  assert reg["primary"] == reg["spearman"] == pytest.approx(1.0)
  assert "spearman_per_group" in reg
  binary = task.metrics(y, np.array([-1., 2, 3, -2, 1, 0.5]), group, {"pos_weight": 1.0})
  assert binary["primary"] == binary["auroc"] == pytest.approx(1.0)
  assert binary["accuracy"] == pytest.approx(5 / 6) and "auprc_per_group" in binary
  logits = np.eye(3)[[0, 1, 2, 2, 1, 0]]
  multi = task.metrics(np.array([0., 1, 2, 2, 1, 1]), logits, group, {})
  assert multi["primary"] == multi["accuracy"] == pytest.approx(5 / 6)


# --- training end to end ----------------------------------------------------------------------

@pytest.mark.parametrize("task,which", [("csv", 0), ("csv_residue", 1)])
def test_trains_end_to_end(tables, tmp_path, task, which):
  config = csv_config(task, tables[which])
  result = train.train(config, tmp_path / "run", progress=False, echo=lambda s: None)
  assert result["task"] == task and result["epochs_run"] == 3
  assert np.isfinite(result["test_loss"]) and "primary" in result["test"]
  expected = "rmse" if task == "csv" else "auroc"
  assert expected in result["val"]


SMALL = {"gvp": ["model.gvp.node_dims=(8,4)", "model.gvp.edge_dims=(8,1)",
                 "model.gvp.num_layers=1"],
         "molformer": ["model.molformer.width=16", "model.molformer.num_heads=2",
                       "model.molformer.ffn_dim=16", "model.molformer.num_layers=1"]}


@pytest.mark.parametrize("network,features", [("gvp", "paper"), ("molformer", "rich")])
def test_other_networks_take_the_graphs(tables, network, features):
  # Every network takes the CSV task's graphs with either featurisation (one forward pass
  # each; training is above, language-model fusion in test_commands_predict).
  import jax
  from jaxgeo import batching, nets
  config = csv_config("csv_residue", tables[1], *SMALL[network], network=network,
                      features=features)
  task, options, inputs = config_lib.task_setup(config)
  graphs = task.examples("val", options, inputs).graphs
  model = nets.make_model(config_lib.model_config(config))
  buckets = batching.choose_buckets(graphs, batch_graphs=1, max_buckets=1)
  batch = next(batching.batches(graphs, buckets, 1))
  params = model.init(jax.random.key(0), batch, is_training=False)
  out = model.apply(params, None, batch, is_training=False)
  assert out["node"].shape == (batch.n_node.sum(), 1)


# --- bad input --------------------------------------------------------------------------------

def write(tmp_path, text: str) -> pathlib.Path:
  path = tmp_path / "labels.csv"
  path.write_text(text)
  return path


def examples(task, path, split="train", **options):
  t = tasks.get_task(task)
  opts = t.options({"structures": str(STRUCTURES), "labels": str(path), **options})
  return t.examples(split, opts, tasks.Inputs(graph_options={"features": "paper"}))


GOOD = ["1AY7_l_b.pdb.gz", "1AY7_r_b.pdb.gz", "1CGI_l_b.pdb.gz", "1PPE_l_b.pdb.gz"]


def graph_csv(*rows):
  return "file,y,split\n" + "".join(f"{r}\n" for r in rows)


@pytest.mark.parametrize("text,task,match", [
    ("name,y\na.pdb,1\n", "csv", r"line 1: missing column\(s\) file"),
    ("file,residue_number,y\na.pdb,1,1\n", "csv_residue", r"line 1: missing column\(s\) chain"),
    (graph_csv(f"{GOOD[0]},1.5,train", "missing.pdb,2.5,train", f"{GOOD[2]},1,val",
               f"{GOOD[3]},1,test"), "csv", r"line 3: file 'missing.pdb' is not in"),
    (graph_csv(f"{GOOD[0]},1.5,train", f"{GOOD[1]},high,train"), "csv",
     r"line 3: non-numeric label 'high'"),
    (graph_csv(f"{GOOD[0]},1,train", f"{GOOD[1]},1,train"), "csv", r"one class only"),
    (graph_csv(f"{GOOD[0]},1.5,train", f"{GOOD[1]},2.5,train", f"{GOOD[0]},3.5,train"), "csv",
     r"line 4: duplicates line 2 .* different label"),
    (graph_csv(f"{GOOD[0]},1.5,train", f"{GOOD[1]},,train"), "csv",
     r"line 3: empty label in column 'y'"),
    (graph_csv(f"{GOOD[0]},1.5,train", f"{GOOD[1]},2.5,training", f"{GOOD[2]},2,later"),
     "csv", r"line 4: split 'later' is not one of"),
    ("file,chain,residue_number,y,split\n1AY7_l_b.pdb.gz,Z,5,1,train\n"
     "1AY7_l_b.pdb.gz,B,5,0,train\n", "csv_residue", r"line 2: chain 'Z' is not in 1AY7_l_b"),
    ("file,chain,residue_number,y,split\n1AY7_l_b.pdb.gz,B,9999,1,train\n"
     "1AY7_l_b.pdb.gz,B,5,0,train\n", "csv_residue", r"line 2: residue B 9999 is not in"),
    ("file,chain,residue_number,y,split\n1AY7_l_b.pdb.gz,B,five,1,train\n"
     "1AY7_l_b.pdb.gz,B,5,0,train\n", "csv_residue", r"line 2: residue_number 'five'"),
])
def test_bad_input_is_one_error_naming_file_and_line(tmp_path, text, task, match):
  path = write(tmp_path, text)
  with pytest.raises(DataError, match=match) as e:
    examples(task, path, kind="auto")
  assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_bad_options_are_config_errors(tmp_path, tables):
  task = tasks.get_task("csv")
  with pytest.raises(ConfigError, match="task.kind"):
    task.options({"kind": "ordinal"})
  with pytest.raises(ConfigError, match="task.fractions"):
    task.options({"fractions": "0.5,0.5"})
  with pytest.raises(ConfigError, match="task.labels: not set"):
    task.table(task.options({"structures": str(STRUCTURES)}))
  path = write(tmp_path, "file,a,b\nx.pdb,1,2\n")
  with pytest.raises(ConfigError, match=r"several label columns \(a, b\)"):
    task.table(task.options({"structures": str(STRUCTURES), "labels": str(path)}))
  with pytest.raises(DataError, match="no label column 'c'"):
    task.table(task.options({"structures": str(STRUCTURES), "labels": str(path), "label": "c"}))


def test_skip_is_explicit_and_listed(tmp_path):
  path = write(tmp_path, graph_csv(f"{GOOD[0]},1.5,train", f"{GOOD[1]},oops,train",
                                   f"{GOOD[2]},2.5,train", f"{GOOD[0]},1.5,train",
                                   f"{GOOD[3]},1,val"))
  with pytest.raises(DataError, match="line 3"):
    examples("csv", path, kind="regression")
  out = examples("csv", path, kind="regression", on_bad_row="skip")
  assert len(out.graphs) == 2
  assert any(s.startswith("line 3: non-numeric label 'oops'") for s in out.info["skipped"])
  assert any(s.startswith("line 5: same as line 2") for s in out.info["skipped"])
  residue = write(tmp_path, "file,chain,residue_number,y,split\n1AY7_l_b.pdb.gz,B,9999,1,train\n"
                  "1AY7_l_b.pdb.gz,B,5,0,train\n1AY7_l_b.pdb.gz,B,6,1,train\n")
  out = examples("csv_residue", residue, on_bad_row="skip")
  assert int(out.graphs[0].nodes["label_mask"].sum()) == 2
  assert out.info["skipped"][0].startswith("line 2: residue B 9999 is not in")


def test_unreadable_structure_names_the_line(tmp_path):
  folder = tmp_path / "structures"
  folder.mkdir()
  shutil.copy(STRUCTURES / GOOD[0], folder / GOOD[0])
  (folder / "broken.pdb").write_text("HEADER nothing here\n")
  path = write(tmp_path, graph_csv(f"{GOOD[0]},1.5,train", "broken.pdb,2.5,train"))
  t = tasks.get_task("csv")
  opts = t.options({"structures": str(folder), "labels": str(path)})
  with pytest.raises(DataError, match=r"line 3: .*broken.pdb"):
    t.examples("train", opts, tasks.Inputs(graph_options={"features": "paper"}))
