"""jaxgeo: pre-trained protein language models + geometric deep learning, in JAX.

Sub-modules are imported lazily (`from jaxgeo import structure, graph, ...`) so that
`import jaxgeo` stays cheap and does not start JAX.
"""
import importlib

__version__ = "0.1.0"

_SUBMODULES = ("errors", "residues", "io", "structure", "geometry", "graph", "datasets",
               "batching", "lm", "nets", "tasks", "metrics", "config", "rows", "train",
               "checkpoint", "cli")
__all__ = list(_SUBMODULES)


def __getattr__(name):
  if name in _SUBMODULES:
    return importlib.import_module(f"jaxgeo.{name}")
  raise AttributeError(f"module 'jaxgeo' has no attribute {name!r}")


def __dir__():
  return sorted(list(globals()) + list(_SUBMODULES))
