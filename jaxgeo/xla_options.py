"""XLA compiler options for the jitted training, evaluation and ESM-2 steps, by platform.

    jax.jit(train_step, compiler_options=xla_options.train_step("cpu"))

On CPU, XLA (jaxlib 0.10) hands matmuls to YNNPACK one dot at a time by default. With
`xla_cpu_experimental_ynn_fusion_type=LIBRARY_FUSION_TYPE_DOT` it forms YNNPACK fusions of a
dot and its elementwise consumers (bias adds, the products of the backward pass), so those
results are written once instead of once per op. The networks' training steps are
memory-bound per-edge work (`experiments/results/profile_nets.md`); on the 2-core benchmark
machine (DB5.5 packed batches, the two compilations timed in turn in one process) the option
made training steps 13% faster for GVP-GNN (717 vs 808 ms a batch), 7% for EGNN (61 vs 66
ms) and 9% for Molformer (114 vs 124 ms), while evaluation alone was no faster (GVP-GNN
169 vs 174 ms) or slower (EGNN 14.5 vs 12.4 ms, Molformer 41 vs 39 ms). So the option is
for training steps only; evaluation keeps XLA's defaults (measured again on a Xeon with
AMX, 2026-12-05: evaluation with the option no faster for GVP-GNN, slower for EGNN and
Molformer; experiments/results/bench_nets_2026-12-05.md), and other platforms get no
options. `experiments/bench_nets.py --train-options default` times XLA's defaults instead.

Mixed precision (`train.precision=bf16`) gets XLA's defaults on CPU: the networks' bfloat16
products ask for float32 results (`nets.precision`), which XLA's default CPU path runs on the
bfloat16 matrix units of CPUs that have them (Intel AMX), and the YNNPACK dot fusions do
not. Measured on a Xeon with AMX (2026-12-05, DB5.5 fixed batches of 8, one process,
`experiments/results/bench_nets_bf16_2026-12-05.md`): the paper's 1280-wide EGNN trains at
1.68 graphs/s in bfloat16 with the defaults, 0.99 with the fusions (float32: 1.15).

ESM-2's forward (`jaxgeo embed`) on CPU is compiled by XLA's older elemental kernel emitters
instead of its MLIR fusion emitters (`esm2_forward`): the same hidden states bit for bit, and
compilation, most of a first `jaxgeo embed` of a small data set, 1.3-1.7x shorter (DB5.5's
107 chains, four processes alternating: 35M float32 6.8 / 6.3 -> 3.9 / 4.0 s for 7 shapes,
the whole first run 17.2 / 16.8 -> 11.9 / 11.5 s; 8M 4.1 / 4.0 -> 2.6 / 3.2 s), warm passes
no slower (0.99-1.14x in one process). The networks keep the new emitters: with the option
GVP-GNN's training step compiled in 42 s instead of 22 and ran slower
(`experiments/results/bench_esm2_fusion_emitters_2026-12-06.md`).

The options name XLA flags of the pinned jaxlib (requirements.txt; the dot fusion an
experimental one); tests/test_xla_options.py compiles with them, so a jaxlib that drops one
fails there first. `jaxgeo train` applies the dot fusion to float32 training unless
`train.cpu_dot_fusion=False`.
"""
from __future__ import annotations

CPU_DOT_FUSION = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_DOT"}
# A step of a data-parallel run on CPU devices (`parallel.split_cpu`: one per core) runs each
# kernel on its own device's thread instead of splitting it over the host's cores.
CPU_DATA_PARALLEL = {"xla_cpu_multi_thread_eigen": False}
# ESM-2's forward on CPU: XLA's older elemental kernel emitters (`esm2_forward`).
CPU_ESM2_FORWARD = {"xla_cpu_use_fusion_emitters": False}


def train_step(platform: str, dot_fusion: bool = True, precision: str = "f32",
               devices: int = 1) -> dict:
  """Compiler options for a training step on `platform` ("cpu", "gpu", "tpu", ...) at
  `precision` (`train.precision`: "f32" or "bf16") over `devices` devices.

  -> the CPU dot-fusion options on CPU in float32 when `dot_fusion`, plus
  `CPU_DATA_PARALLEL` on several CPU devices; else {} (XLA's defaults)."""
  fused = dot_fusion and platform == "cpu" and precision == "f32"
  return {**(CPU_DOT_FUSION if fused else {}), **eval_step(platform, devices)}


def eval_step(platform: str, devices: int = 1) -> dict:
  """Compiler options for an evaluation step on `platform` over `devices` devices:
  `CPU_DATA_PARALLEL` on several CPU devices, else {} (XLA's defaults)."""
  return dict(CPU_DATA_PARALLEL) if platform == "cpu" and devices > 1 else {}


def esm2_forward(platform: str) -> dict:
  """Compiler options for ESM-2's jitted forward (`jaxgeo embed`) on `platform`:
  `CPU_ESM2_FORWARD` on CPU, else {} (XLA's defaults)."""
  return dict(CPU_ESM2_FORWARD) if platform == "cpu" else {}
