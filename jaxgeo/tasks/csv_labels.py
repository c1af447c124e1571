"""Your own data: a folder of structures and a CSV table of labels (`docs/own_data.md`).

Two registered tasks share these options, because a task's head is fixed by its class:

- `csv`: graph-level labels, one CSV row per example (`file`, optional `chains`, labels);
  head "graph";
- `csv_residue`: residue-level labels, one row per residue (`file`, `chain`,
  `residue_number`, optional `insertion_code`, labels); head "node". Residues without a row
  get `nodes["label_mask"] = False` and never count.

    config = jaxgeo.config.paper_experiment("csv", "gvp", "none",
                                            structures="my/pdbs", labels="my/labels.csv")

The kind of label (`task.kind`): "regression" (standardized MSE; RMSE, MAE, Pearson,
Spearman), "binary" (BCE with logits; AUROC, AUPRC, accuracy) or "multiclass" (cross-entropy
over `out_dim_for(options)` classes; accuracy, balanced accuracy); "auto" infers it from the
column (`jaxgeo.datasets.csv_table`) and logs the choice. Since the kind is an option while
`primary_metric` is a class attribute, every kind reports `primary` (higher is better):
Spearman for regression, AUROC for binary, accuracy for multi-class; the metric it copies is
there under its own name too. With a `group` column, per-group means (`*_per_group`).

Splits (`task.split`): the CSV's `split` column, else a seeded random split of the `group`s,
else of the structure files (`seed`, `fractions`). Each split's `info` names its files and
how the split was made (logged by the trainer). Labels live where `tasks/base.py` says:
`globals["label"]` (graph) / `nodes["label"]` (residue), the class index for classification;
`globals["group"]` is the example's group (or file) index across splits.
"""
from __future__ import annotations

import dataclasses
import logging
import pathlib

import numpy as np

from jaxgeo import graph as graph_lib
from jaxgeo import io, structure
from jaxgeo.datasets import csv_table
from jaxgeo.errors import ConfigError, DataError, StructureError
from jaxgeo.lm.features import chain_segments
from jaxgeo.metrics import classification, regression
from jaxgeo.tasks import base

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class CsvOptions:
  """Options of `config.task` (paths relative to the working directory)."""
  structures: str = ""          # the folder of structure files named in the CSV's `file`
  labels: str = ""              # the CSV file
  label: str = ""               # the label column; "": the only non-reserved column
  kind: str = "auto"            # auto | regression | binary | multiclass
  classes: str = ""             # class names in index order ("a,b,c"); "": sorted values
  split: str = "auto"           # auto | column | group | file
  seed: int = 0                 # random splits
  fractions: str = "0.8,0.1,0.1"   # random splits: train,val,test
  on_bad_row: str = "error"     # error | skip (rows that cannot be used are listed)
  standardize: bool = True      # regression: the network predicts standardized labels
  pos_weight: float = 1.0       # binary: weight of the positive class in the loss

  def __post_init__(self):
    for name, allowed in (("kind", csv_table.KINDS), ("on_bad_row", csv_table.ON_BAD_ROW),
                          ("split", ("auto", "column", "group", "file"))):
      if getattr(self, name) not in allowed:
        raise ConfigError(f"task.{name}={getattr(self, name)!r}: expected one of "
                          f"{', '.join(allowed)}")
    csv_table.parse_fractions(self.fractions)
    if self.pos_weight <= 0:
      raise ConfigError(f"task.pos_weight={self.pos_weight}: must be positive")


