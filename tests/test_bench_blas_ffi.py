"""experiments/bench_blas_ffi.py: the custom call computes the same products and gradients as
XLA (through numpy's own OpenBLAS, so no MKL is needed), and a missing library is one clear
error. Skipped without g++."""
import glob
import os
import shutil

import numpy as np
import pytest


import bench_blas_ffi  # experiments/ (tests/conftest.py)


def _numpy_openblas():
  libs = os.path.join(os.path.dirname(os.path.dirname(np.__file__)), "numpy.libs")
  found = sorted(glob.glob(os.path.join(libs, "libscipy_openblas64_*.so")))
  return found[0] if found else None


@pytest.fixture(scope="module")
def registered(tmp_path_factory):
  if shutil.which("g++") is None:
    pytest.skip("no g++")
  blas = _numpy_openblas()
  if blas is None:
    pytest.skip("numpy without its bundled ILP64 OpenBLAS")
  handler = bench_blas_ffi.build(tmp_path_factory.mktemp("blas_ffi"))
  bench_blas_ffi.register(handler, blas, "scipy_cblas_sgemm64_", ilp64=True)


def test_products_match_xla_in_every_layout(registered):
  import jax.numpy as jnp
  rng = np.random.default_rng(0)
  a = jnp.asarray(rng.standard_normal((37, 11), np.float32))
  b = jnp.asarray(rng.standard_normal((11, 5), np.float32))
  g = jnp.asarray(rng.standard_normal((37, 5), np.float32))
  cases = [(bench_blas_ffi.matmul(a, b), a @ b),
           (bench_blas_ffi.matmul(a, g, trans_a=True), a.T @ g),
           (bench_blas_ffi.matmul(g, b, trans_b=True), g @ b.T)]
  empty = jnp.zeros((4, 0), jnp.float32)
  cases.append((bench_blas_ffi.matmul(empty, jnp.zeros((0, 3), jnp.float32)),
                jnp.zeros((4, 3), jnp.float32)))                  # K = 0: an empty sum
  for ours, ref in cases:
    assert ours.shape == ref.shape
    np.testing.assert_allclose(np.asarray(ours), np.asarray(ref), rtol=1e-5, atol=1e-5)


def test_dense_matches_jnp_dot_with_gradients(registered):
  dense = bench_blas_ffi.blas_dense(min_size=8)
  bench_blas_ffi.check(dense)            # raises when a value or a gradient differs


def test_dense_is_a_custom_call_only_above_min_size(registered):
  import jax
  import jax.numpy as jnp
  x = jnp.ones((6, 3, 40), jnp.float32)
  for min_size, calls in ((32, True), (64, False)):
    text = str(jax.make_jaxpr(bench_blas_ffi.blas_dense(min_size))(x, jnp.ones((40, 48))))
    assert ("ffi_call" in text) == calls


def test_missing_library_is_one_clear_error(tmp_path):
  with pytest.raises(SystemExit, match="no such file"):
    bench_blas_ffi.find_blas(str(tmp_path / "libnone.so"))
