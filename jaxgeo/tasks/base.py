"""The task interface: what the trainer needs from a task, and nothing more.

A task turns a dataset into graphs with labels inside them, and model outputs into a loss and
metrics. One subclass per task module (`position.py`, `interface.py`, `quality.py`,
`affinity.py`, `atom3d.py`); `jaxgeo.tasks.get_task(name)` returns an instance.

    class MyTask(Task):
      name = "my_task"; head = "graph"; out_dim = 1
      primary_metric = "spearman"; higher_is_better = True
      def load(self, config, store) -> Splits: ...
      def loss(self, outputs, batch) -> jax.Array: ...          # jnp, inside jit
      def predictions(self, outputs, batch) -> (y_true, y_pred, group)   # numpy, host
      def metrics(self, y_true, y_pred, group) -> dict[str, float]       # numpy, host

Where the labels live (so one `jraph.pad_with_graphs` pads them along with everything else):
- node tasks (`head == "node"`): `nodes["label"] [N] float32`, optionally
  `nodes["label_mask"] [N] bool` (False: the node has no label and never counts);
- graph tasks (`head == "graph"`): `globals["label"] [G] float32` (stored `[1]` in a single
  graph, see `graph.with_globals`), optionally `globals["label_mask"] [G] bool`;
- every example carries `globals["group"] [G] int32`: the id of its target / complex, used by
  per-group metrics ("mean per target"); broadcast to nodes for node tasks.

`load` returns single-graph examples (numpy GraphsTuples, `n_node` of shape [1]) with the same
node/edge/globals keys throughout; when `config.model.fusion.mode != "none"` each graph gets
`nodes["lm"] [N, D]` from the embedding store (`attach_lm` below does it and raises the store's
DataError naming the `jaxgeo embed` command when an entry is missing).

The helpers `masked_mse`, `masked_bce`, `node_predictions` and `graph_predictions` implement
the masking rules, so a task's `loss` / `predictions` are usually one line: padding nodes, the
padding graph and unlabelled nodes never count in a loss or a metric.
"""
from __future__ import annotations

import abc
import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import jraph
import numpy as np

from jaxgeo.errors import ConfigError, DataError

if TYPE_CHECKING:  # pragma: no cover
  import jax
  import ml_collections

  from jaxgeo.lm.store import EmbeddingStore

HEADS = ("node", "graph")


@dataclasses.dataclass(frozen=True)
class Splits:
  """Train / validation / test examples: lists of single-graph numpy `jraph.GraphsTuple`s
  with their labels inside (see the module docstring)."""
  train: list
  val: list
  test: list

  def sizes(self) -> dict[str, int]:
    return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}