class CsvTask(base.Task):
  """Graph-level labels from a CSV table (see the module docstring)."""
  name = "csv"
  level = "graph"
  head = "graph"
  out_dim = 1
  primary_metric = "primary"
  higher_is_better = True
  Options = CsvOptions

  # -- the table -------------------------------------------------------------------------------
  def paths(self, options: CsvOptions) -> tuple[pathlib.Path, pathlib.Path]:
    """(structures folder, CSV file); ConfigError when an option is unset."""
    for name in ("structures", "labels"):
      if not getattr(options, name):
        raise ConfigError(f"task.{name}: not set (task {self.name!r} needs the structures "
                          "folder and the CSV file of labels)")
    folder = io.input_folder(pathlib.Path(options.structures).expanduser(),
                             f"task.structures={options.structures!r}", DataError)
    return folder, pathlib.Path(options.labels).expanduser()

  def table(self, options: CsvOptions) -> csv_table.Table:
    """The validated label table."""
    _, labels = self.paths(options)
    return csv_table.read_table(labels, self.level, options.label, options.kind,
                                options.classes, options.on_bad_row)

  def output_kind(self, options: CsvOptions) -> str:
    """"regression", "binary" or "multiclass" (reads the CSV when task.kind is auto)."""
    return options.kind if options.kind != "auto" else self.table(options).kind

  def class_names(self, options: CsvOptions) -> tuple[str, ...]:
    return self.table(options).classes if self.output_kind(options) != "regression" else ()

  def out_dim_for(self, options: CsvOptions) -> int:
    if not options.labels or not pathlib.Path(options.labels).expanduser().is_file():
      return 1   # a config written before the CSV exists; validate() checks again later
    table = self.table(options)
    return len(table.classes) if table.kind == "multiclass" else 1

  def assignment(self, options: CsvOptions, table: csv_table.Table) -> tuple[dict, str]:
    return csv_table.split_units(table, options.seed,
                                 csv_table.parse_fractions(options.fractions), options.split)

  def split_rows(self, split: str, options: CsvOptions, table: csv_table.Table
                 ) -> list[csv_table.Row]:
    assignment, _ = self.assignment(options, table)
    return [r for r in table.rows if csv_table.row_split(r, assignment) == split]

  def group_ids(self, table: csv_table.Table) -> dict[str, int]:
    """Group name (the `group` column, else the file) -> index, across all splits."""
    names = [r.group if table.has_group else r.file for r in table.rows]
    return {name: i for i, name in enumerate(dict.fromkeys(names))}

  def structure_path(self, options: CsvOptions, table: csv_table.Table, row: csv_table.Row
                     ) -> pathlib.Path:
    folder, _ = self.paths(options)
    path = folder / row.file
    if not path.is_file():
      raise DataError(f"{table.path}: line {row.line}: file {row.file!r} is not in "
                      f"{folder}")
    return path

  def required_paths(self, options, inputs) -> list[tuple[str, str]]:
    return [(options.structures, "structure folder"), (options.labels, "label CSV")]

  def sequences(self, options, inputs) -> list[str]:
    table, out = self.table(options), set()
    for row in table.rows:
      path = self.structure_path(options, table, row)
      protein = structure.load_protein(path, row.chains or None)
      out.update(seq for _, seq in chain_segments(protein))
    return sorted(out)

  # -- examples --------------------------------------------------------------------------------
  def examples(self, split, options, inputs) -> base.Examples:
    table = self.table(options)
    assignment, how = self.assignment(options, table)
    rows = [r for r in table.rows if csv_table.row_split(r, assignment) == split]
    groups = self.group_ids(table)
    graphs, files, skipped = self.build(rows, options, inputs, table, groups)
    if split == "train":   # an inferred kind is shown (warning level: printed by default)
      logger.log(logging.WARNING if options.kind == "auto" else logging.INFO,
                 "task %s: %s: label column %r read as %s; split: %s", self.name,
                 table.path, table.label_column, table.choice, how)
      for line in table.skipped:
        logger.warning("task %s: %s: %s", self.name, table.path, line)
    for line in skipped:
      logger.warning("task %s: %s: %s", self.name, table.path, line)
    info = {"csv": table.path, "label": table.label_column, "kind": table.kind,
            "kind_choice": table.choice, "classes": list(table.classes), "split_by": how,
            "files": files, "rows": len(rows),
            "skipped": (list(table.skipped) if split == "train" else []) + skipped}
    return base.Examples(graphs, info)

  def build(self, rows, options, inputs, table, groups):
    """Graph-level: one graph per row. -> (graphs, files, skipped)."""
    graphs, files, skipped = [], [], []
    for row in rows:
      path = self.structure_path(options, table, row)
      try:
        protein = structure.load_protein(path, row.chains or None)
      except StructureError as e:
        if options.on_bad_row != "skip":
          raise DataError(f"{table.path}: line {row.line}: {e}") from None
        skipped.append(f"line {row.line}: {e}")
        continue
      g = graph_lib.residue_graph(protein, **inputs.graph_options)
      g = graph_lib.with_globals(g, label=np.float32(row.label),
                                 group=np.int32(groups[row.group if table.has_group
                                                       else row.file]))
      graphs.append(base.with_lm(g, protein, inputs))
      files.append(row.file + (f":{row.chains}" if row.chains else ""))
    return graphs, files, skipped

  def stats(self, options, train) -> dict[str, float]:
    kind = self.output_kind(options)
    out = {"pos_weight": float(options.pos_weight)}
    if kind == "regression":
      labels = self.train_labels(options, train)
      enabled = bool(options.standardize) and labels.size > 0
      std = float(labels.std()) if enabled else 1.0
      out.update(label_mean=float(labels.mean()) if enabled else 0.0,
                 label_std=std if std > 1e-6 else 1.0)
    return out

  def train_labels(self, options, train) -> np.ndarray:
    """The training labels: from the graphs when given, else from the table (`predict`)."""
    if train:
      return np.array([float(g.globals["label"][0]) for g in train], np.float64)
    return np.array([r.label for r in self.split_rows("train", options, self.table(options))],
                    np.float64)

  # -- outputs ---------------------------------------------------------------------------------
  def _outputs(self, outputs):
    return outputs[self.head]

  def _labels(self, batch):
    return batch.globals["label"]

  def _mask(self, batch):
    return base.graph_label_mask(batch)

  def loss(self, outputs, batch, stats):
    import jax
    import jax.numpy as jnp
    out, label, mask = self._outputs(outputs), self._labels(batch), self._mask(batch)
    if "label_mean" in stats:   # regression
      return base.masked_mse(out, (label - stats["label_mean"]) / stats["label_std"], mask)
    if out.shape[-1] == 1:      # binary
      return base.masked_bce(out, label, mask, stats["pos_weight"])
    logits = out.astype(jnp.float32)
    nll = -jnp.take_along_axis(jax.nn.log_softmax(logits),
                               label.astype(jnp.int32)[:, None], axis=-1)[:, 0]
    return jnp.sum(jnp.where(mask, nll, 0.0)) / jnp.maximum(jnp.sum(mask), 1)

  def predictions(self, outputs, batch, stats):
    y_true, y_pred, group = super().predictions(outputs, batch, stats)
    if "label_mean" in stats:
      y_pred = (y_pred * stats["label_std"] + stats["label_mean"]).astype(np.float32)
    return y_true, y_pred, group

  def metrics(self, y_true, y_pred, group, stats) -> dict[str, float]:
    y_true = np.asarray(y_true, np.float64)
    y_pred = np.asarray(y_pred, np.float64).reshape(len(y_true), -1)
    per_group = len(np.unique(group)) < len(group)
    if "label_mean" in stats:
      return regression_metrics(y_true, y_pred[:, 0], group, per_group)
    if y_pred.shape[1] == 1:
      return binary_metrics(y_true, y_pred[:, 0], group, per_group)
    return multiclass_metrics(y_true, y_pred, group, per_group)


