"""The CPU dot-fusion option of the training step: with it XLA fuses a matmul with its
elementwise consumers (a YNNPACK fusion holding a dot and more), without it every YNNPACK
fusion is a lone dot; it is CPU-only, can be turned off, and the trainer passes it to the
train step alone."""
import re

import jax
import jax.numpy as jnp
import pytest

from jaxgeo import train, xla_options
from test_train import tiny_config


def _ynn_fusions(hlo: str) -> list[list[str]]:
  """The ops of each YNNPACK fusion of compiled HLO text (parameters left out)."""
  fused = []
  for name in re.findall(r'kind=kCustom, calls=%([\w.\-]+),.*"kind":"__ynn_fusion"', hlo):
    body = re.search(r"\n%" + re.escape(name) + r" \(.*?\n\}", hlo, re.S).group()
    fused.append([op for op in re.findall(r"= \S+ ([\w\-]+)\(", body) if op != "parameter"])
  return fused


def _mlp_gradient_hlo(options) -> str:
  def loss(w1, w2, x):
    return jnp.sum(jax.nn.silu(x @ w1 + 1.0) @ w2)
  args = (jnp.ones((32, 32)), jnp.ones((32, 32)), jnp.ones((256, 32)))
  return jax.jit(jax.grad(loss, argnums=(0, 1)), compiler_options=options).lower(
      *args).compile().as_text()


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="an XLA CPU option")
def test_cpu_option_fuses_dots_with_their_elementwise_consumers():
  default = _ynn_fusions(_mlp_gradient_hlo(None))
  fused = _ynn_fusions(_mlp_gradient_hlo(xla_options.train_step("cpu")))
  assert default and all(ops == ["dot"] for ops in default)
  assert any("dot" in ops and len(ops) > 1 for ops in fused)


def test_options_are_for_cpu_and_can_be_turned_off():
  assert xla_options.train_step("cpu") == xla_options.CPU_DOT_FUSION
  assert xla_options.train_step("cpu", dot_fusion=False) == {}
  assert xla_options.train_step("gpu") == {} and xla_options.train_step("tpu") == {}
  assert xla_options.train_step("cpu", precision="bf16") == {}   # XLA's path to AMX
  # Data parallelism over CPU devices: each device's kernels on its own thread.
  assert xla_options.train_step("cpu", devices=2) == {**xla_options.CPU_DOT_FUSION,
                                                      **xla_options.CPU_DATA_PARALLEL}
  assert xla_options.eval_step("cpu", 2) == xla_options.CPU_DATA_PARALLEL
  assert xla_options.eval_step("cpu") == {} and xla_options.eval_step("gpu", 8) == {}
  assert xla_options.train_step("gpu", devices=8) == {}


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="an XLA CPU option")
def test_data_parallel_cpu_options_compile():
  # XLA names its options in this jaxlib: a jaxlib that drops one fails here first.
  assert _ynn_fusions(_mlp_gradient_hlo(xla_options.train_step("cpu", devices=2)))
  f = jax.jit(lambda x: x @ x, compiler_options=xla_options.eval_step("cpu", 2))
  assert float(f(jnp.ones((4, 4)))[0, 0]) == 4.0


@pytest.mark.parametrize("overrides, expected", [
    (["train.cpu_dot_fusion=True"], xla_options.CPU_DOT_FUSION),
    (["train.cpu_dot_fusion=False"], {}),
    (["train.cpu_dot_fusion=True", "train.precision=bf16"], {})])
def test_trainer_passes_the_options_to_its_train_step(monkeypatch, overrides, expected):
  seen = []
  make_steps = train.make_steps

  def spy(*args, **kwargs):
    seen.append(args[6] if len(args) > 6 else kwargs.get("compiler_options"))
    return make_steps(*args, **kwargs)

  monkeypatch.setattr(train, "make_steps", spy)
  train.prepare(tiny_config(*overrides))
  assert seen == [expected if jax.default_backend() == "cpu" else {}]


def test_esm2_forward_options_are_for_cpu():
  assert xla_options.esm2_forward("cpu") == xla_options.CPU_ESM2_FORWARD
  assert xla_options.CPU_ESM2_FORWARD == {"xla_cpu_use_fusion_emitters": False}
  assert xla_options.esm2_forward("gpu") == {} and xla_options.esm2_forward("tpu") == {}


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="an XLA CPU option")
def test_esm2_forward_options_compile_and_change_no_bit():
  # XLA names the option in this jaxlib (an unknown one is refused at compile time), and the
  # older kernel emitters compute softmax, layer norm and GELU bit for bit as the new ones.
  def f(x):
    y = jax.nn.softmax(x @ x.T, axis=-1) @ x
    y = (y - y.mean(-1, keepdims=True)) * jax.lax.rsqrt(y.var(-1, keepdims=True) + 1e-5)
    return jax.nn.gelu(y, approximate=False)
  x = jax.random.normal(jax.random.PRNGKey(0), (64, 48))
  want = jax.jit(f)(x)
  got = jax.jit(f, compiler_options=xla_options.esm2_forward("cpu"))(x)
  assert jnp.array_equal(got, want)
  with pytest.raises(Exception, match="xla_cpu_no_such_option"):
    jax.jit(f, compiler_options={"xla_cpu_no_such_option": False})(x)
