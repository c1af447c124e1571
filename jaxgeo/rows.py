"""The experiment rows of the paper's tables (and our extensions), as data.

One table, `ROWS`, of named rows: task x network x fusion x language model, plus any
row-specific overrides (dotted config keys). `./launch.sh --list`, `./launch.sh NAME`,
`jaxgeo train --config NAME`, `jaxgeo embed --config NAME` and the experiment grid read it;
a user's own config file (`get_config()`, or a run's config.json) works wherever a name does.

    rows.names()                       # every row name
    rows.get("interface_gvp_replace")  # -> Row
    rows.config("interface_gvp_none")  # -> the resolved ml_collections ConfigDict
    rows.resolve(name_or_file)         # a row name or a config file -> ConfigDict

Row names: `{task}_{network}_{fusion}` with ESM-2 650M (the paper's language model) and
`{task}_{network}_{fusion}_unirep` with UniRep 1900 (the real pre-trained model that
installs offline); `none` rows use no language model. Every such row takes the paper's
inputs (`data.features="paper"`) and settings (`config.paper_experiment`). Our extension,
GVP-CPD's richer inputs, has its own rows for `none` and `replace`: the same names ending in
`_rich`. Extra rows (demos) are listed in `_EXTRA`.
"""
from __future__ import annotations

import dataclasses
import difflib
import pathlib
from typing import Any

import ml_collections

from jaxgeo import config as config_lib
from jaxgeo.errors import ConfigError

__all__ = ["Row", "ROWS", "TASKS", "PAPER_TASKS", "NETWORKS", "FUSIONS", "RICH_FUSIONS",
           "RANDOM_LM", "RANDOM_LMS", "LANGUAGE_MODELS", "GRID_LMS", "GRID_BUDGETS", "names",
           "get", "config", "resolve", "table", "grid_row"]

# The paper's tasks as jaxgeo runs them, and the networks / fusion modes of every row.
TASKS = ("position", "position_id", "interface", "quality", "affinity", "atom3d_psr",
         "atom3d_lba", "atom3d_ppi")
# The paper's tasks among them (quality and affinity are our extensions; interface on DB5.5
# stands in for ATOM3D PPI, whose data is not reachable here).
PAPER_TASKS = ("position", "position_id", "interface", "atom3d_psr", "atom3d_lba",
               "atom3d_ppi")
# Fusion modes with a `_rich` row (the features control of the experiment grid).
RICH_FUSIONS = ("none", "replace")
# The random-lm control: `replace` with UniRep 1900's architecture at a fixed random
# initialisation (`{task}_{network}_replace_randomlm`), so pre-trained knowledge is separated
# from "any sequence model's features"; UniRep 256's is `..._replace_randomlm_unirep256`.
RANDOM_LM = "unirep1900_random"
# Row-name tail of a random-lm row -> store model name.
RANDOM_LMS = {"": RANDOM_LM, "_unirep256": "unirep256_random"}
NETWORKS = ("gvp", "egnn", "molformer")
FUSIONS = ("none", "replace", "concat", "project")
# Row-name suffix -> store model name (a key of config.PAPER_LMS).
LANGUAGE_MODELS = {"": "esm2_t33_650M", "_unirep": "unirep1900", "_unirep256": "unirep256"}
# `jaxgeo grid --lm` -> row-name suffix.
GRID_LMS = {"unirep": "_unirep", "unirep256": "_unirep256", "esm2": ""}


@dataclasses.dataclass(frozen=True)
class Row:
  """One experiment.

  Attributes:
    name: the row's name (`launch.sh NAME`).
    task, network, fusion: what is trained.
    lm_model: the store model name of the language model (ignored for fusion "none").
    overrides: (dotted key, value) pairs applied after the paper's defaults.
    description: one line for `--list`.
  """
  name: str
  task: str
  network: str
  fusion: str = "none"
  lm_model: str = "esm2_t33_650M"
  features: str = "paper"
  overrides: tuple[tuple[str, Any], ...] = ()
  description: str = ""

  @property
  def paper(self) -> bool:
    """Whether the row is one of the paper's (its task, its inputs)."""
    return (self.task in PAPER_TASKS and self.features == "paper" and not self.overrides
            and self.lm_model not in RANDOM_LMS.values())


_UNIREP_NAMES = {"unirep1900_random": "UniRep 1900", "unirep256_random": "UniRep 256"}