class CsvResidueTask(CsvTask):
  """Residue-level labels from a CSV table (see the module docstring)."""
  name = "csv_residue"
  level = "residue"
  head = "node"

  def build(self, rows, options, inputs, table, groups):
    """Residue-level: one graph per structure file, labelled where the CSV has a row."""
    by_file: dict[str, list] = {}
    for row in rows:
      by_file.setdefault(row.file, []).append(row)
    graphs, files, skipped = [], [], []
    for file, file_rows in by_file.items():
      path = self.structure_path(options, table, file_rows[0])
      try:
        protein = structure.load_protein(path)
      except StructureError as e:
        if options.on_bad_row != "skip":
          raise DataError(f"{table.path}: line {file_rows[0].line}: {e}") from None
        skipped.append(f"lines {', '.join(str(r.line) for r in file_rows)}: {e}")
        continue
      labels, mask, bad = csv_table.check_residues(table, file_rows, protein, options.on_bad_row)
      skipped += bad
      if not mask.any():
        continue   # every row of the file was skipped (listed)
      g = graph_lib.residue_graph(protein, **inputs.graph_options)
      g = graph_lib.with_nodes(g, label=labels, label_mask=mask)
      g = graph_lib.with_globals(g, group=np.int32(
          groups[file_rows[0].group if table.has_group else file]))
      graphs.append(base.with_lm(g, protein, inputs))
      files.append(file)
    return graphs, files, skipped

  def sequences(self, options, inputs) -> list[str]:
    table, out = self.table(options), set()
    for file in table.files:
      row = next(r for r in table.rows if r.file == file)
      protein = structure.load_protein(self.structure_path(options, table, row))
      out.update(seq for _, seq in chain_segments(protein))
    return sorted(out)

  def train_labels(self, options, train) -> np.ndarray:
    if train:
      return np.concatenate([np.asarray(g.nodes["label"], np.float64)[
          np.asarray(g.nodes["label_mask"], bool)] for g in train])
    return super().train_labels(options, train)

  def _labels(self, batch):
    return batch.nodes["label"]

  def _mask(self, batch):
    return base.node_label_mask(batch)


