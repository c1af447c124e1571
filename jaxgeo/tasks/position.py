"""The paper's toy task: where in the sequence is each residue? (per-residue)

Wu et al. (GGNN_Meets_PLM, `main.py TOY`, `gvp/atom3d.py` TOYDataset) ask a network to predict,
for each CA of a chain of L residues, its place in the sequence: a property that
sequence-based language models know and structure-only networks (which see the chain only
through 3D neighbourhoods, with the paper's featurisation) have to infer. Two targets:

- `position` (`dist`): the distance along the sequence to the nearer chain end,
  `min(i, L - i)` for i = 0..L-1, MSE loss, RMSE (primary, lower is better);
- `position_id` (`id`, the paper's default): the residue's index i as a class, cross-entropy
  over `max_length` classes, accuracy (primary). The paper used 9000 classes; chains longer
  than `max_length` (default 512: 99% of DB5.5 chains are shorter) are excluded
  (`long_chains="exclude"`, the default, counted in the dataset's info) or truncated to their
  first `max_length` residues (`long_chains="truncate"`).

Data: every chain of the DB5.5 bound structures (each run of equal chain id of each `_r_b` /
`_l_b` file is one graph), split by complex with EquiDock's split; or every chain of the
structure files of `task.structures` (any folder), split at random by file (`seed`,
fractions 0.8 / 0.1 / 0.1). The paper used ATOM3D RES's test set (not downloadable here),
re-split at random. Use the paper's featurisation (`data.features="paper"`): the rich one's
dihedrals, previous/next vectors and sequence-separation edges give the answer away.

`position_generated` keeps the first tranche's generated chains (helix/strand/loop backbones
with random sequences, `jaxgeo.datasets.synthetic`) as a tiny CPU demo (the `position_demo`
row); it is not a paper row: generated chains are not compact, so the label correlates with
the distance to the centroid.

Labels: `nodes["label"] [N] float32` (the class index for `id`); `globals["group"] [1]
int32` is the chain's index. Metrics (dist): rmse, mae, pearson, spearman,
spearman_per_protein; (id): accuracy, accuracy_within_5 (|predicted - true| <= 5), rmse of
the predicted index.
"""
from __future__ import annotations

import dataclasses
import pathlib

import numpy as np

from jaxgeo import graph as graph_lib
from jaxgeo import io, structure
from jaxgeo.datasets import db5, synthetic
from jaxgeo.errors import ConfigError, DataError
from jaxgeo.lm.features import chain_segments
from jaxgeo.metrics import regression
from jaxgeo.structure import Protein
from jaxgeo.tasks import base

TARGETS = ("dist", "relative", "id")
STRUCTURE_SUFFIXES = (".pdb", ".pdb.gz", ".ent", ".ent.gz", ".cif", ".cif.gz", ".mmcif",
                      ".mmcif.gz")


def position_labels(length: int, target: str = "dist") -> np.ndarray:
  """[L] float32 labels of a chain of `length` residues (see the module docstring)."""
  i = np.arange(length)
  if target == "dist":
    return np.minimum(i, length - i).astype(np.float32)
  if target == "relative":
    return (i / max(length - 1, 1)).astype(np.float32)
  if target == "id":
    return i.astype(np.float32)
  raise ConfigError(f"task.target={target!r}: expected one of {TARGETS}")


# --- real chains ------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class PositionOptions:
  """Options of `config.task` ("" / 0: the default noted)."""
  data_dir: str = ""          # DB5.5 folder; "": <data root>/db5.5
  splits_dir: str = ""        # "": <data_dir>/splits
  structures: str = ""        # a folder of structure files instead of DB5.5 (random split)
  seed: int = 0               # the random split of `structures`
  limit: int = 0              # first N complexes (files) of each split; 0: all
  min_length: int = 10        # shorter chains are excluded
  max_length: int = 512       # position_id: classes; longer chains per `long_chains`
  long_chains: str = "exclude"   # "exclude" or "truncate" (position_id only)

  def __post_init__(self):
    if self.long_chains not in ("exclude", "truncate"):
      raise ConfigError(f"task.long_chains={self.long_chains!r}: expected 'exclude' or "
                        "'truncate'")
    if not 2 <= self.min_length <= self.max_length:
      raise ConfigError(f"task.min_length={self.min_length}, task.max_length="
                        f"{self.max_length}: need 2 <= min_length <= max_length")


