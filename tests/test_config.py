"""Experiment configs: loading, --set overrides with type checks, validation, JSON."""
import pathlib

import pytest

from jaxgeo import config as config_lib
from jaxgeo import rows, tasks
from jaxgeo.errors import ConfigError

REPO = pathlib.Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", rows.names())
def test_every_experiment_row_loads_and_validates(name):
  config = rows.config(name)
  assert config.name == name
  task = tasks.get_task(config.task.name)
  config_lib.validate(config, task)
  task.options(config.task)   # typed options: every key known, every value of its type
  model = config_lib.model_config(config)
  assert model.head == task.head and model.out_dim == task.out_dim_for(task.options(config.task))
  # The name says (task, network, fusion[, language model when not ESM-2][, _rich]) so that
  # tables can be regenerated.
  row = rows.get(name)
  if name != "position_demo":
    stem, lm, features = name, "esm2", "paper"
    if stem.endswith("_randomlm"):
      stem, lm = stem.removesuffix("_randomlm"), "unirep1900_random"
    if stem.endswith("_randomlm_unirep256"):
      stem, lm = stem.removesuffix("_randomlm_unirep256"), "unirep256_random"
    if stem.endswith("_rich"):
      stem, features = stem.removesuffix("_rich"), "rich"
    if stem.endswith("_unirep"):
      stem, lm = stem.removesuffix("_unirep"), "unirep1900"
    if stem.endswith("_unirep256"):
      stem, lm = stem.removesuffix("_unirep256"), "unirep256"
    task_name, network, fusion = stem.rsplit("_", 2)
    assert (config.task.name, model.network, model.fusion.mode) == (task_name, network, fusion)
    assert (row.task, row.network, row.fusion, row.features) == (task_name, network, fusion,
                                                                   features)
    assert str(config.lm.model).startswith(lm)
    assert config.data.features == features


@pytest.mark.parametrize("name", [r.name for r in rows.ROWS if r.paper])
def test_paper_rows_have_the_papers_settings(name):
  """Every paper row follows `main.py` of GGNN_Meets_PLM and the paper's featurisation."""
  config = rows.config(name)
  t, d = config.train, config.data
  assert (t.lr, t.epochs, t.patience, t.monitor) == (1e-4, 200, 8, "loss")
  # ReduceLROnPlateau(factor=0.6, patience=5, min_lr=5e-7): optax counts to 6 (see config).
  assert (t.plateau.factor, t.plateau.patience, t.plateau.min_lr) == (0.6, 6, 5e-7)
  molformer_toy = config.model.network == "molformer" and config.task.name.startswith("position")
  assert t.batch_graphs == (4 if molformer_toy else 32)
  assert (d.features, d.edges, d.radius, d.max_neighbors) == ("paper", "radius", 8.0, 32)
  model = config_lib.model_config(config)
  assert model.node_features is False          # residue type / LM vector at the CA only
  if model.network == "egnn":
    assert model.egnn.normalize is False       # the paper's EGNN default
  if model.fusion.mode != "none":
    assert config.lm.model in config_lib.PAPER_LMS


def test_row_names_and_user_files_resolve(tmp_path):
  assert len(rows.names()) == len(set(rows.names()))
  with pytest.raises(ConfigError, match="did you mean interface_gvp_none"):
    rows.get("interface_gvp_nome")
  user = rows.resolve(str(REPO / "examples" / "my_experiment.py"))
  assert user.name == "my_experiment" and user.train.epochs == 5
  assert rows.resolve("position_demo").to_dict() == rows.config("position_demo").to_dict()


def test_base_config_is_the_papers_schedule():
  t = config_lib.base_config().train
  assert t.lr == 1e-4 and t.patience == 8 and t.monitor == "loss"
  assert t.plateau.factor == 0.6 and t.plateau.min_lr == 5e-7


