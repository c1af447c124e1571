"""The paper's toy task: where in the sequence is each residue? (per-residue regression)

Wu et al. (GGNN_Meets_PLM, `gvp/atom3d.py` TOYDataset with `label='dist'`) ask a network to
predict, for each CA of a chain of L residues, its distance along the sequence to the nearer
chain end, `min(i, L - i)` for i = 0..L-1, with an MSE loss and RMSE as the metric: a
property that sequence-based language models know and structure-only networks (which see
the chain only through 3D neighbourhoods) have to infer. The paper used the structures of
ATOM3D RES; here they are generated (`jaxgeo.testing.random_protein`: helix/strand/loop
backbones with random sequences), so the task needs no data files.

Options (`config.task`):
  target        "dist" (the paper: min(i, L - i) residues) or "relative" (i / (L - 1), the
                relative sequence position, in [0, 1])
  num_train, num_val, num_test   generated proteins per split
  min_length, max_length         residues per protein (uniform)
  seed          the generator seed (independent of train.seed)

Labels: `nodes["label"] [N] float32`; `globals["group"] [1] int32` is the protein's index
(per-protein metrics). Metrics: rmse (primary, lower is better), mae, pearson, spearman,
spearman_per_protein (mean over proteins of the within-protein Spearman correlation).
"""
from __future__ import annotations

import ml_collections
import numpy as np

from jaxgeo import graph as graph_lib
from jaxgeo import testing
from jaxgeo.errors import ConfigError
from jaxgeo.metrics import regression
from jaxgeo.tasks import base

TARGETS = ("dist", "relative")
DEFAULTS = {"target": "dist", "num_train": 800, "num_val": 100, "num_test": 100,
            "min_length": 50, "max_length": 300, "seed": 0}


def position_labels(length: int, target: str = "dist") -> np.ndarray:
  """[L] float32 labels of a chain of `length` residues (see the module docstring)."""
  i = np.arange(length)
  if target == "dist":
    return np.minimum(i, length - i).astype(np.float32)
  if target == "relative":
    return (i / max(length - 1, 1)).astype(np.float32)
  raise ConfigError(f"task.target={target!r}: expected one of {TARGETS}")


def task_options(config: ml_collections.ConfigDict) -> dict:
  """The task section with defaults filled in; raises ConfigError for unknown keys."""
  options = dict(DEFAULTS)
  section = config.task.to_dict()
  unknown = sorted(set(section) - set(options) - {"name"})
  if unknown:
    raise ConfigError(f"task: unknown option(s) {', '.join(unknown)} for task 'position' "
                      f"(known: {', '.join(sorted(DEFAULTS))})")
  options.update({k: v for k, v in section.items() if k != "name"})
  if options["target"] not in TARGETS:
    raise ConfigError(f"task.target={options['target']!r}: expected one of {TARGETS}")
  if not 3 <= options["min_length"] <= options["max_length"]:
    raise ConfigError(f"task.min_length={options['min_length']}, task.max_length="
                      f"{options['max_length']}: need 3 <= min_length <= max_length")
  for split in ("num_train", "num_val", "num_test"):
    if int(options[split]) < 1:
      raise ConfigError(f"task.{split}={options[split]}: must be at least 1")
  return options


def generate_proteins(options: dict) -> list:
  """The generated proteins of all splits, in order train, val, test (deterministic)."""
  rng = np.random.default_rng(int(options["seed"]))
  total = int(options["num_train"]) + int(options["num_val"]) + int(options["num_test"])
  lengths = rng.integers(int(options["min_length"]), int(options["max_length"]) + 1, total)
  return [testing.random_protein(int(n), rng, source=f"position_{i}")
          for i, n in enumerate(lengths)]


class PositionTask(base.Task):
  """Per-residue regression of the sequence position (see the module docstring)."""
  name = "position"
  defaults = DEFAULTS
  head = "node"
  out_dim = 1
  primary_metric = "rmse"
  higher_is_better = False

  def load(self, config: ml_collections.ConfigDict, store=None) -> base.Splits:
    options = task_options(config)
    data = config.data
    graphs = []
    for index, protein in enumerate(generate_proteins(options)):
      g = graph_lib.residue_graph(protein, edges=str(data.edges), k=int(data.k),
                                  radius=float(data.radius),
                                  max_neighbors=int(data.max_neighbors))
      g = graph_lib.with_nodes(g, label=position_labels(len(protein), options["target"]))
      g = graph_lib.with_globals(g, group=np.int32(index))
      graphs.append(base.attach_lm(g, protein.sequence, config, store))
    a = int(options["num_train"])
    b = a + int(options["num_val"])
    return base.check_splits(base.Splits(graphs[:a], graphs[a:b], graphs[b:]), self.name)

  def sequences(self, config: ml_collections.ConfigDict) -> list[str]:
    return [p.sequence for p in generate_proteins(task_options(config))]

  def loss(self, outputs, batch):
    return base.masked_mse(outputs["node"], batch.nodes["label"], base.node_label_mask(batch))

  def metrics(self, y_true, y_pred, group) -> dict[str, float]:
    return {
        "rmse": regression.rmse(y_true, y_pred),
        "mae": regression.mae(y_true, y_pred),
        "pearson": regression.pearson(y_true, y_pred),
        "spearman": regression.spearman(y_true, y_pred),
        "spearman_per_protein": regression.per_group("spearman", y_true, y_pred, group),
    }