class Task(abc.ABC):
  """A learning task. Subclasses set the class attributes and implement the four methods.

  Attributes:
    name: the registry name (`tasks.get_task(name)`).
    head: "node" (per-node outputs, `outputs["node"] [N, out_dim]`) or "graph"
      (`outputs["graph"] [G, out_dim]`).
    out_dim: outputs per node / graph.
    primary_metric: the key of `metrics()` used for early stopping, plateau and "best".
    higher_is_better: the direction of `primary_metric`.
    defaults: the task's options (`config.task.*`) with their defaults; experiment configs
      start from them (`config.paper_experiment`), so `--set task.X=...` works for each.
  """
  name: str = ""
  head: str = "graph"
  out_dim: int = 1
  defaults: dict = {}
  primary_metric: str = ""
  higher_is_better: bool = True

  @abc.abstractmethod
  def load(self, config: "ml_collections.ConfigDict",
           store: "EmbeddingStore | None") -> Splits:
    """Reads the data (or generates it), builds graphs with labels and, when
    `config.model.fusion.mode != "none"`, attaches `nodes["lm"]` from `store`.
    Raises DataError naming the missing file / entry."""

  @abc.abstractmethod
  def loss(self, outputs: dict, batch: jraph.GraphsTuple) -> "jax.Array":
    """Scalar loss (jnp, traced inside jit) over the real, labelled nodes / graphs only."""

  def predictions(self, outputs: dict, batch: jraph.GraphsTuple
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(y_true, y_pred, group) of the real (labelled) nodes or graphs of a padded batch,
    as host numpy arrays: [M] float32, [M] (or [M, out_dim]) float32, [M] int32.
    The default reads the labels as described in the module docstring."""
    if self.head == "node":
      return node_predictions(outputs, batch)
    return graph_predictions(outputs, batch)

  @abc.abstractmethod
  def metrics(self, y_true: np.ndarray, y_pred: np.ndarray, group: np.ndarray
              ) -> dict[str, float]:
    """Metrics over a whole split (the concatenated `predictions` of its batches); must
    contain `primary_metric`."""

  def lm_key(self, config: "ml_collections.ConfigDict") -> tuple[str, int] | None:
    """(model, layer) of the embeddings this task reads, or None without LM fusion."""
    if str(config.model.fusion.mode) == "none":
      return None
    return str(config.lm.model), int(config.lm.layer)

  def required_paths(self, config: "ml_collections.ConfigDict") -> list[tuple[str, str]]:
    """(path, what) pairs of files / folders the task reads, for `launch.sh`'s environment
    check (`jaxgeo train --check-env`). Default: none (generated data)."""
    del config
    return []

  def sequences(self, config: "ml_collections.ConfigDict") -> list[str] | None:
    """The sequences whose embeddings the task needs, when cheap to list without building
    graphs (used by the environment check); None when unknown."""
    del config
    return None


# --- helpers for task implementations --------------------------------------------------------

def attach_lm(graph: jraph.GraphsTuple, sequence: str, config: "ml_collections.ConfigDict",
              store: "EmbeddingStore | None") -> jraph.GraphsTuple:
  """`graph` with `nodes["lm"] [N, D]` from the store when the config fuses LM features
  (otherwise unchanged). Raises DataError when the store is missing or lacks the entry."""
  if str(config.model.fusion.mode) == "none":
    return graph
  if store is None:
    raise DataError(f"model.fusion.mode={config.model.fusion.mode!r} needs an embedding store; "
                    "set lm.store (e.g. --set lm.store=embeddings/) and fill it with "
                    f"`jaxgeo embed --model {config.lm.model}`")
  from jaxgeo.lm.store import attach
  emb = store.get(str(config.lm.model), int(config.lm.layer), sequence)
  return attach(graph, emb)


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
  from jaxgeo import batching
  node_mask = batching.masks(batch)[0]
  if "label_mask" in batch.nodes:
    if isinstance(node_mask, np.ndarray):
      return node_mask & np.asarray(batch.nodes["label_mask"], bool)
    return node_mask & jnp.asarray(batch.nodes["label_mask"], bool)
  return node_mask


def graph_label_mask(batch: jraph.GraphsTuple) -> Any:
  """[G] bool: real graphs that have a label (jnp inside jit, numpy on the host)."""
  import jax.numpy as jnp
  from jaxgeo import batching
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


def _to_numpy(batch: jraph.GraphsTuple) -> jraph.GraphsTuple:
  import jax
  return jax.tree_util.tree_map(np.asarray, batch)


def check_splits(splits: Splits, task_name: str) -> Splits:
  """Raises DataError when a split the trainer needs is empty."""
  for split, items in (("train", splits.train), ("val", splits.val), ("test", splits.test)):
    if not items:
      raise DataError(f"task {task_name!r}: the {split} split is empty")
  return splits


def validate_task(task: Task) -> Task:
  """Raises ConfigError for a task whose class attributes are inconsistent."""
  if task.head not in HEADS:
    raise ConfigError(f"task {task.name!r}: head={task.head!r}, expected one of {HEADS}")
  if not task.primary_metric:
    raise ConfigError(f"task {task.name!r}: primary_metric is not set")
  return task


def concatenate_predictions(parts: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]]
                            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Joins per-batch (y_true, y_pred, group) triples into one per split."""
  if not parts:
    return (np.zeros(0, np.float32), np.zeros(0, np.float32), np.zeros(0, np.int32))
  return tuple(np.concatenate([p[i] for p in parts]) for i in range(3))  # type: ignore
