"""Readers shared by the structure tasks (interface, quality, affinity, ATOM3D).

DB5.5 (Docking Benchmark 5.5, as packaged by EquiDock; see `../shared/data/README.md`):
  <db5>/structures/XXXX_{r,l}_{b,u}.pdb.gz   receptor / ligand, bound / unbound
  <db5>/splits/{train,val,test}.txt           one complex id a line (EquiDock's split)

Docking results of six methods on the 25 DB5.5 test complexes:
  <docking>/ground_truth/XXXX_{l,r}_b_COMPLEX.pdb.gz
  <docking>/decoys/<method>/XXXX_{l,r}_b_<METHOD>.pdb.gz   (ligand-only methods: `l` only)

Helpers used by every task here:
- `option(config, "task.cutoff", 8.0)`: a config value with a default (ConfigDict or dict).
- `task_options(config, defaults, name)`: the task section with defaults (unknown keys raise).
- `data_folder(config, value, "db5.5")`: an option's folder, else one under the data root.
- `graph_options(config)`: the keyword arguments of `graph.residue_graph` from `config.data`.
- `lm_rows(protein, config, store)`: the per-residue language-model embedding `[L, D]` of a
  (multi-chain) Protein, looked up per chain (each run of equal chain id) by sequence in the
  embedding store, as `jaxgeo embed --structures` writes them; None without LM fusion. A
  missing entry raises the store's DataError, which names the `jaxgeo embed` command.
- `regression_metrics(y_true, y_pred, group)`: global and per-target correlations and errors.
- `StandardizedRegression`: a task mixin that reads graph outputs as standardized labels.
"""
from __future__ import annotations

import os
import pathlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from jaxgeo import structure
from jaxgeo.errors import ConfigError, DataError
from jaxgeo.structure import Protein

SPLITS = ("train", "val", "test")
_REQUIRED = object()
_MISSING = object()

# Folder name -> (file suffix, whether the method also outputs a (moved) receptor).
DOCKING_METHODS: dict[str, tuple[str, bool]] = {
    "attract": ("ATTRACT", True),
    "hdock": ("HDOCK", True),
    "cluspro": ("CLUSPRO", False),
    "patchdock": ("PATCHDOCK", False),
    "equidock": ("EQUIDOCK", False),
    "equidock_no_clashes": ("EQUIDOCK_NO_CLASHES", False),
}


# ------------------------------------------------------------------ config helpers


def option(config: Any, dotted: str, default: Any = _REQUIRED) -> Any:
  """`config.a.b.c` for `dotted="a.b.c"`, or `default` when a level is missing.

  Works on ml_collections ConfigDicts, plain dicts and objects. A value that is present but
  None is returned as None. Without a default a missing value raises ConfigError naming it.
  """
  node = config
  for part in dotted.split("."):
    if isinstance(node, dict) or (hasattr(node, "keys") and hasattr(node, "__getitem__")):
      if part not in node.keys():
        node = _MISSING
        break
      node = node[part]
    elif node is not None and hasattr(node, part):
      node = getattr(node, part)
    else:
      node = _MISSING
      break
  if node is _MISSING:
    if default is _REQUIRED:
      raise ConfigError(f"option {dotted} is not set")
    return default
  return node


def graph_options(config: Any) -> dict:
  """Keyword arguments for `graph.residue_graph` from the config's `data` section
  (`jaxgeo.config`: edges, k, radius, max_neighbors; defaults knn, 30, 8.0, 32).

  -> {"edges", "k", "radius", "max_neighbors"}.
  """
  max_neighbors = option(config, "data.max_neighbors", 32)
  return {
      "edges": str(option(config, "data.edges", "knn")),
      "k": int(option(config, "data.k", 30)),
      "radius": float(option(config, "data.radius", 8.0)),
      "max_neighbors": None if max_neighbors in (None, 0, -1) else int(max_neighbors),
  }


def task_options(config: Any, defaults: dict, task_name: str) -> dict:
  """The `task` section with `defaults` filled in (the `name` key dropped).

  Raises ConfigError naming unknown keys (and the known ones), so a typo in a config file or
  a `--set task.x=...` override does not pass silently.
  """
  section = option(config, "task", {})
  if hasattr(section, "to_dict"):
    section = section.to_dict()
  section = dict(section or {})
  section.pop("name", None)
  unknown = sorted(set(section) - set(defaults))
  if unknown:
    raise ConfigError(f"task: unknown option(s) {', '.join(unknown)} for task {task_name!r} "
                      f"(known: {', '.join(sorted(defaults))})")
  out = dict(defaults)
  out.update({k: v for k, v in section.items() if v is not None})
  return out


