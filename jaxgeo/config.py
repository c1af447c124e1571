"""Experiment configs: ml_collections ConfigDicts (the rows of `jaxgeo.rows`, or a user's
file whose `get_config()` returns one), `--set a.b=value` overrides, validation, JSON round
trips, and the task's typed options and inputs built from a config (`task_setup`).

Sections of an experiment config (see `base_config()` for every key and its default):

  name      the experiment name (the config file's stem; names the run folder)
  task      name: a registered task (`jaxgeo.tasks.get_task`), plus that task's own options
  data      root (""= $JAXGEO_DATA or ../shared/data), graph options: edges, k, radius,
            max_neighbors, features ("paper": the paper's inputs; "rich": GVP-CPD style)
  model     a `jaxgeo.nets.ModelConfig` as a dict (network, head, out_dim, fusion {mode,
            lm_dim, embed_dim, ...}, gvp / egnn / molformer, node_features, head_hidden,
            head_dropout); `model_config(config)` builds the frozen dataclass
  train     lr, epochs, batch_graphs, max_buckets, patience (early stopping, epochs), monitor
            ("loss": validation loss as in the paper, or "metric": the task's primary metric),
            plateau {factor, patience, rtol, min_lr, cooldown} (reduce-on-plateau of the
            learning rate on the monitored value), seed, prefetch, batching ("packed":
            batches filled to a node / edge budget of batch_graphs graphs on average;
            "fixed": batch_graphs graphs each; "balanced": batch_graphs graphs each, dealt
            to about equal sizes, `batching.plan_balanced`), packing {nodes, edges,
            max_graphs, open_batches, buckets} (0: derived, see `batching.packing_for`),
            precision ("f32", or "bf16": bfloat16 compute with float32 parameters, optimiser state,
            aggregations and matmul accumulation, `nets.precision`), cpu_dot_fusion (on CPU,
            compile a float32 train step with YNNPACK fusions of each matmul and its
            elementwise consumers, `jaxgeo.xla_options`), cpu_devices (on a host without
            GPU / TPU, the JAX devices `jaxgeo train` splits the CPU into for data
            parallelism over its cores, `parallel.split_cpu`; 0: one per core, at most a
            divisor of batch_graphs; 1: one device whose kernels XLA threads over the cores)
  lm        store (""= $JAXGEO_STORE or embeddings/), model (store model name), layer

`experiment(task, network, fusion)` builds a config with the paper's model and schedule;
config files usually call it and change a few values.

Overrides: `apply_overrides(config, ["train.lr=3e-4", "model.gvp.node_dims=(64,8)"])` parses
each value as a Python literal (falling back to the raw string for string options) and
checks it against the type of the value it replaces; an unknown key raises ConfigError
naming it (and the keys of its section).
"""
from __future__ import annotations

import ast
import dataclasses
import difflib
import importlib.util
import json
import os
import pathlib
from collections.abc import Sequence
from typing import Any

import ml_collections

from jaxgeo import io
from jaxgeo.errors import ConfigError
from jaxgeo.nets import config as nets_config

MONITORS = ("loss", "metric")
BATCHING = ("packed", "fixed", "balanced")
PRECISIONS = ("f32", "bf16")
DEFAULT_DATA = os.path.join("..", "shared", "data")
DEFAULT_STORE = "embeddings"
# Keys that may differ between a run folder's saved config and the config a resumed run
# is started with (they do not change what the run computes up to that point): the
# schedule's length and settings of speed only (the networks' edge chunks change the order
# of additions, not what is computed; their layer unrolling only how it is compiled).
RESUMABLE_CHANGES = ("train.epochs", "train.patience", "train.prefetch", "train.devices",
                     "train.cpu_devices",
                     "model.gvp.edge_chunk", "model.gvp.eval_edge_chunk",
                     "model.egnn.edge_chunk", "model.egnn.store_chunk_dots") + tuple(
                         f"model.{net}.{key}" for net in ("gvp", "egnn", "molformer")
                         for key in ("unroll", "eval_unroll"))