def _paper_rows() -> list[Row]:
  out = []
  for task in TASKS:
    for network in NETWORKS:
      for features in ("paper", "rich"):
        tail = "" if features == "paper" else "_rich"
        what = "" if features == "paper" else "; rich (GVP-CPD) inputs, our extension"
        for fusion in FUSIONS if features == "paper" else RICH_FUSIONS:
          if fusion == "none":
            out.append(Row(f"{task}_{network}_none{tail}", task, network, "none",
                           features=features,
                           description="residue-type embedding, no language model" + what))
            continue
          for suffix, lm_model in LANGUAGE_MODELS.items():
            out.append(Row(f"{task}_{network}_{fusion}{suffix}{tail}", task, network, fusion,
                           lm_model, features=features,
                           description=f"{lm_model} per-residue vectors, fusion {fusion}"
                           + what))
      for tail, lm_model in RANDOM_LMS.items():
        out.append(Row(f"{task}_{network}_replace_randomlm{tail}", task, network, "replace",
                       lm_model, description=f"control: {_UNIREP_NAMES[lm_model]} at a fixed "
                       "random initialisation, fusion replace"))
  return out


_EXTRA = [
    Row("position_demo", "position_generated", "egnn", "none", features="rich", overrides=(
        ("task.target", "relative"), ("task.num_train", 96), ("task.num_val", 12),
        ("task.num_test", 12), ("task.min_length", 30), ("task.max_length", 80),
        ("data.k", 10), ("data.edges", "knn"), ("model.node_features", False),
        ("model.egnn.hidden", 32),
        ("model.egnn.num_layers", 2), ("model.fusion.embed_dim", 32), ("train.lr", 3e-3),
        ("train.epochs", 30), ("train.batch_graphs", 8), ("train.max_buckets", 2),
        ("train.patience", 8)),
        description="a quick CPU demo: a small EGNN learns the relative sequence position of "
        "generated proteins (minutes on a laptop)"),
]

# Docking (EquiDock's task, the paper's IEGMN experiment): IEGMN with every fusion mode, trained
# with EquiDock's schedule (Adam lr 3e-4, batches of 10, early stopping after 50 epochs
# without improvement of the validation complex RMSD median); loss weights: the docking
# task's defaults (see jaxgeo/tasks/docking.py).
DOCKING_OVERRIDES = (("train.lr", 3e-4), ("train.batch_graphs", 10), ("train.epochs", 10000),
                     ("train.patience", 50), ("train.monitor", "metric"))


def _docking_rows() -> list[Row]:
  out = [Row("docking_iegmn_none", "docking", "iegmn", "none", overrides=DOCKING_OVERRIDES,
             description="EquiDock's IEGMN, residue-type embedding, no language model")]
  for fusion in FUSIONS[1:]:
    for suffix, lm_model in LANGUAGE_MODELS.items():
      out.append(Row(f"docking_iegmn_{fusion}{suffix}", "docking", "iegmn", fusion, lm_model,
                     overrides=DOCKING_OVERRIDES,
                     description=f"EquiDock's IEGMN, {lm_model} per-residue vectors, "
                     f"fusion {fusion}"))
  for tail, lm_model in RANDOM_LMS.items():
    out.append(Row(f"docking_iegmn_replace_randomlm{tail}", "docking", "iegmn", "replace",
                   lm_model, overrides=DOCKING_OVERRIDES,
                   description=f"control: EquiDock's IEGMN, {_UNIREP_NAMES[lm_model]} at a "
                   "fixed random initialisation, fusion replace"))
  return out


# The README's CPU budget for docking (`experiments/docking_cdf.sh` trains with the same
# overrides, `jaxgeo grid --tasks docking --nets iegmn` with these and 10 epochs).
DOCKING_CPU_BUDGET = (("model.iegmn.hidden", 32), ("model.iegmn.num_layers", 3),
                      ("model.iegmn.num_keypoints", 16), ("task.max_train_residues", 700),
                      ("train.lr", 1e-3), ("train.batch_graphs", 2),
                      ("train.batching", "fixed"), ("train.patience", 0),
                      ("train.epochs", 10))

ROWS: tuple[Row, ...] = tuple(_paper_rows() + _docking_rows() + _EXTRA)
_BY_NAME = {row.name: row for row in ROWS}
assert len(_BY_NAME) == len(ROWS), "duplicate row names"

