"""Task `docking`: rigid protein-protein docking on DB5.5 with EquiDock's IEGMN.

Data: DB5.5 bound structures (`jaxgeo.datasets.db5`), EquiDock's split (203 / 25 / 25
complexes). Each example is ONE graph holding both partners (`nets.iegmn.pair_graph`): the
ligand randomly rotated and translated away from its bound pose, the receptor as bound; so
pairs batch through `jaxgeo.batching` like any other graph. The ligand's motion is seeded
per (task.seed, split, complex id[, pose]) so that val / test inputs are the same in every
run; `train_poses > 1` gives each training complex that many different random poses
(augmentation; EquiDock draws a new pose every epoch).

Node inputs: residue types, or the language-model rows of each partner (`inputs.lm`,
fused by the network's fusion mode), plus EquiDock's surface features.

Loss: `nets.docking_losses.docking_loss` = w_mse * ligand CA MSE + w_ot * keypoint OT loss
+ w_int * non-intersection loss. EquiDock trains with (w_mse, w_ot, w_int) = (1, 1, 10)
(its `pocket_ot_loss_weight`, `intersection_loss_weight` defaults). Our defaults are
(1, 0.01, 1): with EquiDock's weights the OT and non-intersection terms dominate the
pose term (the true complexes themselves pay ~1.8 of non-intersection loss on CA points),
and a small model then fits keypoints on the pocket rather than the pose (3-5 A after 300
steps on three complexes, where (1, 0.01, 1) reaches < 1 A; tests/test_nets_iegmn.py).
Set `task.ot_weight=1 task.intersection_weight=10` for EquiDock's.

Outputs -> metrics: `predictions` computes, on the host, each real pair's EquiDock complex
RMSD, interface RMSD (`metrics.docking`, CA atoms of the predicted complex: the ligand
moved by the predicted (R, t), the receptor as given, against the bound complex) and
ligand RMSD, and returns them as y_pred [M, 3] (columns `PREDICTION_COLUMNS`) with y_true
zeros [M] and group = the complex id; `metrics` summarises them per split (median / mean).
The primary metric is the median complex RMSD (lower is better): with
`train.monitor="metric"` (the docking rows) the trainer early-stops on it, as EquiDock
selects its model on the validation complex RMSD.
"""
from __future__ import annotations

import dataclasses
import logging
import zlib
from collections.abc import Mapping

import jraph
import numpy as np

from jaxgeo import graph as graph_lib
from jaxgeo.datasets import db5
from jaxgeo.errors import ConfigError
from jaxgeo.metrics import docking
from jaxgeo.structure import Protein
from jaxgeo.tasks import base

logger = logging.getLogger(__name__)

PREDICTION_COLUMNS = ("complex_rmsd", "interface_rmsd", "ligand_rmsd")
_SPLIT_INDEX = {"train": 0, "val": 1, "test": 2}


@dataclasses.dataclass(frozen=True)
class DockingOptions:
  """Options of `config.task` ("" / 0: the default noted). Loss weights: see the module
  docstring (EquiDock: 1, 1, 10; ours 1, 0.01, 1)."""
  data_dir: str = ""                 # DB5.5 folder; "": <data root>/db5.5
  splits_dir: str = ""               # "": <data_dir>/splits
  limit: int = 0                     # first N complexes of each split; 0: all
  max_train_residues: int = 0        # drop training pairs with more residues; 0: keep all
  seed: int = 0                      # ligand-pose seed
  train_poses: int = 1               # random ligand poses per training complex
  translation_interval: float = 5.0  # EquiDock: the ligand moves by up to 5 A
  orientation: bool = True           # EquiDock's 12 relative-orientation edge features
  ligand_mse_weight: float = 1.0
  ot_weight: float = 0.01
  intersection_weight: float = 1.0
  intersection_sigma: float = 25.0
  intersection_surface: float = 10.0
  sinkhorn_epsilon: float = 0.01
  sinkhorn_iterations: int = 100

  def __post_init__(self):
    if self.train_poses < 1:
      raise ConfigError(f"task.train_poses={self.train_poses}: must be at least 1")
    if self.translation_interval < 0:
      raise ConfigError(f"task.translation_interval={self.translation_interval}: must be >= 0")
    for name in ("ligand_mse_weight", "ot_weight", "intersection_weight"):
      if getattr(self, name) < 0:
        raise ConfigError(f"task.{name}={getattr(self, name)}: must be >= 0")
    if self.sinkhorn_iterations < 1 or self.sinkhorn_epsilon <= 0:
      raise ConfigError("task.sinkhorn_iterations must be >= 1 and task.sinkhorn_epsilon > 0")


def pose_seed(seed: int, split: str, pdb_id: str, pose: int = 0) -> list[int]:
  """The numpy seed of a complex's ligand pose: fixed by (seed, split, id, pose)."""
  return [int(seed), _SPLIT_INDEX.get(split, 3), zlib.crc32(pdb_id.encode()), int(pose)]


def docking_example(ligand: Protein, receptor: Protein, group: int, rng,
                    options: DockingOptions = DockingOptions(),
                    lm: tuple[np.ndarray, np.ndarray] | None = None,
                    perturb: bool = True) -> jraph.GraphsTuple:
  """One pair graph (`nets.iegmn.pair_graph`) with `globals["group"] [1]`.

  Args:
    ligand, receptor: the partners, ligand in its bound pose (the receptor's frame); for
      inference on an undocked pair, the ligand as given and `perturb=False`.
    group: the complex id within its split.
    rng: seed or Generator of the ligand's random motion.
    lm: (ligand rows [Nl, D], receptor rows [Nr, D]) or None.
  """
  from jaxgeo.nets import iegmn
  g = iegmn.pair_graph(ligand, receptor, rng=rng, translation_interval=options.translation_interval,
                       orientation=options.orientation, perturb=perturb,
                       ligand_lm=None if lm is None else lm[0],
                       receptor_lm=None if lm is None else lm[1])
  return graph_lib.with_globals(g, group=np.int32(group))


