"""The experiment grid: every (task x network x variant x features x seed) cell of the row
table, trained into its own run folder, resumable across machines and sessions.

    spec = grid.GridSpec(tasks=("interface",), networks=("gvp",), seeds=(0, 1, 2))
    for cell in grid.cells(spec): ...                 # (row name, seed, run name)
    grid.run(spec, runs_dir="runs/grid", results_dir="experiments/results/runs")

A cell's run folder is `runs_dir/{row}-seed{seed}`; a finished cell's small results
(config.json, log.jsonl, test_metrics.json: never checkpoints) are copied to
`results_dir/{row}-seed{seed}/`, which is committed, so the grid skips what any machine
finished and the tables regenerate without retraining (`jaxgeo report`). An interrupted cell
resumes from its last checkpoint. Budgets (epochs, complexes) come from the row table
(`rows.GRID_BUDGETS`), never from a run. Language-model rows have their embeddings computed
first when the model is at hand (UniRep, pre-trained or the random-lm control); ESM-2 rows
need the store filled by `jaxgeo embed` with a converted model.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import pathlib
import time
from collections.abc import Callable, Iterator

from jaxgeo import config as config_lib
from jaxgeo import io, rows, train
from jaxgeo.errors import ConfigError, JaxgeoError

__all__ = ["GridSpec", "Cell", "cells", "cell_config", "run", "has_results", "SMALL_FILES",
           "VARIANTS"]

logger = logging.getLogger(__name__)

VARIANTS = ("none", "replace", "concat", "project", "random-lm")
DOCKING, DOCKING_NETWORK = "docking", "iegmn"
SMALL_FILES = ("config.json", "log.jsonl", "test_metrics.json", "model.json", "dataset.json",
               "lm.json")


@dataclasses.dataclass(frozen=True)
class GridSpec:
  """Which cells to run.

  Attributes:
    tasks, networks: of the row table (docking: network "iegmn").
    variants: none, replace, concat, project, random-lm.
    features: paper and / or rich (rich only has none / replace rows: other variants are
      skipped for it).
    seeds: training seeds (train.seed).
    lm: "unirep" (UniRep 1900, offline), "unirep256" (UniRep 256, offline: for EGNN's
      `replace`, which widens the network to the language model's width) or "esm2" (ESM-2
      650M, needs converted weights).
    budget: a key of `rows.GRID_BUDGETS`.
  """
  tasks: tuple[str, ...] = ("position", "interface", "affinity")
  networks: tuple[str, ...] = ("gvp", "egnn")
  variants: tuple[str, ...] = ("none", "replace", "project", "random-lm")
  features: tuple[str, ...] = ("paper",)
  seeds: tuple[int, ...] = (0, 1, 2)
  lm: str = "unirep"
  budget: str = "cpu"

  def __post_init__(self):
    for v in self.variants:
      if v not in VARIANTS:
        raise ConfigError(f"--fusions {v}: expected one of {', '.join(VARIANTS)}")
    for f in self.features:
      if f not in ("paper", "rich"):
        raise ConfigError(f"--features {f}: expected paper or rich")
    if self.lm not in rows.GRID_LMS:
      raise ConfigError(f"--lm {self.lm}: expected one of {', '.join(rows.GRID_LMS)}")
    if self.budget not in rows.GRID_BUDGETS:
      raise ConfigError(f"--budget {self.budget}: expected one of "
                        f"{', '.join(rows.GRID_BUDGETS)}")
    if not self.seeds:
      raise ConfigError("--seeds: at least one seed")
    for seed in self.seeds:
      if not 0 <= seed < 2 ** 32:
        raise ConfigError(f"--seeds {seed}: must be in [0, 2**32) (train.seed)")
    for name, given, known in (("--tasks", self.tasks, rows.TASKS + (DOCKING,)),
                               ("--nets", self.networks, rows.NETWORKS + (DOCKING_NETWORK,))):
      for value in given:
        if value not in known:
          raise ConfigError(f"{name} {value}: expected one of {', '.join(known)}")
    if not any(_pairs(t, n) for t in self.tasks for n in self.networks):
      raise ConfigError(f"--tasks {','.join(self.tasks)} --nets {','.join(self.networks)}: "
                        f"no cell (docking runs with --nets {DOCKING_NETWORK} only, the other "
                        f"tasks without it)")


@dataclasses.dataclass(frozen=True)
class Cell:
  row: str
  seed: int

  @property
  def name(self) -> str:
    return f"{self.row}-seed{self.seed}"


def _pairs(task: str, network: str) -> bool:
  """Whether the row table has `task` x `network`: docking is IEGMN's task, and IEGMN has no
  other."""
  return (task == DOCKING) == (network == DOCKING_NETWORK)


def cells(spec: GridSpec) -> Iterator[Cell]:
  """The grid's cells in table order (rich cells only for none / replace, and not for
  docking; docking only with IEGMN, IEGMN only for docking)."""
  for task in spec.tasks:
    for network in spec.networks:
      if not _pairs(task, network):
        continue
      for features in spec.features:
        for variant in spec.variants:
          if features == "rich" and (variant not in ("none", "replace") or task == DOCKING):
            continue
          row = rows.grid_row(task, network, variant, features, spec.lm)
          for seed in spec.seeds:
            yield Cell(row, seed)


def cell_config(cell: Cell, budget: str):
  """The resolved config of a cell: its row, the budget's overrides for its task, its seed."""
  config = rows.config(cell.row)
  overrides = [f"{k}={v}" for k, v in rows.GRID_BUDGETS[budget].get(str(config.task.name), ())]
  config = config_lib.apply_overrides(config, overrides + [f"train.seed={cell.seed}"])
  return config