def structure_files(folder: pathlib.Path) -> list[pathlib.Path]:
  """The structure files of a folder, sorted. None -> DataError."""
  io.input_folder(folder, f"task.structures={str(folder)!r}", DataError)
  files = sorted(p for p in folder.iterdir()
                 if p.is_file() and p.name.lower().endswith(STRUCTURE_SUFFIXES))
  if not files:
    raise DataError(f"{folder}: no structure files ({', '.join(STRUCTURE_SUFFIXES)})")
  return files


def random_split(names: list, seed: int, fractions=(0.8, 0.1, 0.1)) -> dict[str, list]:
  """A seeded random split of `names` into train / val / test (each non-empty when there are
  at least three names)."""
  order = list(np.random.default_rng(seed).permutation(len(names)))
  n_val = max(1, int(round(fractions[1] * len(names))))
  n_test = max(1, int(round(fractions[2] * len(names))))
  n_train = len(names) - n_val - n_test
  pick = lambda idx: [names[i] for i in sorted(idx)]
  return {"train": pick(order[:n_train]), "val": pick(order[n_train:n_train + n_val]),
          "test": pick(order[n_train + n_val:])}


def chains_of(protein: Protein) -> list[Protein]:
  """Each run of equal chain id of a Protein as its own Protein."""
  out, start = [], 0
  for _, seq in chain_segments(protein):
    out.append(protein.take(np.arange(start, start + len(seq))))
    start += len(seq)
  return out


class PositionTask(base.Task):
  """Distance of each residue to the nearer chain end, on real chains (node regression)."""
  name = "position"
  Options = PositionOptions
  head = "node"
  out_dim = 1
  primary_metric = "rmse"
  higher_is_better = False
  target = "dist"

  def sources(self, split: str, options: PositionOptions, inputs: base.Inputs
              ) -> list[pathlib.Path]:
    """The structure files of one split."""
    if options.structures:
      files = structure_files(pathlib.Path(options.structures).expanduser())
      return db5.limit_ids(random_split(files, options.seed)[split], options.limit)
    data_dir = base.data_folder(inputs, options.data_dir, "db5.5")
    splits_dir = (base.data_folder(inputs, options.splits_dir, "") if options.splits_dir
                  else data_dir / "splits")
    out = []
    for pdb_id in db5.limit_ids(db5.read_split(data_dir, split, splits_dir), options.limit):
      out.extend(db5.complex_files(data_dir, pdb_id, bound=True))
    return out

  def chains(self, split: str, options: PositionOptions, inputs: base.Inputs
             ) -> tuple[list[Protein], dict]:
    """The chains of one split that the task uses, and what was left out."""
    chains, short, long_, truncated = [], 0, 0, 0
    for path in self.sources(split, options, inputs):
      for chain in chains_of(structure.load_protein(path)):
        if len(chain) < options.min_length:
          short += 1
          continue
        if self.target == "id" and len(chain) > options.max_length:
          if options.long_chains == "exclude":
            long_ += 1
            continue
          chain = chain.take(np.arange(options.max_length))
          truncated += 1
        chains.append(chain)
    return chains, {"excluded_short": short, "excluded_long": long_, "truncated": truncated}

  def required_paths(self, options, inputs) -> list[tuple[str, str]]:
    if options.structures:
      return [(options.structures, "structure folder")]
    data_dir = base.data_folder(inputs, options.data_dir, "db5.5")
    return [(str(data_dir / "structures"), "DB5.5 structures"),
            (str(data_dir / "splits"), "DB5.5 split files")]

  def sequences(self, options, inputs) -> list[str]:
    out = set()
    for split in base.SPLITS:
      out.update(c.sequence for c in self.chains(split, options, inputs)[0])
    return sorted(out)

  def examples(self, split, options, inputs) -> base.Examples:
    chains, info = self.chains(split, options, inputs)
    graphs = []
    for index, chain in enumerate(chains):
      g = graph_lib.residue_graph(chain, **inputs.graph_options)
      g = graph_lib.with_nodes(g, label=position_labels(len(chain), self.target))
      g = graph_lib.with_globals(g, group=np.int32(index))
      graphs.append(base.with_lm(g, chain, inputs))
    return base.Examples(graphs, {"chains": len(chains), **info})

  def loss(self, outputs, batch, stats):
    return base.masked_mse(outputs["node"], batch.nodes["label"], base.node_label_mask(batch))

  def metrics(self, y_true, y_pred, group, stats) -> dict[str, float]:
    return dist_metrics(y_true, y_pred, group)