def pair_rmsds(x_pred: np.ndarray, x_true: np.ndarray, partner: np.ndarray) -> np.ndarray:
  """[3] (complex, interface, ligand) RMSD of one pair's CA coordinates (EquiDock's)."""
  lig, rec = partner == 0, partner == 1
  pl, pr, tl, tr = x_pred[lig], x_pred[rec], x_true[lig], x_true[rec]
  return np.array([docking.complex_rmsd(pl, pr, tl, tr), docking.interface_rmsd(pl, pr, tl, tr),
                   docking.ligand_rmsd(pl, tl)], np.float64)


def _summary(values: np.ndarray, name: str) -> dict[str, float]:
  values = values[np.isfinite(values)]
  if values.size == 0:
    return {f"{name}_median": float("nan"), f"{name}_mean": float("nan"),
            f"{name}_std": float("nan")}
  return {f"{name}_median": float(np.median(values)), f"{name}_mean": float(np.mean(values)),
          f"{name}_std": float(np.std(values))}


class DockingTask(base.DB5Complexes, base.Task):
  """Rigid docking of DB5.5 pairs: IEGMN outputs a rigid motion of each ligand."""
  name = "docking"
  Options = DockingOptions
  head = "graph"          # unused by the IEGMN (no head); kept for the config checks
  out_dim = 1
  primary_metric = "complex_rmsd_median"
  higher_is_better = False

  def examples(self, split, options, inputs) -> base.Examples:
    from tqdm.auto import tqdm
    data_dir, _ = self.folders(options, inputs)
    names = self.split_ids(split, options, inputs)
    groups = db5.complex_group_ids(*(self.split_ids(s, options, inputs) for s in db5.SPLITS))
    poses = options.train_poses if split == "train" else 1
    graphs, skipped = [], []
    # disable=None: no bar when stderr is not a terminal (a log file, `--no-progress` runs).
    for pdb_id in tqdm(names, desc=f"docking {split}", leave=False, unit="complex",
                       disable=True if len(names) < 20 else None):
      receptor, ligand = db5.load_complex(data_dir, pdb_id, bound=True)
      if (split == "train" and options.max_train_residues
          and len(receptor) + len(ligand) > options.max_train_residues):
        skipped.append(pdb_id)
        continue
      lm = None
      if inputs.lm is not None:
        lm = (inputs.lm.rows(ligand), inputs.lm.rows(receptor))
      for pose in range(poses):
        graphs.append(docking_example(ligand, receptor, groups[pdb_id],
                                      pose_seed(options.seed, split, pdb_id, pose), options, lm))
    info = {"complexes": len(names) - len(skipped), "poses": poses,
            "skipped_too_large": skipped}
    logger.info("docking task, %s split: %s", split, info)
    return base.Examples(graphs, info)

  def stats(self, options, train) -> dict[str, float]:
    """The loss settings (tasks are stateless: the loss reads them from here)."""
    del train
    return {name: float(getattr(options, name)) for name in (
        "ligand_mse_weight", "ot_weight", "intersection_weight", "intersection_sigma",
        "intersection_surface", "sinkhorn_epsilon", "sinkhorn_iterations")}

  def loss(self, outputs, batch, stats):
    from jaxgeo.nets import docking_losses
    config = docking_losses.DockingLossConfig(
        ligand_mse_weight=stats["ligand_mse_weight"], ot_weight=stats["ot_weight"],
        intersection_weight=stats["intersection_weight"],
        intersection_sigma=stats["intersection_sigma"],
        intersection_surface=stats["intersection_surface"],
        sinkhorn_epsilon=stats["sinkhorn_epsilon"],
        sinkhorn_iterations=int(stats["sinkhorn_iterations"]))
    return docking_losses.docking_loss(outputs, batch, config)[0]

  def predictions(self, outputs, batch, stats
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(zeros [M], RMSDs [M, 3] (`PREDICTION_COLUMNS`), group [M]) of the M real pairs of a
    padded batch (host numpy; the RMSDs are computed here, per pair)."""
    del stats
    x_pred = np.asarray(outputs["x_pred"], np.float64)
    x_true = np.asarray(batch.nodes["x_true"], np.float64)
    partner = np.asarray(batch.nodes["partner"])
    n_node = np.asarray(batch.n_node)
    graph_mask = base.graph_label_mask(base._to_numpy(batch))
    group = np.asarray(batch.globals["group"], np.int32).reshape(-1)
    offsets = np.concatenate([[0], np.cumsum(n_node)])
    rows = [pair_rmsds(x_pred[offsets[i]:offsets[i + 1]], x_true[offsets[i]:offsets[i + 1]],
                       partner[offsets[i]:offsets[i + 1]])
            for i in np.flatnonzero(graph_mask)]
    y_pred = (np.stack(rows) if rows else np.zeros((0, len(PREDICTION_COLUMNS)))
              ).astype(np.float32)
    return np.zeros(len(rows), np.float32), y_pred, group[graph_mask]

  def metrics(self, y_true, y_pred, group, stats: Mapping[str, float]) -> dict[str, float]:
    """Median / mean / std over the pairs of complex, interface and ligand RMSD."""
    del y_true, group, stats
    y_pred = np.asarray(y_pred, np.float64).reshape(-1, len(PREDICTION_COLUMNS))
    out = {}
    for i, name in enumerate(PREDICTION_COLUMNS):
      out.update(_summary(y_pred[:, i], name))
    out["n"] = float(y_pred.shape[0])
    return out