# Keys added after run folders were first saved, with what a saved config without them meant
# (filled in by `from_json`, so old runs resume and evaluate as they trained).
LEGACY_DEFAULTS = {
    ("train", "batching"): "fixed",
    ("train", "packing"): {"nodes": 0, "edges": 0, "max_graphs": 0, "open_batches": 4,
                           "buckets": 2},
    ("train", "precision"): "f32",
    ("train", "cpu_dot_fusion"): False,
    ("train", "cpu_devices"): 1,
}


def base_config() -> ml_collections.ConfigDict:
  """Every section and key with its default (the paper's schedule: Adam lr 1e-4,
  reduce-on-plateau x0.6 after 5 epochs (PyTorch semantics; 6 here, see below) down to 5e-7,
  early stopping after 8 epochs without improvement of the validation loss)."""
  model = nets_config.paper_config("gvp", fusion="none").to_dict()
  return ml_collections.ConfigDict({
      "name": "experiment",
      "task": {"name": "position"},
      "data": {"root": "", "edges": "knn", "k": 30, "radius": 8.0, "max_neighbors": 32,
               "features": "rich"},
      "model": model,
      "train": {
          "lr": 1e-4,
          "epochs": 200,
          "batch_graphs": 32,
          "max_buckets": 4,
          "patience": 8,
          "monitor": "loss",
          # optax.contrib.reduce_on_plateau counts epochs without improvement and reduces when
          # the count reaches `patience`; PyTorch's ReduceLROnPlateau(patience=5) of the paper
          # reduces when it exceeds 5, i.e. at 6.
          "plateau": {"factor": 0.6, "patience": 6, "rtol": 1e-4, "min_lr": 5e-7,
                      "cooldown": 0},
          "seed": 0,
          "prefetch": 2,
          "devices": 0,        # devices to train on (0: every visible device)
          # "packed": batches filled up to a node / edge budget (batch_graphs graphs on
          # average, packing.buckets shapes); "fixed": batch_graphs graphs a batch in up to
          # max_buckets shapes; "balanced": as "fixed", each shuffled chunk of graphs dealt
          # into batches of about equal sizes (less padding). Saved configs without the key
          # were fixed.
          "batching": "packed",
          "packing": {"nodes": 0, "edges": 0, "max_graphs": 0, "open_batches": 4,
                      "buckets": 2},
          "precision": "f32",  # or "bf16" (mixed precision)
          "cpu_dot_fusion": True,  # xla_options.train_step: CPU train steps only
          # JAX devices the host CPU is split into (`jaxgeo train`, without GPU / TPU): data
          # parallelism over its cores; 0: one per core (a divisor of batch_graphs).
          "cpu_devices": 0,
      },
      "lm": {"store": "", "model": "esm2_t33_650M", "layer": 33},
  })


def experiment(task: str, network: str, fusion: str = "none", *, head: str = "graph",
               out_dim: int = 1, lm_dim: int = nets_config.PAPER_LM_DIM,
               name: str | None = None) -> ml_collections.ConfigDict:
  """A config with the paper's model for (network, fusion) and the paper's schedule.

  `head` / `out_dim` must match the task's (validate() checks them).
  """
  config = base_config()
  config.name = name or f"{task}_{network}_{fusion}"
  config.task.name = task
  config.model = ml_collections.ConfigDict(nets_config.paper_config(
      network, fusion=fusion, head=head, out_dim=out_dim, lm_dim=lm_dim).to_dict())
  return config


# The language models of the tables: store name -> (layer, width). "unirep{size}_random" is
# the random-lm control: that UniRep's architecture at a fixed random initialisation.
# UniRep 256 (the same wheel's smaller pre-trained model) is there for the networks that
# `replace` widens to the language model's width (EGNN: 1900 wide it needs an accelerator).
PAPER_LMS = {"esm2_t33_650M": (33, 1280), "unirep1900": (1, 1900),
             "unirep1900_random": (1, 1900), "unirep256": (1, 256),
             "unirep256_random": (1, 256)}


FEATURES = ("paper", "rich")


