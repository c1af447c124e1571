"""Rigid-body geometry: Kabsch superposition, RMSD, rigid motions, random rotations.

Conventions (numpy and jnp alike): a rigid motion is a pair (R `[3, 3]`, t `[3]`) acting on
row vectors, `x -> x @ R.T + t`; rotations are proper (det R = +1).

- Host (numpy, float64): `kabsch`, `apply_transform`, `superpose`, `rmsd`,
  `random_rotation`, `random_rigid_motion`. `jaxgeo.metrics.docking` superposes with these.
- Device (jnp, any float dtype, batched over leading axes, masked for padding):
  `kabsch_jnp`, `rotation_from_covariance`, `apply_transform_jnp`, `rmsd_jnp`,
  `random_rotation_jnp`.

Kabsch: with the centred covariance H = sum_i w_i (m_i - mu_m)(t_i - mu_t)^T = U S V^T, the
rotation maximising sum_i w_i t_i . R m_i over SO(3) is R = V diag(1, 1, d) U^T with
d = sign det(V U^T): a proper rotation even when a reflection would fit better.

Gradient of the jnp Kabsch. Differentiating through an SVD divides by differences of
singular values and is infinite or nan at repeated ones. We differentiate the rotation
directly instead (`rotation_from_covariance` has a custom VJP): R is the orthogonal polar
factor of M = H^T = (V D) diag(s1, s2, d s3) U^T, and with sigma = (s1, s2, d s3)

  dL/dM = R U [(C - C^T)_ij / (sigma_i + sigma_j)] U^T,    C = U^T R^T (dL/dR) U,

whose only singular points are sigma_i + sigma_j = 0: rank <= 1 covariances (collinear or
coincident points) and, when a reflection would fit better, s2 = s3. There the factor
1 / (sigma_i + sigma_j) is replaced by (sigma_i + sigma_j) / ((sigma_i + sigma_j)^2 + eps^2),
eps = 1e-4 s1 (+ a tiny absolute floor), so the gradient is finite everywhere (zero along the
undetermined directions) and exact wherever the rotation is well determined.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

_REL_EPS = 1e-4
_ABS_EPS2 = 1e-20
_TINY = 1e-12


# ------------------------------------------------------------------ numpy (host)


def kabsch(mobile, target, weights=None) -> tuple[np.ndarray, np.ndarray]:
  """Optimal rigid superposition of `mobile` onto `target`, rotation proper.

  Args:
    mobile: `[N, 3]` points to move (N >= 1).
    target: `[N, 3]` points to match, row i to row i.
    weights: optional `[N]` non-negative weights (default: all 1).
  Returns:
    (R `[3, 3]` float64 with det R = +1, t `[3]`) minimising
    sum_i w_i |R mobile_i + t - target_i|^2.
  """
  mobile = np.asarray(mobile, dtype=np.float64)
  target = np.asarray(target, dtype=np.float64)
  if weights is None:
    mu_m = mobile.mean(axis=0)
    mu_t = target.mean(axis=0)
    h = (mobile - mu_m).T @ (target - mu_t)
  else:
    w = np.asarray(weights, dtype=np.float64)
    total = max(float(w.sum()), _TINY)
    mu_m = (w[:, None] * mobile).sum(axis=0) / total
    mu_t = (w[:, None] * target).sum(axis=0) / total
    h = (w[:, None] * (mobile - mu_m)).T @ (target - mu_t)
  u, _, vt = np.linalg.svd(h)
  d = np.sign(np.linalg.det(vt.T @ u.T))
  d = 1.0 if d == 0 else d
  r = vt.T @ np.diag([1.0, 1.0, d]) @ u.T
  t = mu_t - r @ mu_m
  return r, t


def apply_transform(x, r, t) -> np.ndarray:
  """`x [..., 3] @ r.T + t` in float64."""
  return np.asarray(x, dtype=np.float64) @ np.asarray(r, dtype=np.float64).T + np.asarray(t)


def rotation_matrix(rotvec) -> np.ndarray:
  """Rotation [3, 3] of a rotation vector [3] (axis * angle in radians; Rodrigues)."""
  rotvec = np.asarray(rotvec, np.float64)
  angle = float(np.linalg.norm(rotvec))
  if angle < 1e-12:
    return np.eye(3)
  k = rotvec / angle
  kx = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
  return np.eye(3) + math.sin(angle) * kx + (1.0 - math.cos(angle)) * kx @ kx


def move_protein(protein, rotation, translation, centre=None):
  """A Protein moved rigidly: x -> R (x - c) + c + t for every coordinate (atom37 positions,
  backbone and CB; ligands too); masked atoms stay 0. rotation [3, 3], translation [3],
  centre [3] (default the origin). Computed in float64, stored float32."""
  import dataclasses
  rotation = np.asarray(rotation, np.float64)
  translation = np.asarray(translation, np.float64)
  centre = np.zeros(3) if centre is None else np.asarray(centre, np.float64)

  def move(x, mask=None):
    y = (np.asarray(x, np.float64) - centre) @ rotation.T + centre + translation
    if mask is not None:
      y = np.where(mask[..., None], y, 0.0)
    return y.astype(np.float32)

  ligands = tuple(dataclasses.replace(l, positions=move(l.positions)) for l in protein.ligands)
  return dataclasses.replace(
      protein, atom_positions=move(protein.atom_positions, protein.atom_mask),
      backbone=move(protein.backbone, protein.backbone_mask), cb=move(protein.cb),
      ligands=ligands)


def superpose(mobile, target) -> np.ndarray:
  """`mobile [N, 3]` moved onto `target [N, 3]` by `kabsch` (float64)."""
  r, t = kabsch(mobile, target)
  return apply_transform(mobile, r, t)


def rmsd(a, b, align: bool = False) -> float:
  """RMSD of `a [N, 3]` and `b [N, 3]` (row i to row i), after superposing a on b when
  `align`; nan for N = 0."""
  a = np.asarray(a, dtype=np.float64)
  b = np.asarray(b, dtype=np.float64)
  if a.shape[0] == 0:
    return float("nan")
  if align:
    a = superpose(a, b)
  return float(np.sqrt(np.mean(np.sum((a - b) ** 2, axis=-1))))


def _quaternion_to_matrix(q):
  """Unit quaternions `[..., 4]` (w, x, y, z) -> rotations `[..., 3, 3]` (numpy or jnp)."""
  xp = jnp if isinstance(q, jax.Array) else np
  w, x, y, z = (q[..., i] for i in range(4))
  rows = [
      [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
      [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
      [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
  ]
  return xp.stack([xp.stack(row, axis=-1) for row in rows], axis=-2)


def random_rotation(rng: np.random.Generator, shape: tuple[int, ...] = ()) -> np.ndarray:
  """Uniformly distributed (Haar) rotations `[*shape, 3, 3]` float64 from a numpy Generator
  (a normalised 4D Gaussian is a uniform unit quaternion)."""
  q = rng.standard_normal(tuple(shape) + (4,))
  q /= np.maximum(np.linalg.norm(q, axis=-1, keepdims=True), _TINY)
  return _quaternion_to_matrix(q)


def random_rigid_motion(rng: np.random.Generator, max_translation: float
                        ) -> tuple[np.ndarray, np.ndarray]:
  """A uniform rotation and a translation of uniform direction and length uniform in
  [0, max_translation] (EquiDock's ligand perturbation): (R `[3, 3]`, t `[3]`)."""
  r = random_rotation(rng)
  direction = rng.standard_normal(3)
  direction /= max(float(np.linalg.norm(direction)), _TINY)
  return r, direction * rng.uniform(0.0, max_translation)


# ------------------------------------------------------------------ jnp (device)


def random_rotation_jnp(key: jax.Array, shape: tuple[int, ...] = (), dtype=jnp.float32
                        ) -> jax.Array:
  """Uniform rotations `[*shape, 3, 3]` from a JAX key."""
  q = jax.random.normal(key, tuple(shape) + (4,), dtype)
  q = q / jnp.maximum(jnp.linalg.norm(q, axis=-1, keepdims=True), _TINY)
  return _quaternion_to_matrix(q)


def _svd_parts(h: jax.Array):
  """SVD pieces of covariances `h [..., 3, 3]`: (R, U, sigma) with R = V D U^T proper and
  sigma = (s1, s2, d s3) the signed singular values."""
  u, s, vt = jnp.linalg.svd(h)
  v = jnp.swapaxes(vt, -1, -2)
  d = jnp.sign(jnp.linalg.det(v) * jnp.linalg.det(u))
  d = jnp.where(d == 0, 1.0, d).astype(h.dtype)
  ones = jnp.ones_like(d)
  signs = jnp.stack([ones, ones, d], axis=-1)                                # [..., 3]
  r = jnp.einsum("...ij,...j,...kj->...ik", v, signs, u)                     # V D U^T
  return r, u, s * signs


@jax.custom_vjp
def rotation_from_covariance(h: jax.Array) -> jax.Array:
  """Kabsch rotation `[..., 3, 3]` from centred covariances `h [..., 3, 3]`
  (h = sum_i w_i m_i t_i^T): the proper R maximising tr(R h). Differentiable with a
  finite gradient everywhere (see the module docstring)."""
  return _svd_parts(h)[0]


def _rotation_fwd(h):
  r, u, sigma = _svd_parts(h)
  return r, (r, u, sigma)


def _rotation_bwd(residuals, g):
  r, u, sigma = residuals
  c = jnp.einsum("...ji,...kj,...kl,...lm->...im", u, r, g, u)               # U^T R^T G U
  denom = sigma[..., :, None] + sigma[..., None, :]                            # [..., 3, 3]
  scale = jnp.max(jnp.abs(sigma), axis=-1)[..., None, None]
  eps2 = jnp.square(_REL_EPS * scale) + _ABS_EPS2
  inverse = denom / (jnp.square(denom) + eps2)
  k = (c - jnp.swapaxes(c, -1, -2)) * inverse
  grad_m = jnp.einsum("...ij,...jk,...lk->...il", r, u @ k, u)                # R U K U^T
  return (jnp.swapaxes(grad_m, -1, -2),)                                      # dL/dH = (dL/dM)^T


rotation_from_covariance.defvjp(_rotation_fwd, _rotation_bwd)


def kabsch_jnp(mobile: jax.Array, target: jax.Array, mask: jax.Array | None = None
               ) -> tuple[jax.Array, jax.Array]:
  """Differentiable Kabsch, batched and masked.

  Args:
    mobile: `[..., N, 3]` points to move.
    target: `[..., N, 3]` points to match.
    mask: optional `[..., N]` weights (bool or float; 0 = padding).
  Returns:
    (R `[..., 3, 3]` proper rotations, t `[..., 3]`) minimising
    sum_i w_i |R mobile_i + t - target_i|^2. An all-masked set gives R = I-like, t = 0
    (finite values and gradients).
  """
  if mask is None:
    w = jnp.ones(mobile.shape[:-1], mobile.dtype)
  else:
    w = mask.astype(mobile.dtype)
  total = jnp.maximum(jnp.sum(w, axis=-1, keepdims=True), _TINY)               # [..., 1]
  mu_m = jnp.sum(w[..., None] * mobile, axis=-2) / total                      # [..., 3]
  mu_t = jnp.sum(w[..., None] * target, axis=-2) / total
  mc = (mobile - mu_m[..., None, :]) * w[..., None]
  tc = target - mu_t[..., None, :]
  h = jnp.einsum("...ni,...nj->...ij", mc, tc)
  r = rotation_from_covariance(h)
  t = mu_t - jnp.einsum("...ij,...j->...i", r, mu_m)
  return r, t


def apply_transform_jnp(x: jax.Array, r: jax.Array, t: jax.Array) -> jax.Array:
  """`x [..., N, 3]` moved by (r `[..., 3, 3]`, t `[..., 3]`): x @ r^T + t."""
  return jnp.einsum("...ij,...nj->...ni", r, x) + t[..., None, :]


def rmsd_jnp(a: jax.Array, b: jax.Array, mask: jax.Array | None = None,
             align: bool = False) -> jax.Array:
  """RMSD `[...]` of `a [..., N, 3]` and `b [..., N, 3]` over the rows where `mask`
  (default all), after superposing a on b when `align`."""
  w = jnp.ones(a.shape[:-1], a.dtype) if mask is None else mask.astype(a.dtype)
  if align:
    r, t = kabsch_jnp(a, b, w)
    a = apply_transform_jnp(a, r, t)
  sq = jnp.sum(jnp.square(a - b), axis=-1) * w
  return jnp.sqrt(jnp.sum(sq, axis=-1) / jnp.maximum(jnp.sum(w, axis=-1), _TINY))