# The experiment grid's budgets (`jaxgeo grid --budget NAME`): per task, overrides applied to
# every row of that task, so that a budget is a property of the table, not of a run. "full"
# is the paper's (no override); "cpu" fits the grid of the README on a 2-core CPU.
GRID_BUDGETS: dict[str, dict[str, tuple[tuple[str, Any], ...]]] = {
    "full": {},
    # Fixed-count batches: the committed cells were trained so, before packing existed, and a
    # grid compares like with like.
    "cpu": {
        "interface": (("task.limit", 60), ("train.epochs", 6), ("train.batch_graphs", 8),
                      ("train.batching", "fixed")),
        "position": (("task.limit", 40), ("train.epochs", 8), ("train.batch_graphs", 8),
                     ("train.batching", "fixed")),
        "position_id": (("task.limit", 40), ("train.epochs", 8), ("train.batch_graphs", 8),
                        ("train.batching", "fixed")),
        "affinity": (("train.epochs", 12), ("train.batch_graphs", 8),
                     ("train.batching", "fixed")),
        "quality": (("task.limit", 40), ("task.decoys_per_complex", 4),
                    ("train.epochs", 6), ("train.batch_graphs", 8),
                    ("train.batching", "fixed")),
        # The README's CPU docking budget (EquiDock: hidden 64, 5 layers, 50 keypoints, early
        # stopping after 50 epochs): training complexes of at most 700 residues (168 of 203).
        "docking": DOCKING_CPU_BUDGET,
    },
    # A smoke test of the grid machinery (tests).
    "tiny": {
        "interface": (("task.limit", 4), ("train.epochs", 1), ("train.batch_graphs", 4)),
        "position": (("task.limit", 2), ("train.epochs", 1), ("train.batch_graphs", 4)),
    },
}


def names() -> list[str]:
  """Every row name, in table order."""
  return [row.name for row in ROWS]


def get(name: str) -> Row:
  """The row called `name`. Unknown -> ConfigError with the closest names."""
  if name not in _BY_NAME:
    close = difflib.get_close_matches(name, list(_BY_NAME), n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise ConfigError(f"experiment {name!r}: no such row (see `./launch.sh --list`){hint}")
  return _BY_NAME[name]


def _set(config: ml_collections.ConfigDict, dotted: str, value: Any) -> None:
  parts = dotted.split(".")
  node = config
  for part in parts[:-1]:
    node = node[part]
  if parts[-1] not in node:
    raise ConfigError(f"row override {dotted}: no such key")
  with node.unlocked():
    node[parts[-1]] = value


def config(row: str | Row) -> ml_collections.ConfigDict:
  """The resolved config of a row (the paper's settings, then the row's overrides)."""
  row = get(row) if isinstance(row, str) else row
  out = config_lib.paper_experiment(row.task, row.network, row.fusion, lm_model=row.lm_model,
                                    features=row.features)
  for key, value in row.overrides:
    _set(out, key, value)
  with out.unlocked():
    out.name = row.name
  return out


def resolve(name_or_path: str) -> ml_collections.ConfigDict:
  """A config from a row name, or from a config file (`.py` with get_config(), `.json`)."""
  path = pathlib.Path(str(name_or_path))
  if path.suffix in (".py", ".json") or path.exists():
    return config_lib.load_config(path)
  return config(str(name_or_path))


def grid_row(task: str, network: str, variant: str, features: str = "paper",
             lm: str = "unirep") -> str:
  """The row name of one cell of the experiment grid. variant: none, replace, concat,
  project or random-lm; lm: a key of GRID_LMS: "unirep" (UniRep 1900), "unirep256" or
  "esm2" (ESM-2 650M; its random-lm control is UniRep 1900's). Docking's network is
  "iegmn" (its rows have the paper's features only)."""
  if lm not in GRID_LMS:
    raise ConfigError(f"--lm {lm}: expected one of {', '.join(GRID_LMS)}")
  suffix = GRID_LMS[lm]
  tail = "" if features == "paper" else "_rich"
  if variant == "none":
    name = f"{task}_{network}_none{tail}"
  elif variant == "random-lm":
    name = f"{task}_{network}_replace_randomlm{suffix if suffix in RANDOM_LMS else ''}"
  else:
    name = f"{task}_{network}_{variant}{suffix}{tail}"
  return get(name).name


def table(markdown: bool = False) -> str:
  """The row table as text (name, task, network, fusion, language model, description)."""
  header = ("name", "task", "network", "fusion", "language model", "description")
  lines = [(r.name, r.task, r.network, r.fusion, r.lm_model if r.fusion != "none" else "-",
            r.description) for r in ROWS]
  if markdown:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(line) + " |" for line in lines]
    return "\n".join(out)
  width = max(len(r.name) for r in ROWS)
  return "\n".join(f"{line[0]:<{width}}  {line[5]}" for line in lines)
