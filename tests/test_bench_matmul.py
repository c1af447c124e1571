"""experiments/bench_matmul.py: shapes parsed or refused with a clear message, finite positive
rates for float32 and bfloat16 (a bfloat16 matmul with a float32 result too), and the table's
ratio column."""
import argparse
import math

import pytest


import bench_matmul  # experiments/ (tests/conftest.py)


def test_parse_shape():
  assert bench_matmul.parse_shape("2816x116X100") == (2816, 116, 100)
  with pytest.raises(argparse.ArgumentTypeError, match="expected MxKxN"):
    bench_matmul.parse_shape("2816x116")
  with pytest.raises(argparse.ArgumentTypeError, match="at least 1"):
    bench_matmul.parse_shape("0x4x4")


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_rates_are_finite_and_positive(dtype):
  row = bench_matmul.bench_shape((64, 32, 16), dtype, repeats=2)
  assert row["shape"] == "64x32x16" and row["dtype"] == dtype
  for key in ("xla_default", "xla_train_options", "xla_f32_result", "torch"):
    if row[key] is None:
      assert key == "torch" or (key == "xla_f32_result" and dtype == "float32")
      continue
    assert math.isfinite(row[key]) and row[key] > 0
  assert (row["xla_f32_result"] is None) == (dtype == "float32")


def test_table_ratio_uses_the_faster_xla_setting():
  rows = [{"shape": "8x8x8", "dtype": "float32", "xla_default": 100.0,
           "xla_train_options": 150.0, "xla_f32_result": None, "torch": 200.0},
          {"shape": "8x8x8", "dtype": "bfloat16", "xla_default": 50.0,
           "xla_train_options": 40.0, "xla_f32_result": 300.0, "torch": None},
          {"shape": "8x8x8", "dtype": "bfloat16", "xla_default": 50.0,
           "xla_train_options": 40.0, "xla_f32_result": 300.0, "torch": 600.0}]
  lines = bench_matmul.table(rows).splitlines()
  assert lines[2] == "| 8x8x8 | float32 | 100 | 150 | - | 200 | 0.75 |"
  assert lines[3] == "| 8x8x8 | bfloat16 | 50 | 40 | 300 | - | - |"
  assert lines[4] == "| 8x8x8 | bfloat16 | 50 | 40 | 300 | 600 | 0.50 |"