def data_folder(config: Any, value: str | os.PathLike | None, subfolder: str) -> pathlib.Path:
  """`value` when set, else `<data root>/<subfolder>` (`jaxgeo.config.data_root`: data.root,
  $JAXGEO_DATA, or ../shared/data)."""
  if value:
    return pathlib.Path(os.path.expanduser(str(value)))
  root = option(config, "data.root", "") or os.environ.get("JAXGEO_DATA", "") or os.path.join(
      "..", "shared", "data")
  return pathlib.Path(os.path.expanduser(str(root))) / subfolder


def name_list(value: Any, what: str) -> list[str]:
  """"a,b" or ["a", "b"] -> ["a", "b"] (whitespace stripped, empties dropped)."""
  if isinstance(value, str):
    return [v.strip() for v in value.split(",") if v.strip()]
  if isinstance(value, (list, tuple)):
    return [str(v).strip() for v in value if str(v).strip()]
  raise ConfigError(f"{what}={value!r}: expected names separated by commas")


def fusion_mode(config: Any) -> str:
  return str(option(config, "model.fusion.mode", "none"))


def lm_rows(protein: Protein, config: Any, store) -> np.ndarray | None:
  """Per-residue LM embedding of `protein` from the store, or None when not fused.

  Each run of equal chain id is one store entry (looked up by its sequence); the entries are
  concatenated in residue order. -> float32 [L, D].
  Raises DataError (the store's, naming `jaxgeo embed`) when an entry is missing.
  """
  if fusion_mode(config) == "none":
    return None
  if store is None:
    raise DataError(
        f"model.fusion.mode={fusion_mode(config)!r} needs an embedding store; set lm.store "
        f"(e.g. --set lm.store=embeddings/) and fill it with `jaxgeo embed --model "
        f"{option(config, 'lm.model', 'MODEL')} --structures DIR --store STORE`")
  from jaxgeo.lm.embed import protein_embedding
  rows = protein_embedding(store, str(option(config, "lm.model")), int(option(config, "lm.layer")),
                           protein)
  return np.asarray(rows, np.float32)


def attach_rows(graph, rows: np.ndarray | None):
  """`graph` with `nodes["lm"]` = rows `[L, D]` (residue nodes; atom nodes get zeros)."""
  if rows is None:
    return graph
  from jaxgeo.lm.store import attach
  return attach(graph, rows)


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray,
                       group: np.ndarray) -> dict[str, float]:
  """Global and per-group (mean over groups, "per target") correlations and errors.

  y_true [M], y_pred [M] (or [M, 1]), group [M] -> {pearson, spearman, kendall, rmse, mae,
  pearson_per_target, spearman_per_target, kendall_per_target, n}.
  """
  from jaxgeo.metrics import regression
  y_pred = np.asarray(y_pred, np.float64).reshape(np.asarray(y_true).shape[0], -1)[:, 0]
  out = {name: regression.METRICS[name](y_true, y_pred)
         for name in ("pearson", "spearman", "kendall", "rmse", "mae")}
  for name in ("pearson", "spearman", "kendall"):
    out[f"{name}_per_target"] = regression.per_group(name, y_true, y_pred, group)
  out["n"] = float(len(y_true))
  return out


class StandardizedRegression:
  """Mixin for graph-regression tasks whose labels sit far from 0 (e.g. -10 kcal/mol): the
  network's output is read as a standardized value, y = output * std + mean, with the
  training split's label mean and std (set by `fit_label_scale` in `load`). Labels in the
  graphs stay in their physical unit; the loss is the MSE of the standardized values and
  `predictions` returns y in the label's unit, so metrics are in that unit too."""
  label_mean: float = 0.0
  label_std: float = 1.0

  def fit_label_scale(self, train_graphs: Sequence, enabled: bool = True) -> None:
    labels = np.array([float(g.globals["label"][0]) for g in train_graphs], np.float64)
    if not enabled or labels.size == 0:
      self.label_mean, self.label_std = 0.0, 1.0
      return
    self.label_mean = float(labels.mean())
    self.label_std = float(labels.std()) if labels.std() > 1e-6 else 1.0

  def loss(self, outputs, batch):
    from jaxgeo.tasks import base
    label = (batch.globals["label"] - self.label_mean) / self.label_std
    return base.masked_mse(outputs["graph"], label, base.graph_label_mask(batch))

  def predictions(self, outputs, batch):
    from jaxgeo.tasks import base
    y_true, y_pred, group = base.graph_predictions(outputs, batch)
    return y_true, (y_pred * self.label_std + self.label_mean).astype(np.float32), group


# ------------------------------------------------------------------ DB5.5