def test_overrides_parse_and_check_types():
  config = config_lib.experiment("position", "gvp", "none", head="node")
  out = config_lib.apply_overrides(config, [
      "train.lr=3e-4", "train.epochs=5", "train.plateau.factor=0.5", "lm.model=unirep64",
      "model.gvp.node_dims=(16, 4)", "model.head_hidden=8", "model.node_features=false",
      "data.radius=10", "task.name=position"])
  assert out.train.lr == 3e-4 and out.train.epochs == 5 and out.train.plateau.factor == 0.5
  assert out.lm.model == "unirep64" and out.model.gvp.node_dims == (16, 4)
  assert out.model.head_hidden == 8 and out.model.node_features is False
  assert isinstance(out.data.radius, float) and out.data.radius == 10.0
  assert config.train.lr == 1e-4, "overrides must not change the input config"
  assert config_lib.model_config(out).gvp.node_dims == (16, 4)


@pytest.mark.parametrize("override, words", [
    ("train.lrr=1", ["train.lrr", "did you mean train.lr"]),
    ("nope.x=1", ["nope"]),
    ("train.epochs=1.5", ["train.epochs", "int"]),
    ("train.epochs=ten", ["train.epochs", "int"]),
    ("model.node_features=3", ["model.node_features", "bool"]),
    ("model.gvp.node_dims=(1,2,3)", ["model.gvp.node_dims", "2 values"]),
    ("train=3", ["train", "section"]),
    ("train.lr", ["key=value"]),
])
def test_bad_overrides_name_the_key(override, words):
  config = config_lib.experiment("position", "gvp", "none", head="node")
  with pytest.raises(ConfigError) as e:
    config_lib.apply_overrides(config, [override])
  for word in words:
    assert word in str(e.value)


@pytest.mark.parametrize("override, words", [
    ("train.lr=0", ["train.lr"]),
    ("train.monitor=accuracy", ["train.monitor"]),
    ("train.plateau.factor=1.5", ["train.plateau.factor"]),
    ("model.head=graph", ["model.head", "position"]),
    ("model.network=resnet", ["model.network"]),
])
def test_validation_names_the_option(override, words):
  config = config_lib.apply_overrides(
      config_lib.experiment("position", "gvp", "none", head="node"), [override])
  with pytest.raises(ConfigError) as e:
    config_lib.validate(config, tasks.get_task("position"))
  for word in words:
    assert word in str(e.value)


def test_unknown_task_lists_the_known_ones():
  with pytest.raises(ConfigError) as e:
    tasks.get_task("toy")
  assert "toy" in str(e.value) and "position" in str(e.value)


def test_json_round_trip_and_diff(tmp_path):
  config = config_lib.apply_overrides(
      config_lib.experiment("position", "egnn", "none", head="node"), ["train.epochs=3"])
  config_lib.write_json(config, tmp_path / "config.json")
  back = config_lib.from_json(tmp_path / "config.json")
  assert config_lib.diff(config, back) == []
  assert config_lib.model_config(back) == config_lib.model_config(config)
  other = config_lib.apply_overrides(back, ["train.lr=1e-3"])
  assert config_lib.diff(back, other) == ["train.lr"]


def test_load_config_errors_name_the_file(tmp_path):
  with pytest.raises(ConfigError, match="no such file"):
    config_lib.load_config(tmp_path / "missing.py")
  bad = tmp_path / "bad.py"
  bad.write_text("def get_config():\n  return 3\n")
  with pytest.raises(ConfigError, match="bad.py"):
    config_lib.load_config(bad)
  broken = tmp_path / "broken.py"
  broken.write_text("import nonexistent_module_xyz\n")
  with pytest.raises(ConfigError, match="broken.py"):
    config_lib.load_config(broken)


def test_data_root_and_store_path(monkeypatch):
  config = config_lib.experiment("position", "gvp", "none", head="node")
  monkeypatch.setenv("JAXGEO_DATA", "/data/x")
  monkeypatch.setenv("JAXGEO_STORE", "/emb/y")
  assert str(config_lib.data_root(config)) == "/data/x"
  assert str(config_lib.store_path(config)) == "/emb/y"
  config.data.root = "/elsewhere"
  config.lm.store = "/store"
  assert str(config_lib.data_root(config)) == "/elsewhere"
  assert str(config_lib.store_path(config)) == "/store"
