"""Shared test fixtures.

`shared_data` is `../shared/data` beside the repository; tests that use it skip cleanly
when it is absent. `write_csv_tables` writes the label tables of the CSV tasks for the
example structures (used by the csv task's and `jaxgeo predict`'s tests). JAX's persistent compilation cache is switched on for the session so
that repeated runs of the suite compile less.
"""
import os
import pathlib
import sys

import pytest

# The suite's float32 tolerances (parity with PyTorch / transformers to 1e-4 and tighter) assume
# float32 matmuls; XLA's default rounds them to TF32 on GPUs and to bfloat16 passes on TPUs.
# Read by JAX at import; on CPU the compiled programs are the same (checked: the gradient
# programs of the three networks with the train step's options, and ESM-2's forward).
os.environ.setdefault("JAX_DEFAULT_MATMUL_PRECISION", "float32")

REPO = pathlib.Path(__file__).resolve().parent.parent
# The benchmark scripts of experiments/ are importable as modules in every test file (their
# helpers are tested, and `profile_nets.matmul_flops` counts a program's matmul FLOPs).
sys.path.insert(0, str(REPO / "experiments"))
SHARED_DATA = pathlib.Path(os.environ.get("JAXGEO_SHARED_DATA", REPO.parent / "shared" / "data"))
STRUCTURES = REPO / "examples" / "structures"


def jax_cache_dir() -> str:
  """The persistent compilation cache of the test processes and the subprocesses they
  start: $JAXGEO_JAX_CACHE, else `.jax_cache` in the repository. The two xdist workers share
  it (the suite's programs repeat across files, so one worker often finds what the other
  compiled); JAX writes a cache file in place, and a worker that reads one half-written is
  told so by JAX (a warning) and compiles the program itself."""
  return os.environ.get("JAXGEO_JAX_CACHE", str(REPO / ".jax_cache"))


def cpu_subprocess_env(**extra) -> dict:
  """The environment of a test's fresh Python process on CPU: this repository importable, the
  suite's compilation cache, and none of the XLA flags or multi-host settings of the calling
  environment (a subprocess that splits the CPU into devices must do so itself); then
  `extra`."""
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(REPO),
             JAXGEO_JAX_CACHE=jax_cache_dir())
  for key in ("XLA_FLAGS", "JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"):
    env.pop(key, None)
  env.update(extra)
  return env


def jaxpr_equations(jaxpr):
  """Every equation of `jaxpr`, those of its sub-jaxprs (loop bodies, branches) included."""
  for eqn in jaxpr.eqns:
    yield eqn
    for param in eqn.params.values():
      for sub in (param if isinstance(param, (tuple, list)) else (param,)):
        inner = getattr(sub, "jaxpr", sub)
        if hasattr(inner, "eqns"):
          yield from jaxpr_equations(inner)


# The slowest test files (by their seconds in a serial run on the 2-core machine, slowest first),
# handed to the two xdist workers before all others (`pyproject.toml`: `--dist loadfile
# --no-loadscope-reorder`) so that no long file is left to one worker at the end. Files not
# listed follow in collection order.
SLOWEST_FILES = ("test_train_packing.py", "test_nets_models.py", "test_bench_accelerator.py",
                 "test_parallel.py", "test_train.py", "test_nets_equivariance.py",
                 "test_tasks_docking.py", "test_commands_docking.py",
                 "test_commands_predict.py", "test_parallel_multihost.py",
                 "test_nets_overfit.py", "test_lm_embed.py", "test_tasks_csv.py")


def pytest_collection_modifyitems(config, items):
  rank = {name: i for i, name in enumerate(SLOWEST_FILES)}
  items.sort(key=lambda item: rank.get(item.path.name, len(SLOWEST_FILES)))


def pytest_configure(config):
  import jax
  jax.config.update("jax_compilation_cache_dir", jax_cache_dir())
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


@pytest.fixture(scope="session")
def shared_data() -> pathlib.Path:
  if not SHARED_DATA.is_dir():
    pytest.skip(f"shared data not found at {SHARED_DATA}")
  return SHARED_DATA


def fail_after_first_batch(monkeypatch, message: str = "the second batch fails") -> None:
  """`batching.batches` yields its first batch, then raises RuntimeError(message): for
  tests that a command keeps what it computed before a failure."""
  from jaxgeo import batching
  real = batching.batches

  def first_then_fail(*args, **kwargs):
    batches = real(*args, **kwargs)
    yield next(batches)
    raise RuntimeError(message)

  monkeypatch.setattr(batching, "batches", first_then_fail)


def write_csv_tables(folder: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
  """Label tables for the structures in examples/structures -> (graph table: file, rg (radius
  of gyration of the CA atoms), group (the first 4 letters); residue table: file, chain,
  residue_number, buried (more CA neighbours within 10 A than the chain's median), every
  second residue)."""
  import numpy as np
  from jaxgeo import structure
  graph_lines, residue_lines = ["file,rg,group"], ["file,chain,residue_number,buried"]
  for path in sorted(STRUCTURES.glob("*.pdb.gz")):
    p = structure.load_protein(path)
    ca = p.ca
    rg = float(np.sqrt(((ca - ca.mean(0)) ** 2).sum(1).mean()))
    graph_lines.append(f"{path.name},{rg:.3f},{path.name[:4]}")
    neighbours = (np.linalg.norm(ca[:, None] - ca[None], axis=-1) < 10).sum(1)
    for i in range(0, len(p), 2):
      residue_lines.append(f"{path.name},{p.chain_id[i]},{p.residue_number[i]},"
                           f"{int(neighbours[i] > np.median(neighbours))}")
  graph, residue = folder / "graph.csv", folder / "residue.csv"
  graph.write_text("\n".join(graph_lines) + "\n")
  residue.write_text("\n".join(residue_lines) + "\n")
  return graph, residue
