"""The paper's toy task on real chains: `position` (distance to the nearer chain end) and
`position_id` (the residue index as a class), on the DB5.5 example structures in
`examples/structures` (and DB5.5 itself when ../shared/data is there)."""
import pathlib

import jax.numpy as jnp
import numpy as np
import pytest

from jaxgeo import config as config_lib
from jaxgeo import rows, structure, train
from jaxgeo.errors import ConfigError, DataError
from jaxgeo.lm.features import chain_segments

REPO = pathlib.Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples" / "structures"
TINY = ["model.egnn.hidden=16", "model.egnn.num_layers=2", "model.fusion.embed_dim=16",
        "train.epochs=2", "train.batch_graphs=4", "train.max_buckets=1", "train.patience=0",
        "train.lr=3e-3"]


def example_config(name="position_egnn_none", *extra):
  return config_lib.apply_overrides(rows.config(name),
                                    [f"task.structures={EXAMPLES}"] + TINY + list(extra))


def test_every_chain_of_the_examples_is_one_labelled_graph():
  config = example_config()
  task, dataset = config_lib.load_task(config)
  graphs = dataset.splits.train + dataset.splits.val + dataset.splits.test
  files = sorted(EXAMPLES.glob("*.pdb.gz"))
  lengths = sorted(len(s) for f in files for _, s in chain_segments(structure.load_protein(f))
                   if len(s) >= 10)
  assert sorted(int(g.n_node[0]) for g in graphs) == lengths
  for g in graphs:
    n = int(g.n_node[0])
    np.testing.assert_array_equal(g.nodes["label"], np.minimum(np.arange(n), n - np.arange(n)))
    # The paper's featurisation: nothing that gives the sequence order away.
    assert "s" not in g.nodes and "v" not in g.nodes and g.edges["s"].shape[1] == 16
  # Split by file, seeded: the same split twice, every file in exactly one split.
  per_split = {s: [str(p) for p in task.sources(s, *config_lib.task_setup(config)[1:])]
               for s in ("train", "val", "test")}
  assert sorted(sum(per_split.values(), [])) == [str(f) for f in files]
  assert sum(dataset.info["splits"][s]["chains"] for s in per_split) == len(graphs)


def test_position_id_classes_and_long_chains():
  config = example_config("position_id_egnn_none", "task.max_length=100", "task.seed=2",
                          "model.out_dim=100")
  task, dataset = config_lib.load_task(config)
  assert config.model.out_dim == 100 and task.out_dim_for(task.options(config.task)) == 100
  graphs = dataset.splits.train + dataset.splits.val + dataset.splits.test
  assert all(int(g.n_node[0]) <= 100 for g in graphs)
  excluded = sum(dataset.info["splits"][s]["excluded_long"] for s in ("train", "val", "test"))
  assert excluded > 0            # the examples hold chains longer than 100 residues
  truncated_config = config_lib.apply_overrides(config, ["task.long_chains=truncate"])
  _, truncated = config_lib.load_task(truncated_config)
  assert sum(len(getattr(truncated.splits, s)) for s in ("train", "val", "test")) == (
      len(graphs) + excluded)
  # Cross-entropy and accuracy on hand-made logits.
  logits = np.full((3, 100), -10.0, np.float32)
  logits[[0, 1, 2], [0, 1, 7]] = 10.0
  assert task.metrics(np.array([0.0, 1.0, 2.0]), logits, np.zeros(3, np.int32), {}) == {
      "accuracy": pytest.approx(2 / 3), "accuracy_within_5": 1.0,
      "rmse_index": pytest.approx(np.sqrt(25 / 3))}
  g = graphs[0]
  batch = g._replace(n_node=np.array([g.n_node[0]]))
  out = {"node": jnp.asarray(np.eye(100, dtype=np.float32)[np.arange(int(g.n_node[0]))] * 50)}
  assert float(task.loss(out, batch, {})) < 1e-6
  with pytest.raises(ConfigError, match="long_chains"):
    task.options({"long_chains": "drop"})
  # A class count the model does not have is one clear error.
  with pytest.raises(ConfigError, match="needs head='node', out_dim=100"):
    config_lib.validate(config_lib.apply_overrides(config, ["model.out_dim=512"]), task)


def test_position_trains_end_to_end_on_the_examples(tmp_path):
  config = example_config()
  result = train.train(config, tmp_path / "run", progress=False)
  assert result["task"] == "position" and result["epochs_run"] == 2
  assert np.isfinite(result["test"]["rmse"]) and result["test"]["rmse"] > 0


def test_missing_structure_folder_is_one_error(tmp_path):
  config = config_lib.apply_overrides(rows.config("position_gvp_none"),
                                      [f"task.structures={tmp_path / 'nope'}"])
  with pytest.raises(DataError, match="no such folder"):
    config_lib.load_task(config)


def test_db5_chains_split_by_complex(shared_data):
  config = config_lib.apply_overrides(rows.config("position_gvp_none"),
                                      ["task.limit=1", f"data.root={shared_data}"])
  task, dataset = config_lib.load_task(config)
  _, options, inputs = config_lib.task_setup(config)
  sources = {s: task.sources(s, options, inputs) for s in ("train", "val", "test")}
  ids = {s: {p.name.split("_")[0] for p in paths} for s, paths in sources.items()}
  assert all(len(v) == 1 for v in ids.values()) and len(set.union(*ids.values())) == 3
  assert all(len(paths) == 2 for paths in sources.values())   # receptor and ligand files
  assert dataset.splits.sizes()["train"] >= 2