def paper_experiment(task: str, network: str, fusion: str = "none", *,
                     lm_model: str = "esm2_t33_650M", features: str = "paper",
                     **task_options: Any) -> ml_collections.ConfigDict:
  """One row of the paper's tables: `experiment()` for (task, network, fusion) with the
  task's head and output size, every task option at its default (overridden by
  `task_options`), the paper's training settings (`main.py`: Adam lr 1e-4, batches of 32,
  ReduceLROnPlateau x0.6 / 5 epochs / min 5e-7, early stopping after 8 epochs, 200 epochs at
  most; Molformer on the position task: batches of 4) and the paper's inputs
  (`features="paper"`: residue type or LM vector at the CA, 16 RBFs of the CA distance on
  [0, 8 A] and the unit direction per edge, radius graph CA within 8 A with at most 32
  neighbours). `features="rich"` is our extension (GVP-CPD inputs: dihedrals,
  previous/next/CB vectors, sequence-separation and chain edges, fed to the network with
  `model.node_features`). Reads `lm_model` embeddings (a key of PAPER_LMS) when fused."""
  from jaxgeo import tasks  # the registry imports task modules lazily
  if lm_model not in PAPER_LMS:
    raise ConfigError(f"lm_model={lm_model!r}: expected one of {', '.join(PAPER_LMS)}")
  task_class = tasks.get_task(task)
  layer, width = PAPER_LMS[lm_model]
  config = experiment(task, network, fusion, head=task_class.head, out_dim=task_class.out_dim,
                      lm_dim=width)
  defaults = task_class.default_options()
  options = task_class.options({**defaults, **task_options})   # unknown or mistyped: ConfigError
  if task_class.out_dim_for(options) != task_class.out_dim:
    config.model.out_dim = task_class.out_dim_for(options)
  config.task.update({**defaults, **task_options})
  if features not in FEATURES:
    raise ConfigError(f"features={features!r}: expected one of {FEATURES}")
  config.data.features = features
  config.model.node_features = features == "rich"
  if features == "rich" and network in ("egnn", "molformer"):
    config.model[network].input_linear = True   # the dihedral scalars join the node inputs
  config.data.edges = "radius"
  config.data.radius = 8.0
  config.data.max_neighbors = 32
  config.train.batch_graphs = 32
  if network == "molformer" and task.startswith("position"):
    config.train.batch_graphs = 4      # main.py: args.batch = 4 for Molformer on TOY
  config.lm.model = lm_model
  config.lm.layer = layer
  return config


# --- files ----------------------------------------------------------------------------------

def load_config(path: str | os.PathLike) -> ml_collections.ConfigDict:
  """Runs `get_config()` of a config file. -> ConfigDict with `name` set to the file stem.
  Raises ConfigError naming the file."""
  path = pathlib.Path(path)
  if not path.is_file():
    raise ConfigError(f"--config {path}: no such file")
  if path.suffix == ".json":
    return from_json(path)
  spec = importlib.util.spec_from_file_location(f"jaxgeo_config_{path.stem}", path)
  if spec is None or spec.loader is None:
    raise ConfigError(f"--config {path}: not a Python file")
  module = importlib.util.module_from_spec(spec)
  try:
    spec.loader.exec_module(module)
  except ConfigError:
    raise
  except Exception as e:  # a broken config file is a user error
    raise ConfigError(f"--config {path}: cannot be run ({type(e).__name__}: {e})") from None
  if not hasattr(module, "get_config"):
    raise ConfigError(f"--config {path}: has no get_config() function")
  try:
    config = module.get_config()
  except ConfigError:
    raise
  except Exception as e:  # as a broken file: the user's code, one line naming it
    raise ConfigError(f"--config {path}: get_config() failed ({type(e).__name__}: {e})"
                      ) from None
  if not isinstance(config, ml_collections.ConfigDict):
    raise ConfigError(f"--config {path}: get_config() returned {type(config).__name__}, "
                      "expected an ml_collections.ConfigDict")
  with config.unlocked():
    config.name = path.stem   # the file names the experiment (and its table row)
  return config


def to_dict(config: ml_collections.ConfigDict) -> dict:
  """Plain JSON-ready dict (tuples become lists)."""
  return json.loads(config.to_json())


