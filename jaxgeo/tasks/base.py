"""The task interface: what the trainer needs from a task, and nothing more.

A task turns a dataset into graphs with labels inside them, and model outputs into a loss and
metrics. Tasks are stateless: everything a task reads comes in as arguments (its typed
options, the `Inputs`: data root, graph options, language-model features), and whatever its
loss and metrics need from the data (a positive-class weight, the label mean and std) comes
out of `load` as plain data (`Dataset.stats`) and goes back in explicitly. A task never reads
the experiment config, the model's config or the language model's settings.

    @dataclasses.dataclass(frozen=True)
    class MyOptions:                       # config.task.* with defaults; typos are errors
      data_dir: str = ""

    class MyTask(Task):
      name = "my_task"; head = "graph"; out_dim = 1
      primary_metric = "spearman"; higher_is_better = True
      Options = MyOptions
      def examples(self, split, options, inputs) -> list[GraphsTuple]: ...   # one split
      def loss(self, outputs, batch, stats) -> jax.Array: ...                # jnp, in jit
      def metrics(self, y_true, y_pred, group, stats) -> dict[str, float]: ...  # host

`Task.load(options, inputs)` (owned by this base class) calls `examples` for each split,
checks that no split is empty, and computes `stats(options, train)`.

Where the labels live (so one `jraph.pad_with_graphs` pads them with everything else):
- node tasks (`head == "node"`): `nodes["label"] [N] float32`, optionally
  `nodes["label_mask"] [N] bool` (False: the node has no label and never counts);
- graph tasks (`head == "graph"`): `globals["label"] [G] float32` (stored `[1]` in a single
  graph, see `graph.with_globals`), optionally `globals["label_mask"] [G] bool`;
- every example carries `globals["group"] [G] int32`: the id of its target / complex within
  its split, used by per-group metrics ("mean per target").

Examples are single-graph numpy GraphsTuples (`n_node` of shape [1]) with the same
node/edge/globals keys throughout; with language-model features (`inputs.lm` not None) each
graph gets `nodes["lm"] [N, D]` (`with_lm` below).

The helpers `masked_mse`, `masked_bce`, `node_predictions` and `graph_predictions` implement
the masking rules, so a task's `loss` / `predictions` are usually one line: padding nodes, the
padding graph and unlabelled nodes never count in a loss or a metric.
"""
from __future__ import annotations

import abc
import dataclasses
import os
import pathlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import jraph
import numpy as np

from jaxgeo import batching
from jaxgeo.datasets import db5
from jaxgeo.errors import ConfigError, DataError
from jaxgeo.lm import features as lm_features
from jaxgeo.metrics import classification, regression

if TYPE_CHECKING:  # pragma: no cover
  import jax

__all__ = ["SPLITS", "HEADS", "Inputs", "Splits", "Examples", "Dataset", "NoOptions", "Task",
           "parse_options", "with_lm", "data_folder", "name_list", "masked_mse", "masked_bce",
           "node_label_mask", "graph_label_mask", "node_predictions", "graph_predictions",
           "concatenate_predictions", "regression_metrics", "classification_metrics", "label_scale",
           "standardized_loss", "standardized_predictions", "StandardizedRegression", "DB5Complexes",
           "validate_task"]

SPLITS = ("train", "val", "test")
HEADS = ("node", "graph")
DEFAULT_DATA_ROOT = os.path.join("..", "shared", "data")


@dataclasses.dataclass(frozen=True)
class Inputs:
  """What a task reads besides its options.

  Attributes:
    data_root: the data folder; a task's files default to folders under it.
    graph_options: keyword arguments of `graph.residue_graph` (edges, k, radius, ...).
    lm: the language-model features (`jaxgeo.lm.Features`), or None when the network is not
      fused with a language model.
  """
  data_root: pathlib.Path = pathlib.Path(DEFAULT_DATA_ROOT)
  graph_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  lm: lm_features.Features | None = None


@dataclasses.dataclass(frozen=True)
class Splits:
  """Train / validation / test examples: lists of single-graph numpy `jraph.GraphsTuple`s
  with their labels inside (see the module docstring)."""
  train: list
  val: list
  test: list

  def sizes(self) -> dict[str, int]:
    return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}