def _finished(folder: pathlib.Path) -> bool:
  return (folder / "test_metrics.json").is_file()


def has_results(results_dir: str | os.PathLike) -> bool:
  """Whether `results_dir` holds a finished cell's results (what the report reads)."""
  results_dir = pathlib.Path(results_dir)
  return results_dir.is_dir() and any(results_dir.rglob("test_metrics.json"))


def _keep_small_results(run_dir: pathlib.Path, results_dir: pathlib.Path) -> None:
  """Copies a finished run's small files to the committed results folder (atomically)."""
  for name in SMALL_FILES:
    source = run_dir / name
    if source.is_file():
      io.atomic_write_bytes(results_dir / name, source.read_bytes())


def ensure_embeddings(config, progress: bool = True) -> None:
  """Computes the store entries a fused config reads and lacks, when its language model is
  at hand (UniRep: pre-trained or the random-lm control); ESM-2 entries must be there."""
  if not config_lib.uses_lm(config):
    return
  from jaxgeo.lm import embed
  from jaxgeo.lm.store import EmbeddingStore, embed_command
  model = str(config.lm.model)
  task, options, inputs = config_lib.task_setup(config, with_lm=False)
  sequences = task.sequences(options, inputs) or []
  store = EmbeddingStore(config_lib.store_path(config))
  missing = [s for s in sorted(set(sequences))
             if not store.has(model, int(config.lm.layer), s)]
  if not missing:
    return
  if not model.startswith("unirep"):
    raise JaxgeoError(f"{config.name}: {len(missing)} sequences lack {model} embeddings in "
                      f"{store.path}; compute them with `"
                      f"{embed_command(model, store.path, int(config.lm.layer))}`")
  embedder = embed.get_embedder(model)
  embed.embed_sequences(embedder, [(f"seq{i}", s) for i, s in enumerate(missing)], store,
                        layers=[int(config.lm.layer)], progress=progress)


def run(spec: GridSpec, runs_dir: str | os.PathLike, results_dir: str | os.PathLike, *,
        progress: bool = True, echo: Callable[[str], None] = print,
        stop_after: int | None = None) -> dict[str, str]:
  """Runs every cell of `spec` that has no finished results yet.

  -> {cell name: "kept" (results already there), "trained" or "failed: <error>"}. A cell
  that fails (e.g. missing data) is reported and the grid goes on.
  `stop_after`: train at most this many cells in this call (the rest stay for the next).
  """
  runs_dir, results_dir = pathlib.Path(runs_dir), pathlib.Path(results_dir)
  status: dict[str, str] = {}
  todo = list(cells(spec))
  trained = 0
  for index, cell in enumerate(todo, 1):
    kept, run_dir = results_dir / cell.name, runs_dir / cell.name
    if _finished(kept):
      status[cell.name] = "kept"
      continue
    if _finished(run_dir):
      _keep_small_results(run_dir, kept)
      status[cell.name] = "kept"
      continue
    if stop_after is not None and trained >= stop_after:
      status[cell.name] = "pending"
      continue
    echo(f"grid [{index}/{len(todo)}] {cell.name}")
    tick = time.time()
    try:
      config = cell_config(cell, spec.budget)
      ensure_embeddings(config, progress)
      train.train(config, run_dir, progress=progress, echo=echo if not progress else None)
    except JaxgeoError as e:
      status[cell.name] = f"failed: {e}"
      echo(f"grid: {cell.name}: {e}")
      continue
    _keep_small_results(run_dir, kept)
    status[cell.name] = "trained"
    trained += 1
    echo(f"grid: {cell.name} done in {(time.time() - tick) / 60:.1f} min")
  return status

