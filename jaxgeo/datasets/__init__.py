"""Readers of known data sets (no task logic: files in, Proteins and ids out).

- `db5`: Docking Benchmark 5.5 as packaged by EquiDock (structures and split files).
- `docking_results`: the docking results of six methods on the DB5.5 test set.
- `synthetic`: generated backbones and proteins (ideal geometry from dihedrals).
"""
import importlib

__all__ = ["db5", "docking_results", "synthetic"]


def __getattr__(name):
  if name in __all__:
    return importlib.import_module(f"jaxgeo.datasets.{name}")
  raise AttributeError(f"module 'jaxgeo.datasets' has no attribute {name!r}")
