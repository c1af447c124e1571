"""jaxgeo.geometry: Kabsch (numpy and differentiable jnp), rigid motions, random rotations."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgeo import geometry
from jaxgeo.metrics import docking

MIRROR = np.diag([1.0, 1.0, -1.0])


def _points(rng, n=12):
  return rng.standard_normal((n, 3)) * 5.0


def _naive_kabsch_rotation(h):
  """Kabsch rotation through jnp's own SVD derivative (exact where singular values differ)."""
  u, _, vt = jnp.linalg.svd(h)
  d = jnp.sign(jnp.linalg.det(vt.T @ u.T))
  return vt.T @ jnp.diag(jnp.stack([1.0, 1.0, d])) @ u.T


def test_kabsch_recovers_known_motion_numpy_and_jnp():
  rng = np.random.default_rng(0)
  for _ in range(5):
    x = _points(rng)
    r, t = geometry.random_rotation(rng), rng.standard_normal(3) * 10
    y = geometry.apply_transform(x, r, t)
    r_np, t_np = geometry.kabsch(x, y)
    np.testing.assert_allclose(r_np, r, atol=1e-10)
    np.testing.assert_allclose(t_np, t, atol=1e-9)
    r_j, t_j = geometry.kabsch_jnp(jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32))
    np.testing.assert_allclose(np.asarray(r_j), r, atol=1e-5)
    np.testing.assert_allclose(np.asarray(t_j), t, atol=1e-4)
  # the metrics' Kabsch is this one
  r_m, t_m = docking.kabsch(x, y)
  np.testing.assert_array_equal(r_m, geometry.kabsch(x, y)[0])
  np.testing.assert_array_equal(t_m, geometry.kabsch(x, y)[1])


def test_kabsch_jnp_batched_and_masked_ignores_padding_rows():
  rng = np.random.default_rng(1)
  x = _points(rng, 10)
  rots = [geometry.random_rotation(rng) for _ in range(3)]
  ys = np.stack([geometry.apply_transform(x, r, np.full(3, i)) for i, r in enumerate(rots)])
  xs = np.stack([x] * 3)
  mask = np.ones((3, 10), bool)
  mask[1, 7:] = False
  ys[1, 7:] = rng.standard_normal((3, 3)) * 100.0   # garbage in padding rows
  r, t = geometry.kabsch_jnp(jnp.asarray(xs, jnp.float32), jnp.asarray(ys, jnp.float32),
                             jnp.asarray(mask))
  assert r.shape == (3, 3, 3) and t.shape == (3, 3)
  np.testing.assert_allclose(np.asarray(r), np.stack(rots), atol=1e-5)
  moved = geometry.apply_transform_jnp(jnp.asarray(xs, jnp.float32), r, t)
  np.testing.assert_allclose(np.asarray(moved)[mask], ys[mask], atol=1e-3)


def test_kabsch_never_reflects_even_when_a_reflection_fits_better():
  rng = np.random.default_rng(2)
  x = _points(rng, 20)
  y = x @ MIRROR.T + 3.0                            # a mirror image: fits exactly by reflection
  r, t = geometry.kabsch(x, y)
  assert np.linalg.det(r) == pytest.approx(1.0, abs=1e-12)
  np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
  proper = geometry.rmsd(geometry.apply_transform(x, r, t), y)
  assert proper > 0.5                               # no proper rotation reaches the mirror image
  # and it is the best proper one: no random rotation does better
  for _ in range(200):
    q = geometry.random_rotation(rng)
    assert geometry.rmsd(x, y, align=False) >= 0 and proper <= geometry.rmsd(
        geometry.apply_transform(x, q, y.mean(0) - q @ x.mean(0)), y) + 1e-9
  r_j, _ = geometry.kabsch_jnp(jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32))
  assert float(jnp.linalg.det(r_j)) == pytest.approx(1.0, abs=1e-5)
  np.testing.assert_allclose(np.asarray(r_j), r, atol=1e-4)


def test_rmsd_after_superposition_numpy_and_jnp():
  rng = np.random.default_rng(3)
  x = _points(rng)
  y = geometry.apply_transform(x, geometry.random_rotation(rng), rng.standard_normal(3))
  y_noisy = y + rng.standard_normal(y.shape) * 0.3
  assert geometry.rmsd(x, y, align=True) == pytest.approx(0.0, abs=1e-9)
  value = geometry.rmsd(x, y_noisy, align=True)
  assert 0.2 < value < geometry.rmsd(y, y_noisy)   # the optimum beats the true motion
  assert value == docking.rmsd(x, y_noisy, align=True)
  got = geometry.rmsd_jnp(jnp.asarray(x, jnp.float32), jnp.asarray(y_noisy, jnp.float32),
                          align=True)
  assert float(got) == pytest.approx(value, rel=1e-4)
  assert np.isnan(geometry.rmsd(np.zeros((0, 3)), np.zeros((0, 3))))


