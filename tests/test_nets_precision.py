"""jaxgeo.nets.precision: float32 accumulation of the networks' matmuls and gathers in
bfloat16, and the plain operations in float32."""
import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import jaxpr_equations
from jaxgeo.nets import precision

BF16 = jnp.bfloat16


def _dots(fn, *args):
  return [e for e in jaxpr_equations(jax.make_jaxpr(fn)(*args).jaxpr)
          if e.primitive.name == "dot_general"]


def test_linear_is_hk_linear_in_float32():
  x = jax.random.normal(jax.random.PRNGKey(0), (5, 7))
  ours = hk.transform(lambda x: precision.Linear(3, name="layer")(x))
  theirs = hk.transform(lambda x: hk.Linear(3, name="layer")(x))
  p_ours, p_theirs = ours.init(jax.random.PRNGKey(1), x), theirs.init(jax.random.PRNGKey(1), x)
  assert jax.tree_util.tree_map(np.shape, p_ours) == jax.tree_util.tree_map(np.shape, p_theirs)
  for a, b in zip(jax.tree_util.tree_leaves(p_ours), jax.tree_util.tree_leaves(p_theirs)):
    np.testing.assert_array_equal(a, b)
  np.testing.assert_array_equal(ours.apply(p_ours, None, x), theirs.apply(p_theirs, None, x))
  # float32: the plain product and JAX's own derivative, no custom rule
  loss = lambda x, w: jnp.sum(precision.dense(x, w) ** 2)
  jaxpr = str(jax.make_jaxpr(jax.grad(loss, (0, 1)))(x, jnp.ones((7, 3))))
  assert "custom_vjp" not in jaxpr
  assert all(e.params["preferred_element_type"] in (None, jnp.float32)
             for e in _dots(jax.grad(loss, (0, 1)), x, jnp.ones((7, 3))))


@pytest.mark.parametrize("x_shape, n", [
    ((6, 3, 40), 9),      # a vector channel map [..., 3, K]
    ((100, 64), 80)])     # a weight gradient of at least CPU_TRANSPOSED_MIN rows and columns
def test_bfloat16_products_accumulate_in_float32_forward_and_backward(x_shape, n):
  kx, kw, kg = jax.random.split(jax.random.PRNGKey(2), 3)
  x = jax.random.normal(kx, x_shape).astype(BF16)
  w = jax.random.normal(kw, (x_shape[-1], n)).astype(BF16)
  g = jax.random.normal(kg, x_shape[:-1] + (n,)).astype(BF16)
  y, vjp = jax.vjp(precision.dense, x, w)
  dx, dw = jax.jit(vjp)(g)
  assert y.dtype == dx.dtype == dw.dtype == BF16
  # The float32 products of the same (bfloat16-exact) values, rounded once to bfloat16.
  x32, w32, g32 = (a.astype(jnp.float32) for a in (x, w, g))
  lead = tuple(range(x.ndim - 1))
  for ours, ref in ((y, x32 @ w32), (dx, g32 @ w32.T), (dw, jnp.tensordot(x32, g32, (lead, lead)))):
    ref = np.asarray(ref)
    np.testing.assert_allclose(np.asarray(ours.astype(jnp.float32)), ref,
                               rtol=2 ** -7, atol=2 ** -7 * np.abs(ref).max())
  # Every product of the forward and the backward pass (each platform's weight gradient
  # included) asks for a float32 result.
  dots = _dots(lambda x, w: jax.vjp(precision.dense, x, w)[1](g), x, w)
  assert len(dots) >= 3
  assert all(e.params["preferred_element_type"] == jnp.float32 for e in dots)


def test_gather_scatters_its_gradient_in_float32():
  x = jnp.arange(6, dtype=BF16).reshape(3, 2)
  index = jnp.concatenate([jnp.zeros(4096, jnp.int32), jnp.full(3, 2, jnp.int32)])
  np.testing.assert_array_equal(precision.gather(x, index), jnp.take(x, index, axis=0))
  grad = jax.grad(lambda x: jnp.sum(precision.gather(x, index).astype(jnp.float32)))(x)
  assert grad.dtype == BF16
  # 4096 ones summed in bfloat16 would stop at 256 (its 8-bit significand)
  np.testing.assert_array_equal(np.asarray(grad.astype(jnp.float32)),
                                [[4096, 4096], [0, 0], [3, 3]])
  x32 = x.astype(jnp.float32)      # float32: jnp.take and its own derivative
  assert str(jax.make_jaxpr(lambda x: precision.gather(x, index))(x32)) == str(
      jax.make_jaxpr(lambda x: jnp.take(x, index, axis=0))(x32))