@dataclasses.dataclass(frozen=True)
class Examples:
  """One split's graphs and a JSON-ready summary of how they were made (skips, counts)."""
  graphs: list
  info: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Dataset:
  """What `Task.load` returns.

  Attributes:
    splits: the examples of each split.
    stats: plain data the loss / predictions / metrics need from the data (e.g. pos_weight,
      label_mean, label_std), computed from the training split; passed back explicitly.
    info: per-split summaries (JSON-ready), for logs.
  """
  splits: Splits
  stats: Mapping[str, float]
  info: Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class NoOptions:
  """A task without options."""


def _check_type(task: str, name: str, default: Any, value: Any) -> Any:
  """`value` for option `name`, checked against the type of its default."""
  where = f"task.{name}={value!r}"
  if isinstance(default, bool):
    if isinstance(value, bool):
      return value
    expected = "true or false"
  elif isinstance(default, int):
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
      return int(value)
    expected = "an integer"
  elif isinstance(default, float):
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
      return float(value)
    expected = "a number"
  elif isinstance(default, str):
    if isinstance(value, str):
      return value
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
      return ",".join(value)
    expected = "a string"
  else:
    return value
  raise ConfigError(f"{where}: task {task!r} expects {expected} (default {default!r})")


def parse_options(options_class: type, section: Mapping[str, Any] | None, task: str):
  """The frozen options dataclass of a task from a config's `task` section.

  The `name` key is ignored; None values keep the default. Raises ConfigError naming unknown
  keys (and listing the known ones) and values of the wrong type, so that a typo in a config
  file or a `--set task.x=...` does not pass silently.
  """
  if hasattr(section, "to_dict"):
    section = section.to_dict()
  section = dict(section or {})
  section.pop("name", None)
  fields = {f.name: f for f in dataclasses.fields(options_class)}
  unknown = sorted(set(section) - set(fields))
  if unknown:
    raise ConfigError(f"task: unknown option(s) {', '.join(unknown)} for task {task!r} "
                      f"(known: {', '.join(sorted(fields)) or 'none'})")
  defaults = options_class()
  kwargs = {k: _check_type(task, k, getattr(defaults, k), v)
            for k, v in section.items() if v is not None}
  return options_class(**kwargs)