def write_json(config: ml_collections.ConfigDict, path: str | os.PathLike) -> None:
  io.atomic_write_json(path, to_dict(config))


# The sections every experiment config (and a run folder's config.json) has.
SECTIONS = ("task", "data", "model", "train", "lm")


def from_json(path: str | os.PathLike) -> ml_collections.ConfigDict:
  """A config saved as JSON (a run folder's config.json). Raises ConfigError naming the file
  when it cannot be read, is not a JSON object, or lacks a section."""
  try:
    with open(path, encoding="utf-8") as f:
      data = json.load(f)
  except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
    raise ConfigError(f"{path}: cannot read the config ({e})") from None
  if not isinstance(data, dict):
    raise ConfigError(f"{path}: holds a JSON {type(data).__name__}, not a config (a JSON "
                      "object with sections " + ", ".join(SECTIONS) + ")")
  missing = [k for k in SECTIONS if not isinstance(data.get(k), dict)]
  if missing:
    raise ConfigError(f"{path}: not a complete config (missing or not an object: "
                      f"{', '.join(missing)})")
  for (section, key), value in LEGACY_DEFAULTS.items():
    data[section].setdefault(key, json.loads(json.dumps(value)))
  return ml_collections.ConfigDict(data)


# --- overrides ------------------------------------------------------------------------------

def _parse_literal(text: str) -> Any:
  lowered = text.strip().lower()
  if lowered in ("true", "false"):
    return lowered == "true"
  if lowered in ("none", "null"):
    return None
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    return text


def _coerce(key: str, old: Any, text: str) -> Any:
  """The override value for `key`, checked against the type of the value it replaces."""
  value = _parse_literal(text)
  expected = type(old).__name__
  if isinstance(old, ml_collections.ConfigDict):
    raise ConfigError(f"--set {key}={text}: {key} is a section; set one of its keys "
                      f"({', '.join(sorted(old.keys()))})")
  if old is None:
    return value
  if isinstance(old, bool):
    if isinstance(value, bool):
      return value
  elif isinstance(old, int):
    if isinstance(value, int) and not isinstance(value, bool):
      return value
  elif isinstance(old, float):
    if isinstance(value, (int, float)) and not isinstance(value, bool):
      return float(value)
  elif isinstance(old, str):
    return text if not isinstance(value, str) else value
  elif isinstance(old, (tuple, list)):
    if isinstance(value, (tuple, list)):
      if old and len(value) != len(old) and isinstance(old, tuple):
        raise ConfigError(f"--set {key}={text}: expected {len(old)} values like {old}")
      for item, ref in zip(value, old):
        if isinstance(ref, (int, float)) and not isinstance(item, (int, float)):
          raise ConfigError(f"--set {key}={text}: expected numbers like {tuple(old)}")
      return type(old)(value)
  else:
    return value
  raise ConfigError(f"--set {key}={text}: expected a value of type {expected} "
                    f"(the current value is {old!r})")


def apply_overrides(config: ml_collections.ConfigDict, overrides: Sequence[str]
                    ) -> ml_collections.ConfigDict:
  """Applies `a.b.c=value` overrides in order (on a copy). Raises ConfigError for a
  malformed override, an unknown key or a value of the wrong type."""
  config = ml_collections.ConfigDict(config.to_dict())
  for item in overrides:
    if "=" not in item:
      raise ConfigError(f"--set {item}: expected key=value, e.g. --set train.lr=3e-4")
    key, text = item.split("=", 1)
    key = key.strip()
    parts = key.split(".")
    node = config
    for depth, part in enumerate(parts):
      if not isinstance(node, ml_collections.ConfigDict) or part not in node:
        section = ".".join(parts[:depth]) or "the config"
        known = sorted(node.keys()) if isinstance(node, ml_collections.ConfigDict) else []
        close = difflib.get_close_matches(part, known, n=1)
        hint = f"; did you mean {'.'.join(parts[:depth] + close)}?" if close else ""
        raise ConfigError(f"--set {key}: unknown key {part!r} in {section} (known: "
                          f"{', '.join(known) or 'none'}){hint}")
      if depth < len(parts) - 1:
        node = node[part]
    old = node[parts[-1]]
    value = _coerce(key, old, text)
    with node.unlocked():
      if old is None or value is None:
        # ConfigDict keeps a field's type; a None field may take any type and vice versa.
        del node[parts[-1]]
      node[parts[-1]] = value
  return config


