"""Data flows one way: every `jaxgeo` module imports only from its own layer or the layers
before it (the README's module map), with no import cycle, counting imports at module top
level and inside functions alike. Library packages define no command-line verbs."""
import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "jaxgeo"

# The module map, in order: a module may import from its own layer and the ones above it.
LAYERS = (
    ("jaxgeo.errors", "jaxgeo.residues", "jaxgeo.io", "jaxgeo.compile_cache",
     "jaxgeo.xla_options"),
    ("jaxgeo.structure", "jaxgeo.geometry"),
    ("jaxgeo.graph", "jaxgeo.datasets", "jaxgeo.lm"),
    ("jaxgeo.batching",),
    ("jaxgeo.parallel",),
    ("jaxgeo.nets",),
    ("jaxgeo.metrics",),
    ("jaxgeo.tasks",),
    ("jaxgeo.config",),
    ("jaxgeo.rows", "jaxgeo.checkpoint"),
    ("jaxgeo.train",),
    ("jaxgeo.grid", "jaxgeo.report"),
    ("jaxgeo.commands",),
    ("jaxgeo.cli", "jaxgeo.__main__"),
    ("jaxgeo.testing",),       # for tests and examples only: no library module imports it
)


def layer_of(module: str) -> int:
  """The layer index of a module (its longest matching prefix in LAYERS)."""
  best, depth = None, -1
  for index, names in enumerate(LAYERS):
    for name in names:
      if (module == name or module.startswith(name + ".")) and len(name) > depth:
        best, depth = index, len(name)
  if best is None:
    raise AssertionError(f"{module}: not in the module map (tests/test_imports.py LAYERS and "
                         "the README's module map)")
  return best


def module_name(path: pathlib.Path) -> str:
  parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
  if parts[-1] == "__init__":
    parts = parts[:-1]
  return ".".join(parts)


def imports_of(source: str, module: str, is_package: bool) -> set[str]:
  """Every jaxgeo module a module's source imports (top level and in functions)."""
  out = set()
  for node in ast.walk(ast.parse(source)):
    if isinstance(node, ast.Import):
      out.update(a.name for a in node.names if a.name.startswith("jaxgeo"))
    elif isinstance(node, ast.ImportFrom):
      if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[:len(base) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
      else:
        target = node.module or ""
      if not target.startswith("jaxgeo"):
        continue
      for alias in node.names:   # `from jaxgeo import structure` imports a module
        out.add(f"{target}.{alias.name}" if _is_module(f"{target}.{alias.name}") else target)
  return out


def _is_module(name: str) -> bool:
  path = PACKAGE.parent.joinpath(*name.split("."))
  return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def import_graph() -> dict[str, set[str]]:
  graph = {}
  for path in sorted(PACKAGE.rglob("*.py")):
    name = module_name(path)
    graph[name] = imports_of(path.read_text(), name, path.name == "__init__.py")
  return graph


def violations(graph: dict[str, set[str]]) -> list[str]:
  """Upward imports and cycles of an import graph. -> one line per problem."""
  problems = []
  for module, targets in sorted(graph.items()):
    for target in sorted(targets):
      if layer_of(target) > layer_of(module):
        problems.append(f"{module} imports {target}, a later layer of the module map")
  # Cycles: depth-first search with colours.
  colour: dict[str, int] = {}
  stack: list[str] = []

  def visit(node: str) -> None:
    colour[node] = 1
    stack.append(node)
    for nxt in sorted(graph.get(node, ())):
      if nxt == node:
        continue
      if colour.get(nxt) == 1:
        cycle = stack[stack.index(nxt):] + [nxt]
        problems.append("import cycle: " + " -> ".join(cycle))
      elif colour.get(nxt) is None:
        visit(nxt)
    stack.pop()
    colour[node] = 2

  for node in sorted(graph):
    if colour.get(node) is None:
      visit(node)
  return problems


def test_data_flows_one_way_without_cycles():
  graph = import_graph()
  assert "jaxgeo.tasks.interface" in graph and "jaxgeo.lm.features" in graph
  assert violations(graph) == []


def test_the_checker_catches_upward_imports_and_cycles():
  assert violations({"jaxgeo.lm.embed": {"jaxgeo.config"}, "jaxgeo.config": set()}) == [
      "jaxgeo.lm.embed imports jaxgeo.config, a later layer of the module map"]
  assert violations({"jaxgeo.tasks.position": {"jaxgeo.testing"}, "jaxgeo.testing": set()})
  cyclic = {"jaxgeo.tasks.a": {"jaxgeo.tasks.b"}, "jaxgeo.tasks.b": {"jaxgeo.tasks.a"}}
  assert any(p.startswith("import cycle") for p in violations(cyclic))
  # Function-level imports count too.
  source = "def f():\n  from jaxgeo import config\n"
  assert imports_of(source, "jaxgeo.lm.embed", False) == {"jaxgeo.config"}
  assert imports_of("from . import store\n", "jaxgeo.lm.features", False) == {"jaxgeo.lm.store"}


@pytest.mark.parametrize("package", ["structure", "graph", "batching", "lm", "nets", "tasks",
                                     "metrics", "datasets", "train", "config", "rows"])
def test_library_modules_define_no_command_line(package):
  paths = ([PACKAGE / f"{package}.py"] if (PACKAGE / f"{package}.py").is_file()
           else sorted((PACKAGE / package).rglob("*.py")))
  for path in paths:
    text = path.read_text()
    assert "add_parser(" not in text and "ArgumentParser(" not in text, path


@pytest.mark.parametrize("package", ["jaxgeo", "jaxgeo.lm", "jaxgeo.nets", "jaxgeo.tasks",
                                     "jaxgeo.metrics", "jaxgeo.datasets"])
def test_public_names_exist(package):
  import importlib
  module = importlib.import_module(package)
  assert module.__all__, package
  for name in module.__all__:
    assert getattr(module, name) is not None, f"{package}.{name}"
