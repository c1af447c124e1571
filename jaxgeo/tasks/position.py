"""The paper's toy task: where in the sequence is each residue? (per-residue regression)

Wu et al. (GGNN_Meets_PLM, `gvp/atom3d.py` TOYDataset with `label='dist'`) ask a network to
predict, for each CA of a chain of L residues, its distance along the sequence to the nearer
chain end, `min(i, L - i)` for i = 0..L-1, with an MSE loss and RMSE as the metric: a
property that sequence-based language models know and structure-only networks (which see
the chain only through 3D neighbourhoods) have to infer. The paper used the structures of
ATOM3D RES; here they are generated (`jaxgeo.datasets.synthetic.random_protein`: helix/strand/loop
backbones with random sequences), so the task needs no data files.

Options (`config.task`, `PositionOptions`):
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

import dataclasses

import numpy as np

from jaxgeo import graph as graph_lib
from jaxgeo.datasets import synthetic
from jaxgeo.errors import ConfigError
from jaxgeo.metrics import regression
from jaxgeo.tasks import base

TARGETS = ("dist", "relative")


def position_labels(length: int, target: str = "dist") -> np.ndarray:
  """[L] float32 labels of a chain of `length` residues (see the module docstring)."""
  i = np.arange(length)
  if target == "dist":
    return np.minimum(i, length - i).astype(np.float32)
  if target == "relative":
    return (i / max(length - 1, 1)).astype(np.float32)
  raise ConfigError(f"task.target={target!r}: expected one of {TARGETS}")


@dataclasses.dataclass(frozen=True)
class PositionOptions:
  """Options of `config.task`."""
  target: str = "dist"
  num_train: int = 800
  num_val: int = 100
  num_test: int = 100
  min_length: int = 50
  max_length: int = 300
  seed: int = 0

  def __post_init__(self):
    if self.target not in TARGETS:
      raise ConfigError(f"task.target={self.target!r}: expected one of {TARGETS}")
    if not 3 <= self.min_length <= self.max_length:
      raise ConfigError(f"task.min_length={self.min_length}, task.max_length="
                        f"{self.max_length}: need 3 <= min_length <= max_length")
    for split in ("num_train", "num_val", "num_test"):
      if getattr(self, split) < 1:
        raise ConfigError(f"task.{split}={getattr(self, split)}: must be at least 1")


def generate_proteins(options: PositionOptions) -> list:
  """The generated proteins of all splits, in order train, val, test (deterministic)."""
  rng = np.random.default_rng(options.seed)
  total = options.num_train + options.num_val + options.num_test
  lengths = rng.integers(options.min_length, options.max_length + 1, total)
  return [synthetic.random_protein(int(n), rng, source=f"position_{i}")
          for i, n in enumerate(lengths)]


def split_proteins(split: str, options: PositionOptions) -> list:
  """The generated proteins of one split."""
  proteins = generate_proteins(options)
  a, b = options.num_train, options.num_train + options.num_val
  return {"train": proteins[:a], "val": proteins[a:b], "test": proteins[b:]}[split]


class PositionTask(base.Task):
  """Per-residue regression of the sequence position (see the module docstring)."""
  name = "position"
  Options = PositionOptions
  head = "node"
  out_dim = 1
  primary_metric = "rmse"
  higher_is_better = False

  def examples(self, split, options, inputs) -> list:
    offset = {"train": 0, "val": options.num_train,
              "test": options.num_train + options.num_val}[split]
    graphs = []
    for index, protein in enumerate(split_proteins(split, options)):
      g = graph_lib.residue_graph(protein, **inputs.graph_options)
      g = graph_lib.with_nodes(g, label=position_labels(len(protein), options.target))
      g = graph_lib.with_globals(g, group=np.int32(offset + index))
      graphs.append(base.with_lm(g, protein, inputs))
    return graphs

  def sequences(self, options, inputs) -> list[str]:
    return [p.sequence for p in generate_proteins(options)]

  def loss(self, outputs, batch, stats):
    return base.masked_mse(outputs["node"], batch.nodes["label"], base.node_label_mask(batch))

  def metrics(self, y_true, y_pred, group, stats) -> dict[str, float]:
    return {
        "rmse": regression.rmse(y_true, y_pred),
        "mae": regression.mae(y_true, y_pred),
        "pearson": regression.pearson(y_true, y_pred),
        "spearman": regression.spearman(y_true, y_pred),
        "spearman_per_protein": regression.per_group("spearman", y_true, y_pred, group),
    }