class PositionIdTask(PositionTask):
  """The residue's index in its chain as a class, on real chains (node classification)."""
  name = "position_id"
  primary_metric = "accuracy"
  higher_is_better = True
  target = "id"

  def out_dim_for(self, options: PositionOptions) -> int:
    return options.max_length

  def loss(self, outputs, batch, stats):
    import jax
    import jax.numpy as jnp
    logits = outputs["node"].astype(jnp.float32)
    label = batch.nodes["label"].astype(jnp.int32)
    mask = base.node_label_mask(batch)
    nll = -jnp.take_along_axis(jax.nn.log_softmax(logits), label[:, None], axis=-1)[:, 0]
    return jnp.sum(jnp.where(mask, nll, 0.0)) / jnp.maximum(jnp.sum(mask), 1)

  def metrics(self, y_true, y_pred, group, stats) -> dict[str, float]:
    y_true = np.asarray(y_true, np.int64)
    pred = np.asarray(y_pred).reshape(len(y_true), -1).argmax(axis=-1)
    if not len(y_true):
      return {"accuracy": float("nan"), "accuracy_within_5": float("nan"),
              "rmse_index": float("nan")}
    return {"accuracy": float(np.mean(pred == y_true)),
            "accuracy_within_5": float(np.mean(np.abs(pred - y_true) <= 5)),
            "rmse_index": regression.rmse(y_true.astype(np.float64), pred.astype(np.float64))}


def dist_metrics(y_true, y_pred, group) -> dict[str, float]:
  """RMSE (primary), MAE, correlations, mean within-chain Spearman."""
  return {
      "rmse": regression.rmse(y_true, y_pred),
      "mae": regression.mae(y_true, y_pred),
      "pearson": regression.pearson(y_true, y_pred),
      "spearman": regression.spearman(y_true, y_pred),
      "spearman_per_protein": regression.per_group("spearman", y_true, y_pred, group),
  }


# --- generated chains (a CPU demo) ----------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class GeneratedPositionOptions:
  """Options of `config.task`."""
  target: str = "dist"
  num_train: int = 800
  num_val: int = 100
  num_test: int = 100
  min_length: int = 50
  max_length: int = 300
  seed: int = 0

  def __post_init__(self):
    if self.target not in ("dist", "relative"):
      raise ConfigError(f"task.target={self.target!r}: expected 'dist' or 'relative'")
    if not 3 <= self.min_length <= self.max_length:
      raise ConfigError(f"task.min_length={self.min_length}, task.max_length="
                        f"{self.max_length}: need 3 <= min_length <= max_length")
    for split in ("num_train", "num_val", "num_test"):
      if getattr(self, split) < 1:
        raise ConfigError(f"task.{split}={getattr(self, split)}: must be at least 1")


def generate_proteins(options: GeneratedPositionOptions) -> list:
  """The generated proteins of all splits, in order train, val, test (deterministic)."""
  rng = np.random.default_rng(options.seed)
  total = options.num_train + options.num_val + options.num_test
  lengths = rng.integers(options.min_length, options.max_length + 1, total)
  return [synthetic.random_protein(int(n), rng, source=f"position_{i}")
          for i, n in enumerate(lengths)]


def split_proteins(split: str, options: GeneratedPositionOptions) -> list:
  """The generated proteins of one split."""
  proteins = generate_proteins(options)
  a, b = options.num_train, options.num_train + options.num_val
  return {"train": proteins[:a], "val": proteins[a:b], "test": proteins[b:]}[split]


class GeneratedPositionTask(base.Task):
  """The position task on generated chains (a CPU demo; see the module docstring)."""
  name = "position_generated"
  Options = GeneratedPositionOptions
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
    return dist_metrics(y_true, y_pred, group)