# --- validation ------------------------------------------------------------------------------

def _dataclass_from_dict(cls, data: Any, where: str):
  if isinstance(data, ml_collections.ConfigDict):
    data = data.to_dict()
  if not isinstance(data, dict):
    raise ConfigError(f"{where}: expected a section, got {data!r}")
  defaults = cls()
  names = {f.name for f in dataclasses.fields(cls)}
  unknown = sorted(set(data) - names)
  if unknown:
    raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)} (known: "
                      f"{', '.join(sorted(names))})")
  kwargs = {}
  for name, value in data.items():
    default = getattr(defaults, name)
    if dataclasses.is_dataclass(default):
      value = _dataclass_from_dict(type(default), value, f"{where}.{name}")
    elif isinstance(default, tuple) and isinstance(value, (list, tuple)):
      value = tuple(value)
    kwargs[name] = value
  return cls(**kwargs)


def model_config(config: ml_collections.ConfigDict) -> nets_config.ModelConfig:
  """The frozen `nets.ModelConfig` of the config's `model` section (validated)."""
  model = _dataclass_from_dict(nets_config.ModelConfig, config.model, "model")
  return nets_config.validate(model)


def data_root(config: ml_collections.ConfigDict) -> pathlib.Path:
  """The data folder: `data.root`, else $JAXGEO_DATA, else ../shared/data."""
  root = str(config.data.get("root", "") or "") or os.environ.get("JAXGEO_DATA", "") or (
      DEFAULT_DATA)
  return pathlib.Path(root).expanduser()


def store_path(config: ml_collections.ConfigDict) -> pathlib.Path:
  """The embedding store folder: `lm.store`, else $JAXGEO_STORE, else embeddings/."""
  path = str(config.lm.get("store", "") or "") or os.environ.get("JAXGEO_STORE", "") or (
      DEFAULT_STORE)
  return pathlib.Path(path).expanduser()


def uses_lm(config: ml_collections.ConfigDict) -> bool:
  return str(config.model.fusion.mode) != "none"


def graph_options(config: ml_collections.ConfigDict) -> dict:
  """Keyword arguments of `graph.residue_graph` from the `data` section."""
  data = config.data
  max_neighbors = data.get("max_neighbors", 32)
  out = {
      "edges": str(data.get("edges", "knn")),
      "k": int(data.get("k", 30)),
      "radius": float(data.get("radius", 8.0)),
      "max_neighbors": None if max_neighbors in (None, 0, -1) else int(max_neighbors),
  }
  if "features" in data:
    out["features"] = str(data.features)
  return out


def lm_features(config: ml_collections.ConfigDict, store=None):
  """The language-model features (`jaxgeo.lm.Features`) an experiment reads, or None when
  its network is not fused. `store`: an open EmbeddingStore to use instead of `lm.store`.
  Raises DataError naming the `jaxgeo embed` command when the store folder does not exist."""
  if not uses_lm(config):
    return None
  from jaxgeo.lm import features
  if store is not None:
    return features.Features(store, str(config.lm.model), int(config.lm.layer))
  return features.open_features(store_path(config), str(config.lm.model), int(config.lm.layer))


def task_setup(config: ml_collections.ConfigDict, store=None, with_lm: bool = True):
  """-> (task, options, inputs) of an experiment: the registered task, its typed options from
  the `task` section, and its `tasks.Inputs` (data root, graph options, LM features; none
  when `with_lm` is False, e.g. to list the sequences that `jaxgeo embed` should compute)."""
  from jaxgeo import tasks
  task = tasks.get_task(str(config.task.name))
  options = task.options(config.task)
  inputs = tasks.Inputs(data_root=data_root(config), graph_options=graph_options(config),
                        lm=lm_features(config, store) if with_lm else None)
  return task, options, inputs


