"""Learning tasks: datasets with labels, losses and metrics (see `tasks/base.py`).

    task = tasks.get_task("interface")                 # -> Task
    options = task.options({"limit": 5})               # typed options (frozen dataclass)
    dataset = task.load(options, tasks.Inputs(lm=None)) # -> Dataset(splits, stats, info)

Task modules are imported lazily by name, so `import jaxgeo.tasks` stays light and a task
whose optional dependency is absent (e.g. lmdb for ATOM3D) does not break the others.
`_REGISTRY` maps a name to (module, class name); a module may instead (or also) define
`TASKS = {name: TaskSubclass}`, which `get_task` consults when the class name is absent.
"""
from __future__ import annotations

import importlib

from jaxgeo.errors import ConfigError
from jaxgeo.tasks.base import Dataset, Examples, Inputs, Splits, Task

__all__ = ["Dataset", "Examples", "Inputs", "Splits", "Task", "get_task", "known_tasks",
           "register_task"]

# name -> (module, class name)
_REGISTRY: dict[str, tuple[str, str]] = {
    "position": ("jaxgeo.tasks.position", "PositionTask"),
    "position_id": ("jaxgeo.tasks.position", "PositionIdTask"),
    "position_generated": ("jaxgeo.tasks.position", "GeneratedPositionTask"),
    "interface": ("jaxgeo.tasks.interface", "InterfaceTask"),
    "quality": ("jaxgeo.tasks.quality", "QualityTask"),
    "affinity": ("jaxgeo.tasks.affinity", "AffinityTask"),
    "atom3d_psr": ("jaxgeo.tasks.atom3d", "PSRTask"),
    "atom3d_lba": ("jaxgeo.tasks.atom3d", "LBATask"),
    "atom3d_ppi": ("jaxgeo.tasks.atom3d", "PPITask"),
    "csv": ("jaxgeo.tasks.csv_labels", "CsvTask"),
    "csv_residue": ("jaxgeo.tasks.csv_labels", "CsvResidueTask"),
    "docking": ("jaxgeo.tasks.docking", "DockingTask"),
}


def known_tasks() -> tuple[str, ...]:
  return tuple(sorted(_REGISTRY))


def register_task(name: str, module: str, class_name: str) -> None:
  """Adds (or replaces) a registry entry: `get_task(name)` imports `module` and instantiates
  `class_name` with no arguments."""
  _REGISTRY[name] = (module, class_name)


def get_task(name: str) -> Task:
  """The task registered as `name` (a new instance). Unknown -> ConfigError listing them."""
  if name not in _REGISTRY:
    raise ConfigError(f"task.name={name!r}: unknown task; known tasks: "
                      f"{', '.join(known_tasks())}")
  module_name, class_name = _REGISTRY[name]
  try:
    module = importlib.import_module(module_name)
  except ModuleNotFoundError as e:
    if e.name == module_name:
      raise ConfigError(f"task.name={name!r}: its module {module_name} is not available yet")
    raise
  cls = getattr(module, class_name, None) or getattr(module, "TASKS", {}).get(name)
  if cls is None:
    raise ConfigError(f"task.name={name!r}: {module_name} has no class {class_name}")
  from jaxgeo.tasks.base import validate_task
  return validate_task(cls())