def read_split(db5_dir: str | os.PathLike, split: str,
               splits_dir: str | os.PathLike | None = None) -> list[str]:
  """Complex ids of a split file `<splits_dir or db5/splits>/<split>.txt`, in file order.

  Raises DataError naming the file when it is missing or empty.
  """
  folder = pathlib.Path(splits_dir) if splits_dir is not None else pathlib.Path(db5_dir) / "splits"
  path = folder / f"{split}.txt"
  if not path.is_file():
    raise DataError(f"{path}: split file not found (expected one complex id a line)")
  ids = [line.split()[0] for line in path.read_text().splitlines() if line.strip()
         and not line.lstrip().startswith("#")]
  if not ids:
    raise DataError(f"{path}: split file lists no complex")
  return ids


def complex_files(db5_dir: str | os.PathLike, pdb_id: str,
                  bound: bool = True) -> tuple[pathlib.Path, pathlib.Path]:
  """(receptor, ligand) structure files of a DB5.5 complex. Missing -> DataError."""
  folder = pathlib.Path(db5_dir) / "structures"
  state = "b" if bound else "u"
  out = []
  for side in ("r", "l"):
    path = folder / f"{pdb_id}_{side}_{state}.pdb.gz"
    if not path.is_file():
      plain = path.with_suffix("")  # allow unzipped copies
      if plain.is_file():
        path = plain
      else:
        raise DataError(f"{path}: structure of complex {pdb_id} not found")
    out.append(path)
  return out[0], out[1]


def load_complex(db5_dir: str | os.PathLike, pdb_id: str,
                 bound: bool = True) -> tuple[Protein, Protein]:
  """(receptor, ligand) Proteins of a DB5.5 complex (bound structures by default)."""
  rec_path, lig_path = complex_files(db5_dir, pdb_id, bound)
  return structure.load_protein(rec_path), structure.load_protein(lig_path)


def limit_ids(ids: Sequence[str], limit: int | None) -> list[str]:
  """The first `limit` ids (all when limit is None or <= 0)."""
  ids = list(ids)
  return ids[:int(limit)] if limit and int(limit) > 0 else ids


# ------------------------------------------------------------------ docking decoys


def ground_truth_files(docking_dir: str | os.PathLike,
                       pdb_id: str) -> tuple[pathlib.Path, pathlib.Path]:
  """(receptor, ligand) ground-truth files of a docking test complex. Missing -> DataError."""
  folder = pathlib.Path(docking_dir) / "ground_truth"
  out = []
  for side in ("r", "l"):
    path = folder / f"{pdb_id}_{side}_b_COMPLEX.pdb.gz"
    if not path.is_file():
      raise DataError(f"{path}: ground truth of complex {pdb_id} not found")
    out.append(path)
  return out[0], out[1]


def docking_complex_ids(docking_dir: str | os.PathLike) -> list[str]:
  """Ids of the complexes with a ground-truth ligand file, sorted. None -> DataError."""
  folder = pathlib.Path(docking_dir) / "ground_truth"
  if not folder.is_dir():
    raise DataError(f"{folder}: no such folder (docking results, see shared/data/README.md)")
  ids = sorted(p.name.split("_")[0] for p in folder.glob("*_l_b_COMPLEX.pdb.gz"))
  if not ids:
    raise DataError(f"{folder}: no *_l_b_COMPLEX.pdb.gz ground-truth files")
  return ids


def decoy_files(docking_dir: str | os.PathLike, method: str,
                pdb_id: str) -> tuple[pathlib.Path | None, pathlib.Path]:
  """(receptor file or None for ligand-only methods, ligand file) of one method's model."""
  if method not in DOCKING_METHODS:
    raise ConfigError(f"docking method {method!r}: unknown; choose from "
                      f"{', '.join(DOCKING_METHODS)}")
  suffix, moves_receptor = DOCKING_METHODS[method]
  folder = pathlib.Path(docking_dir) / "decoys" / method
  lig = folder / f"{pdb_id}_l_b_{suffix}.pdb.gz"
  if not lig.is_file():
    raise DataError(f"{lig}: {method} model of complex {pdb_id} not found")
  rec = None
  if moves_receptor:
    rec = folder / f"{pdb_id}_r_b_{suffix}.pdb.gz"
    if not rec.is_file():
      raise DataError(f"{rec}: {method} receptor of complex {pdb_id} not found")
  return rec, lig


def complex_group_ids(*id_lists: Sequence[str]) -> dict[str, int]:
  """A stable int id per complex: its index in the sorted union of the lists."""
  return {name: i for i, name in enumerate(sorted({n for ids in id_lists for n in ids}))}