def load_task(config: ml_collections.ConfigDict, store=None):
  """-> (task, Dataset): the experiment's task and its loaded data (see `task_setup`)."""
  task, options, inputs = task_setup(config, store)
  return task, task.load(options, inputs)


def _require(config: ml_collections.ConfigDict, keys: Sequence[str]) -> None:
  for key in keys:
    node = config
    for part in key.split("."):
      if not isinstance(node, ml_collections.ConfigDict) or part not in node:
        raise ConfigError(f"config {config.get('name', '?')}: missing {key}")
      node = node[part]


def validate(config: ml_collections.ConfigDict, task=None) -> ml_collections.ConfigDict:
  """Checks the sections the trainer reads; with `task`, that the model's head and out_dim
  are the task's. Raises ConfigError naming the option."""
  _require(config, ("name", "task.name", "data", "model", "train.lr", "train.epochs",
                    "train.batch_graphs", "train.max_buckets", "train.patience",
                    "train.monitor", "train.plateau.factor", "train.plateau.patience",
                    "train.plateau.rtol", "train.plateau.min_lr", "train.plateau.cooldown",
                    "train.seed", "lm.store", "lm.model", "lm.layer"))
  t = config.train
  if not t.lr > 0:
    raise ConfigError(f"train.lr={t.lr}: must be positive")
  for key in ("epochs", "batch_graphs", "max_buckets"):
    if int(t[key]) < 1:
      raise ConfigError(f"train.{key}={t[key]}: must be at least 1")
  if t.get("batching", "fixed") not in BATCHING:
    raise ConfigError(f"train.batching={t.batching!r}: expected one of {BATCHING}")
  if t.get("precision", "f32") not in PRECISIONS:
    raise ConfigError(f"train.precision={t.precision!r}: expected one of {PRECISIONS}")
  if int(t.get("cpu_devices", 1)) < 0:
    raise ConfigError(f"train.cpu_devices={t.cpu_devices}: must be >= 0 (0: one per CPU core)")
  if "packing" in t:
    for key in ("nodes", "edges", "max_graphs"):
      if int(t.packing[key]) < 0:
        raise ConfigError(f"train.packing.{key}={t.packing[key]}: must be >= 0 (0: derived)")
    for key in ("open_batches", "buckets"):
      if int(t.packing[key]) < 1:
        raise ConfigError(f"train.packing.{key}={t.packing[key]}: must be at least 1")
  if not 0 <= int(t.seed) < 2 ** 32:
    raise ConfigError(f"train.seed={t.seed}: must be in [0, 2**32)")
  if int(t.patience) < 0:
    raise ConfigError(f"train.patience={t.patience}: must be >= 0 (0: no early stopping)")
  if t.monitor not in MONITORS:
    raise ConfigError(f"train.monitor={t.monitor!r}: expected one of {MONITORS}")
  p = t.plateau
  if not 0.0 < p.factor < 1.0:
    raise ConfigError(f"train.plateau.factor={p.factor}: must be in (0, 1)")
  if int(p.patience) < 1 or int(p.cooldown) < 0 or p.rtol < 0 or p.min_lr < 0:
    raise ConfigError("train.plateau: patience must be >= 1 and cooldown, rtol, min_lr >= 0")
  model = model_config(config)
  if task is not None:
    out_dim = task.out_dim_for(task.options(config.task))
    if model.head != task.head or model.out_dim != out_dim:
      raise ConfigError(
          f"model.head={model.head!r}, model.out_dim={model.out_dim}: task {task.name!r} "
          f"needs head={task.head!r}, out_dim={out_dim}")
  return config


def diff(a: ml_collections.ConfigDict, b: ml_collections.ConfigDict) -> list[str]:
  """Dotted keys whose values differ between two configs (JSON view)."""
  def flat(d, prefix=""):
    out = {}
    for k, v in d.items():
      if isinstance(v, dict):
        out.update(flat(v, f"{prefix}{k}."))
      else:
        out[f"{prefix}{k}"] = v
    return out
  fa, fb = flat(to_dict(a)), flat(to_dict(b))
  return sorted(k for k in set(fa) | set(fb) if fa.get(k) != fb.get(k))
