"""Shared test fixtures.

`shared_data` is `../shared/data` beside the repository; tests that use it skip cleanly
when it is absent. JAX's persistent compilation cache is switched on for the session so
that repeated runs of the suite compile less.
"""
import os
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
SHARED_DATA = pathlib.Path(os.environ.get("JAXGEO_SHARED_DATA", REPO.parent / "shared" / "data"))


def pytest_configure(config):
  import jax
  cache_dir = os.environ.get("JAXGEO_JAX_CACHE", str(REPO / ".jax_cache"))
  jax.config.update("jax_compilation_cache_dir", cache_dir)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


@pytest.fixture(scope="session")
def shared_data() -> pathlib.Path:
  if not SHARED_DATA.is_dir():
    pytest.skip(f"shared data not found at {SHARED_DATA}")
  return SHARED_DATA