class Task(abc.ABC):
  """A learning task. Subclasses set the class attributes and implement `examples`, `loss`
  and `metrics` (and `stats` when the loss needs something from the training data).

  Attributes:
    name: the registry name (`tasks.get_task(name)`).
    head: "node" (per-node outputs, `outputs["node"] [N, out_dim]`) or "graph"
      (`outputs["graph"] [G, out_dim]`).
    out_dim: outputs per node / graph.
    primary_metric: the key of `metrics()` used for early stopping, plateau and "best".
    higher_is_better: the direction of `primary_metric`.
    Options: the frozen dataclass of the task's options (`config.task.*`).
  """
  name: str = ""
  head: str = "graph"
  out_dim: int = 1
  primary_metric: str = ""
  higher_is_better: bool = True
  Options: type = NoOptions

  # -- options ---------------------------------------------------------------------------------
  def options(self, section: Mapping[str, Any] | None = None):
    """The task's options from a config's `task` section (see `parse_options`)."""
    return parse_options(self.Options, section, self.name)

  def out_dim_for(self, options) -> int:
    """Outputs per node / graph under `options` (default: the class's `out_dim`)."""
    del options
    return self.out_dim

  def default_options(self) -> dict[str, Any]:
    """Every option with its default (what an experiment config's `task` section holds)."""
    return dataclasses.asdict(self.Options())

  # -- data ------------------------------------------------------------------------------------
  @abc.abstractmethod
  def examples(self, split: str, options, inputs: Inputs) -> list | Examples:
    """The labelled examples of one split ("train", "val" or "test"): a list of
    single-graph GraphsTuples, or `Examples(graphs, info)`. Raises DataError naming a
    missing file or entry."""

  def stats(self, options, train: Sequence[jraph.GraphsTuple]) -> dict[str, float]:
    """What the loss and metrics need from the data, from the training split (default:
    nothing)."""
    del options, train
    return {}

  def load(self, options, inputs: Inputs) -> Dataset:
    """Every split's examples, checked non-empty, and the stats from the training split."""
    graphs, info = {}, {}
    for split in SPLITS:
      out = self.examples(split, options, inputs)
      if not isinstance(out, Examples):
        out = Examples(list(out))
      if not out.graphs:
        raise DataError(f"task {self.name!r}: the {split} split is empty")
      graphs[split] = list(out.graphs)
      info[split] = {"graphs": len(out.graphs),
                     "nodes": int(sum(int(g.n_node[0]) for g in out.graphs)), **out.info}
    splits = Splits(graphs["train"], graphs["val"], graphs["test"])
    stats = {k: float(v) for k, v in self.stats(options, splits.train).items()}
    return Dataset(splits, stats, {"splits": info, "stats": stats})

  def required_paths(self, options, inputs: Inputs) -> list[tuple[str, str]]:
    """(path, what) pairs of files / folders the task reads, for `launch.sh`'s environment
    check (`jaxgeo train --check-env`). Default: none (generated data)."""
    del options, inputs
    return []

  def sequences(self, options, inputs: Inputs) -> list[str] | None:
    """The chain sequences whose embeddings the task reads, when cheap to list without
    building graphs (used by `jaxgeo embed --config` and the environment check); None when
    unknown."""
    del options, inputs
    return None

  # -- outputs ---------------------------------------------------------------------------------
  @abc.abstractmethod
  def loss(self, outputs: dict, batch: jraph.GraphsTuple, stats: Mapping[str, float]
           ) -> "jax.Array":
    """Scalar loss (jnp, traced inside jit) over the real, labelled nodes / graphs only."""

  def predictions(self, outputs: dict, batch: jraph.GraphsTuple, stats: Mapping[str, float]
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(y_true, y_pred, group) of the real (labelled) nodes or graphs of a padded batch,
    as host numpy arrays: [M] float32, [M] (or [M, out_dim]) float32, [M] int32."""
    del stats
    if self.head == "node":
      return node_predictions(outputs, batch)
    return graph_predictions(outputs, batch)

  @abc.abstractmethod
  def metrics(self, y_true: np.ndarray, y_pred: np.ndarray, group: np.ndarray,
              stats: Mapping[str, float]) -> dict[str, float]:
    """Metrics over a whole split (the concatenated `predictions` of its batches); must
    contain `primary_metric`."""


# --- helpers for task implementations --------------------------------------------------------

def with_lm(graph: jraph.GraphsTuple, protein, inputs: Inputs, rows: np.ndarray | None = None
            ) -> jraph.GraphsTuple:
  """`graph` with `nodes["lm"]` = the protein's language-model rows (or `rows` when given),
  when `inputs.lm` is set; otherwise unchanged."""
  if inputs.lm is None:
    return graph
  return lm_features.attach(graph, inputs.lm.rows(protein) if rows is None else rows)


def data_folder(inputs: Inputs, value: str | os.PathLike | None, subfolder: str
                ) -> pathlib.Path:
  """`value` when set, else `<data root>/<subfolder>`."""
  if value:
    return pathlib.Path(os.path.expanduser(str(value)))
  return pathlib.Path(inputs.data_root) / subfolder


def name_list(value: Any, what: str) -> list[str]:
  """"a,b" or ["a", "b"] -> ["a", "b"] (whitespace stripped, empties dropped)."""
  if isinstance(value, str):
    return [v.strip() for v in value.split(",") if v.strip()]
  if isinstance(value, (list, tuple)):
    return [str(v).strip() for v in value if str(v).strip()]
  raise ConfigError(f"{what}={value!r}: expected names separated by commas")


def masked_mse(pred: "jax.Array", label: "jax.Array", mask: "jax.Array") -> "jax.Array":
  """Mean squared error over mask. pred: [M] or [M, 1]; label: [M]; mask: [M] bool.
  -> scalar (0 when nothing is masked in)."""
  import jax.numpy as jnp
  pred = jnp.reshape(pred, label.shape).astype(jnp.float32)
  err = jnp.where(mask, (pred - label.astype(jnp.float32)) ** 2, 0.0)
  return jnp.sum(err) / jnp.maximum(jnp.sum(mask), 1)


def masked_bce(logits: "jax.Array", label: "jax.Array", mask: "jax.Array",
               pos_weight: float = 1.0) -> "jax.Array":
  """Binary cross-entropy with logits over mask. logits: [M] or [M, 1]; label: [M] in {0,1};
  mask: [M] bool. -> scalar."""
  import jax
  import jax.numpy as jnp
  logits = jnp.reshape(logits, label.shape).astype(jnp.float32)
  label = label.astype(jnp.float32)
  loss = -(pos_weight * label * jax.nn.log_sigmoid(logits)
           + (1.0 - label) * jax.nn.log_sigmoid(-logits))
  return jnp.sum(jnp.where(mask, loss, 0.0)) / jnp.maximum(jnp.sum(mask), 1)


def node_label_mask(batch: jraph.GraphsTuple) -> Any:
  """[N] bool: real nodes that have a label (jnp inside jit, numpy on the host)."""
  import jax.numpy as jnp
  node_mask = batching.masks(batch)[0]
  if "label_mask" in batch.nodes:
    if isinstance(node_mask, np.ndarray):
      return node_mask & np.asarray(batch.nodes["label_mask"], bool)
    return node_mask & jnp.asarray(batch.nodes["label_mask"], bool)
  return node_mask


def graph_label_mask(batch: jraph.GraphsTuple) -> Any:
  """[G] bool: real graphs that have a label (jnp inside jit, numpy on the host)."""
  import jax.numpy as jnp
  graph_mask = batching.masks(batch)[2]
  globals_ = batch.globals or {}
  if "label_mask" in globals_:
    if isinstance(graph_mask, np.ndarray):
      return graph_mask & np.asarray(globals_["label_mask"], bool)
    return graph_mask & jnp.asarray(globals_["label_mask"], bool)
  return graph_mask


def _squeeze(pred: np.ndarray) -> np.ndarray:
  pred = np.asarray(pred, np.float32)
  return pred[:, 0] if pred.ndim == 2 and pred.shape[1] == 1 else pred


def _to_numpy(batch: jraph.GraphsTuple) -> jraph.GraphsTuple:
  import jax
  return jax.tree_util.tree_map(np.asarray, batch)


def node_predictions(outputs: dict, batch: jraph.GraphsTuple
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(y_true [M], y_pred [M] (or [M, out]), group [M]) of the real labelled nodes (host)."""
  batch = _to_numpy(batch)
  mask = node_label_mask(batch)
  group_g = np.asarray((batch.globals or {}).get(
      "group", np.zeros(batch.n_node.shape[0], np.int32)), np.int32)
  group = np.repeat(group_g.reshape(-1), np.asarray(batch.n_node))
  pred = _squeeze(np.asarray(outputs["node"]))
  return (np.asarray(batch.nodes["label"], np.float32)[mask], pred[mask], group[mask])


def graph_predictions(outputs: dict, batch: jraph.GraphsTuple
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(y_true [M], y_pred [M] (or [M, out]), group [M]) of the real labelled graphs (host)."""
  batch = _to_numpy(batch)
  mask = graph_label_mask(batch)
  globals_ = batch.globals or {}
  group = np.asarray(globals_.get("group", np.zeros(mask.shape[0], np.int32)), np.int32)
  pred = _squeeze(np.asarray(outputs["graph"]))
  return (np.asarray(globals_["label"], np.float32).reshape(mask.shape[0], -1)[:, 0][mask],
          pred[mask], group.reshape(-1)[mask])


def concatenate_predictions(parts: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]]
                            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Joins per-batch (y_true, y_pred, group) triples into one per split."""
  if not parts:
    return (np.zeros(0, np.float32), np.zeros(0, np.float32), np.zeros(0, np.int32))
  return tuple(np.concatenate([p[i] for p in parts]) for i in range(3))  # type: ignore


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray,
                       group: np.ndarray) -> dict[str, float]:
  """Global and per-group (mean over groups, "per target") correlations and errors.

  y_true [M], y_pred [M] (or [M, 1]), group [M] -> {pearson, spearman, kendall, rmse, mae,
  pearson_per_target, spearman_per_target, kendall_per_target, n}.
  """
  y_pred = np.asarray(y_pred, np.float64).reshape(np.asarray(y_true).shape[0], -1)[:, 0]
  out = {name: regression.METRICS[name](y_true, y_pred)
         for name in ("pearson", "spearman", "kendall", "rmse", "mae")}
  for name in ("pearson", "spearman", "kendall"):
    out[f"{name}_per_target"] = regression.per_group(name, y_true, y_pred, group)
  out["n"] = float(len(y_true))
  return out


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray,
                           group: np.ndarray) -> dict[str, float]:
  """AUROC / AUPRC pooled and mean per group of per-node scores ([M] each)."""
  y_pred = np.asarray(y_pred, np.float64).reshape(y_true.shape[0], -1)[:, 0]
  return {
      "auroc": classification.auroc(y_true, y_pred),
      "auroc_per_complex": classification.per_group("auroc", y_true, y_pred, group),
      "auprc": classification.auprc(y_true, y_pred),
      "auprc_per_complex": classification.per_group("auprc", y_true, y_pred, group),
      "positive_fraction": float(np.mean(y_true)) if len(y_true) else float("nan"),
      "n": float(len(y_true)),
  }


