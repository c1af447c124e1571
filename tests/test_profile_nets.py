"""experiments/profile_nets.py: the matmul FLOPs counted from a jaxpr (scan bodies times their
length, a cond's costliest branch, rematerialised forwards), op kinds of both frameworks, the
side-by-side table, and the PyTorch profile of a port on real graphs."""
import math

import jax
import jax.numpy as jnp
import pytest


import profile_nets  # experiments/ (tests/conftest.py)


def test_matmul_flops_counts_scans_in_full_and_the_costliest_branch():
  x, w, c, w2 = jnp.ones((4, 3)), jnp.ones((3, 2)), jnp.ones((4, 4)), jnp.ones((4, 4))

  def f(x, w, c, w2, p):
    y = x @ w                                                            # 2*4*2*3 = 48
    c, _ = jax.lax.scan(lambda c, _: (c @ w2, None), c, None, length=5)  # 5 * 2*4*4*4 = 640
    z = jax.lax.cond(p, lambda: c[:2, :2] @ c[:2, :2],                   # 2*2*2*2 = 16
                     lambda: jnp.zeros((2, 2)))
    return y, c, z

  assert profile_nets.matmul_flops(jax.make_jaxpr(f)(x, w, c, w2, True)) == 48 + 640 + 16


def test_matmul_flops_counts_the_rematerialised_forward():
  x, w = jnp.ones((4, 3)), jnp.ones((3, 2))
  loss = lambda w: jnp.sum((x @ w) ** 2)
  plain = profile_nets.matmul_flops(jax.make_jaxpr(jax.value_and_grad(loss))(w))
  remat = profile_nets.matmul_flops(
      jax.jit(jax.value_and_grad(jax.checkpoint(loss))).trace(w).jaxpr)
  assert plain == 48 + 48          # forward, weight gradient
  assert remat == plain + 48       # and the forward again in the backward pass


@pytest.mark.parametrize("name, kind", [
    ("aten::mm", "matmul"), ("aten::addmm", "matmul"), ("aten::index_select", "gather"),
    ("aten::index_add_", "scatter"), ("aten::_index_put_impl_", "scatter"),
    ("aten::cat", "concatenate / slice"), ("aten::copy_", "copy / transpose"),
    ("aten::mkldnn_convolution", "matmul"), ("aten::convolution_backward", "matmul"),
    ("aten::mul", profile_nets.OTHER), ("aten::mm_backward", profile_nets.OTHER)])
def test_torch_op_kinds(name, kind):
  assert profile_nets.kind_of(name, profile_nets.TORCH_KINDS) == kind


def test_xla_op_kinds_unchanged():
  assert profile_nets.kind_of("ynn_fusion") == "matmul"
  assert profile_nets.kind_of("dot") == "matmul"
  assert profile_nets.kind_of("while") == "while / cond (layer scan, branches)"
  assert profile_nets.kind_of("add_bitcast_fusion") == profile_nets.OTHER


def test_side_by_side_rows_and_matmul_rates():
  lines = profile_nets.side_by_side({"matmul": 100.0, "gather": 10.0},
                                    {"matmul": 50.0, "scatter": 5.0}, 150.0, 75.0, 1e10, 2e10)
  assert lines[2] == "| matmul | 100.0 | 50.0 | 2.00 |"
  assert lines[3] == "| gather | 10.0 | 0.0 | - |"
  assert lines[4] == "| scatter | 0.0 | 5.0 | 0.00 |"
  assert lines[5] == "| **step, untraced** | **150** | **75** | **2.00** |"
  # 1e10 FLOPs in 100 ms = 100 GFLOP/s; 2e10 in 50 ms = 400 GFLOP/s.
  assert lines[-1] == ("Matmuls: jaxgeo 10.00 GFLOP a step at 100 GFLOP/s of traced matmul "
                       "time; PyTorch 20.00 GFLOP at 400 GFLOP/s.")


def test_profile_torch_on_real_graphs(shared_data):
  if not (shared_data / "db5.5" / "structures").is_dir():
    pytest.skip(f"{shared_data}/db5.5/structures absent")
  pytest.importorskip("torch")
  import bench_nets
  graphs = bench_nets.load_db55(shared_data / "db5.5", limit=2, smallest=True)
  seconds, per_op, flops = profile_nets.profile_torch("egnn", [graphs], 0, "train")
  assert seconds > 0 and math.isfinite(seconds)
  matmul_ms = sum(ms for name, ms in per_op.items()
                  if profile_nets.kind_of(name, profile_nets.TORCH_KINDS) == "matmul")
  assert matmul_ms > 0
  # At least the forward of the four layers' edge MLPs' first linear map on every edge.
  edges = sum(int(g.n_edge[0]) for g in graphs)
  assert flops >= 4 * 2 * edges * (2 * 32 + 1 + 36) * 32
  assert profile_nets.profile_torch("no_such_network", [graphs], 0, "eval") is None