def test_random_rotations_are_proper_and_uniform():
  rng = np.random.default_rng(4)
  r_np = geometry.random_rotation(rng, (2000,))
  r_j = np.asarray(geometry.random_rotation_jnp(jax.random.PRNGKey(0), (2000,)))
  for r, tol in ((r_np, 1e-12), (r_j, 1e-5)):
    assert r.shape == (2000, 3, 3)
    np.testing.assert_allclose(np.linalg.det(r), 1.0, atol=tol)
    np.testing.assert_allclose(r @ np.swapaxes(r, 1, 2), np.broadcast_to(np.eye(3), r.shape),
                               atol=tol * 10)
    # Haar measure: E[R] = 0 and E[R_ij^2] = 1/3
    assert np.abs(r.mean(axis=0)).max() < 0.06
    np.testing.assert_allclose((r ** 2).mean(axis=0), 1.0 / 3.0, atol=0.03)
  a, b = geometry.random_rotation(np.random.default_rng(5)), geometry.random_rotation(
      np.random.default_rng(5))
  np.testing.assert_array_equal(a, b)
  r, t = geometry.random_rigid_motion(np.random.default_rng(6), 5.0)
  assert np.linalg.norm(t) <= 5.0 and np.linalg.det(r) == pytest.approx(1.0)


def test_kabsch_gradient_matches_svd_gradient_where_defined():
  rng = np.random.default_rng(7)
  for sign in (1.0, -1.0):                           # covariances with det > 0 and det < 0
    h = rng.standard_normal((3, 3))
    if np.sign(np.linalg.det(h)) != sign:
      h[:, 0] *= -1
    h = jnp.asarray(h, jnp.float32)
    w = jnp.asarray(rng.standard_normal((3, 3)), jnp.float32)
    ours = jax.jit(jax.grad(lambda m: jnp.sum(w * geometry.rotation_from_covariance(m))))(h)
    naive = jax.jit(jax.grad(lambda m: jnp.sum(w * _naive_kabsch_rotation(m))))(h)
    np.testing.assert_allclose(np.asarray(ours), np.asarray(naive), atol=1e-4, rtol=1e-3)
  # and against central finite differences in float64
  with jax.enable_x64(True):
    h = jnp.asarray(rng.standard_normal((3, 3)))
    w = jnp.asarray(rng.standard_normal((3, 3)))
    f = jax.jit(lambda m: jnp.sum(w * geometry.rotation_from_covariance(m), axis=(-2, -1)))
    grad = np.asarray(jax.jit(jax.grad(f))(h))
    steps = np.eye(9).reshape(9, 3, 3) * 1e-6
    numeric = ((f(h + steps) - f(h - steps)) / 2e-6).reshape(3, 3)
    np.testing.assert_allclose(grad, numeric, atol=1e-6)


def _tetrahedron():
  return np.array([[1.0, 1.0, 1.0], [1.0, -1.0, -1.0], [-1.0, 1.0, -1.0], [-1.0, -1.0, 1.0]])


@pytest.mark.parametrize("case", ["collinear", "coincident", "isotropic", "isotropic_mirror",
                                  "planar_mirror"])
def test_kabsch_gradient_is_finite_on_degenerate_inputs(case):
  rng = np.random.default_rng(8)
  if case == "collinear":                            # rank 1: s2 = s3 = 0
    mobile = np.linspace(0, 1, 8)[:, None] * np.array([1.0, 2.0, 3.0])
    target = mobile @ geometry.random_rotation(rng).T + 1.0
  elif case == "coincident":                         # H = 0: all singular values 0
    mobile = np.ones((6, 3))
    target = _points(rng, 6)
  elif case == "isotropic":                          # s1 = s2 = s3
    mobile = _tetrahedron()
    target = mobile @ geometry.random_rotation(rng).T
  elif case == "isotropic_mirror":                   # s1 = s2 = s3 and a reflection fits: the
    mobile = _tetrahedron()                          # proper rotation is not unique
    target = mobile @ MIRROR.T
  else:                                              # coplanar, mirrored in the plane's normal
    mobile = np.concatenate([rng.standard_normal((8, 2)), np.zeros((8, 1))], axis=1)
    target = mobile @ MIRROR.T
  mobile = jnp.asarray(mobile, jnp.float32)
  target = jnp.asarray(target, jnp.float32)

  def loss(m, t):                                   # batched [1, N, 3], jitted
    r, shift = geometry.kabsch_jnp(m, t)
    fit = jnp.sum(jnp.square(geometry.apply_transform_jnp(m, r, shift) - t))
    return fit + jnp.sum(r * jnp.arange(9.0).reshape(3, 3)), r

  grads, r = jax.jit(jax.grad(loss, argnums=(0, 1), has_aux=True))(mobile[None], target[None])
  assert float(jnp.linalg.det(r[0])) == pytest.approx(1.0, abs=1e-5)
  for g in grads:
    assert np.isfinite(np.asarray(g)).all()