# --- metrics ----------------------------------------------------------------------------------

def regression_metrics(y_true, y_pred, group, per_group: bool) -> dict[str, float]:
  out = {name: regression.METRICS[name](y_true, y_pred)
         for name in ("rmse", "mae", "pearson", "spearman")}
  if per_group:
    for name in ("pearson", "spearman"):
      out[f"{name}_per_group"] = regression.per_group(name, y_true, y_pred, group)
  out["primary"] = out["spearman"]
  out["n"] = float(len(y_true))
  return out


def binary_metrics(y_true, logits, group, per_group: bool) -> dict[str, float]:
  out = {"auroc": classification.auroc(y_true, logits),
         "auprc": classification.auprc(y_true, logits),
         "accuracy": float(np.mean((logits > 0) == (y_true > 0.5))) if len(y_true) else
         float("nan"),
         "positive_fraction": float(np.mean(y_true)) if len(y_true) else float("nan")}
  if per_group:
    out["auroc_per_group"] = classification.per_group("auroc", y_true, logits, group)
    out["auprc_per_group"] = classification.per_group("auprc", y_true, logits, group)
  out["primary"] = out["auroc"]
  out["n"] = float(len(y_true))
  return out


def multiclass_metrics(y_true, logits, group, per_group: bool) -> dict[str, float]:
  if not len(y_true):
    return {"accuracy": float("nan"), "balanced_accuracy": float("nan"),
            "primary": float("nan"), "n": 0.0}
  label = y_true.astype(np.int64)
  correct = logits.argmax(axis=-1) == label
  recalls = [float(correct[label == c].mean()) for c in np.unique(label)]
  out = {"accuracy": float(correct.mean()), "balanced_accuracy": float(np.mean(recalls))}
  if per_group:
    out["accuracy_per_group"] = float(np.mean([correct[group == g].mean()
                                               for g in np.unique(group)]))
  out["primary"] = out["accuracy"]
  out["n"] = float(len(y_true))
  return out