# Graph regression with standardized outputs: for labels far from 0 (e.g. -10 kcal/mol) the
# network's output is read as a standardized value, y = output * std + mean, with the training
# split's label mean and std (`label_scale`, returned as stats by the task). Labels in the
# graphs stay in their physical unit; the loss is the MSE of the standardized values and the
# predictions are in the label's unit, so metrics are too.

def label_scale(train: Sequence[jraph.GraphsTuple], enabled: bool = True) -> dict[str, float]:
  """{"label_mean", "label_std"} of the graph labels of `train` ({0, 1} when disabled)."""
  labels = np.array([float(g.globals["label"][0]) for g in train], np.float64)
  if not enabled or labels.size == 0:
    return {"label_mean": 0.0, "label_std": 1.0}
  std = float(labels.std())
  return {"label_mean": float(labels.mean()), "label_std": std if std > 1e-6 else 1.0}


def standardized_loss(outputs: dict, batch: jraph.GraphsTuple, stats: Mapping[str, float]):
  """MSE of the graph outputs against the standardized labels."""
  label = (batch.globals["label"] - stats["label_mean"]) / stats["label_std"]
  return masked_mse(outputs["graph"], label, graph_label_mask(batch))


def standardized_predictions(outputs: dict, batch: jraph.GraphsTuple,
                             stats: Mapping[str, float]):
  """(y_true, y_pred, group) with the outputs mapped back to the label's unit."""
  y_true, y_pred, group = graph_predictions(outputs, batch)
  return (y_true, (y_pred * stats["label_std"] + stats["label_mean"]).astype(np.float32),
          group)


