"""experiments/bench_esm2.py's table: the targets turned into arithmetic hold the JSON's
numbers (3x transformers as GFLOP/s against the matmul measured beside it; 2x on the first
run as a time budget against the warm rate)."""
import importlib.util
import pathlib

REPO = pathlib.Path(__file__).resolve().parent.parent


def _module():
  spec = importlib.util.spec_from_file_location("bench_esm2",
                                                REPO / "experiments" / "bench_esm2.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_targets_as_arithmetic():
  meta = {"sequences": "s", "cpus": 2, "load_average_start": 0.0, "load_average_end": 0.0,
          "jax": "x", "torch": "y", "transformers": "z", "max_tokens": 8192,
          "peak_gflops": 430.0, "residues": 20_000,
          "matmul": {"jax_gflops": 150.0, "torch_gflops": 140.0}}
  row = {"model": "m", "dtype": "float32", "transformers_first_res_per_s": 1000.0,
         "transformers_res_per_s": 1000.0, "first_res_per_s": 1500.0, "first_seconds": 13.3,
         "first_shapes": 4, "second_res_per_s": 1800.0, "second_seconds": 11.1,
         "second_cache_hits": 4, "second_shapes": 4, "warm_res_per_s": 2000.0,
         "first_ratio": 1.5, "second_ratio": 1.8, "warm_ratio": 2.0, "warm_gflops": 100.0,
         "warm_padded_gflops": 110.0, "warm_fraction_of_matmul": 100 / 150,
         "warm_fraction_of_peak": 100 / 430, "first_backend_seconds": 3.0,
         "second_backend_seconds": 0.2, "padding": 0.1}
  text = _module().markdown(meta, [row])
  # 0.05 GFLOP a residue (100 GFLOP/s at 2000 res/s); 3x of 1000 res/s = 150 GFLOP/s = 100%
  # of the matmul; 2x leaves 20000 / 2000 = 10 s, the warm rate alone needs 10 s.
  assert ("- m: 3x transformers is 3,000 res/s, 150 GFLOP/s of real tokens with nothing else "
          "in the run: 100% of the plain matmul measured at the same moment (150 GFLOP/s); "
          "2x on the first run leaves 10.0 s for compiling and computing 20,000 residues, "
          "which take 10.0 s at the warm rate alone.") in text