class DB5Complexes:
  """Mixin of the tasks that read DB5.5 complexes by EquiDock's split; their options have
  `data_dir`, `splits_dir`, `limit` (and optionally `bound`)."""

  @staticmethod
  def folders(options, inputs: Inputs) -> tuple[pathlib.Path, pathlib.Path]:
    """(DB5.5 folder, splits folder)."""
    data_dir = data_folder(inputs, options.data_dir, "db5.5")
    splits_dir = (data_folder(inputs, options.splits_dir, "") if options.splits_dir
                  else data_dir / "splits")
    return data_dir, splits_dir

  def split_ids(self, split: str, options, inputs: Inputs) -> list[str]:
    """The complex ids of one split (the first `options.limit` when set)."""
    data_dir, splits_dir = self.folders(options, inputs)
    return db5.limit_ids(db5.read_split(data_dir, split, splits_dir), options.limit)

  def required_paths(self, options, inputs) -> list[tuple[str, str]]:
    data_dir, splits_dir = self.folders(options, inputs)
    return [(str(data_dir / "structures"), "DB5.5 structures"),
            (str(splits_dir), "DB5.5 split files")]

  def sequences(self, options, inputs) -> list[str]:
    """Chain sequences of every complex of every split (reads the structures)."""
    data_dir, _ = self.folders(options, inputs)
    out = []
    for split in SPLITS:
      for pdb_id in self.split_ids(split, options, inputs):
        for protein in db5.load_complex(data_dir, pdb_id, getattr(options, "bound", True)):
          out.extend(seq for _, seq in lm_features.chain_segments(protein))
    return sorted(set(out))


class StandardizedRegression:
  """Mixin for graph-regression tasks whose options have `standardize`: the stats are the
  training split's label scale and the network's output is read as a standardized label
  (`label_scale`, `standardized_loss`, `standardized_predictions`). Stateless."""

  def stats(self, options, train) -> dict[str, float]:
    return label_scale(train, options.standardize)

  def loss(self, outputs, batch, stats):
    return standardized_loss(outputs, batch, stats)

  def predictions(self, outputs, batch, stats):
    return standardized_predictions(outputs, batch, stats)


def validate_task(task: Task) -> Task:
  """Raises ConfigError for a task whose class attributes are inconsistent."""
  if task.head not in HEADS:
    raise ConfigError(f"task {task.name!r}: head={task.head!r}, expected one of {HEADS}")
  if not task.primary_metric:
    raise ConfigError(f"task {task.name!r}: primary_metric is not set")
  if not dataclasses.is_dataclass(task.Options):
    raise ConfigError(f"task {task.name!r}: Options must be a frozen dataclass")
  return task
