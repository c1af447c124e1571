"""jaxgeo.metrics.regression against scipy.stats (random data, ties, masks, groups)."""
import numpy as np
import pytest
import scipy.stats

from jaxgeo import errors
from jaxgeo.metrics import regression


def _data(rng, n, n_levels=None):
  """Correlated random data; with n_levels, values drawn from few levels (many ties)."""
  if n_levels is None:
    a = rng.normal(size=n)
    b = a + rng.normal(size=n)
  else:
    a = rng.integers(0, n_levels, n).astype(float)
    b = rng.integers(0, n_levels, n) + 0.7 * a
  return a, b


@pytest.mark.parametrize("n", [2, 3, 7, 50, 501])
@pytest.mark.parametrize("n_levels", [None, 2, 4, 30])
def test_correlations_match_scipy(n, n_levels):
  rng = np.random.default_rng(n * 31 + (n_levels or 0))
  a, b = _data(rng, n, n_levels)
  a[0] += 1.0 if np.all(a == a[0]) else 0.0  # keep the correlations defined
  b[-1] += 1.0 if np.all(b == b[0]) else 0.0
  np.testing.assert_allclose(regression.pearson(a, b), scipy.stats.pearsonr(a, b)[0], atol=1e-12)
  np.testing.assert_allclose(regression.spearman(a, b), scipy.stats.spearmanr(a, b)[0],
                             atol=1e-12)
  np.testing.assert_allclose(regression.kendall(a, b), scipy.stats.kendalltau(a, b)[0],
                             atol=1e-12)


def test_kendall_large_with_ties():
  rng = np.random.default_rng(1)
  a, b = _data(rng, 20000, 50)
  np.testing.assert_allclose(regression.kendall(a, b), scipy.stats.kendalltau(a, b)[0],
                             atol=1e-12)


def test_kendall_extremes():
  x = np.arange(10.0)
  assert regression.kendall(x, x) == pytest.approx(1.0)
  assert regression.kendall(x, -x) == pytest.approx(-1.0)
  assert regression.spearman(x, x ** 3) == pytest.approx(1.0)


def test_rankdata_matches_scipy():
  rng = np.random.default_rng(2)
  x = rng.integers(0, 5, 40).astype(float)
  np.testing.assert_array_equal(regression.rankdata(x), scipy.stats.rankdata(x))


def test_rmse_mae():
  rng = np.random.default_rng(3)
  a, b = _data(rng, 100)
  assert regression.rmse(a, b) == pytest.approx(np.sqrt(np.mean((a - b) ** 2)))
  assert regression.mae(a, b) == pytest.approx(np.mean(np.abs(a - b)))
  assert np.isnan(regression.rmse([], []))


def test_mask_excludes_padding():
  rng = np.random.default_rng(4)
  a, b = _data(rng, 60, 6)
  mask = rng.random(60) < 0.6
  pad_a = np.where(mask, a, 1e6)  # garbage in padding rows must not matter
  pad_b = np.where(mask, b, -1e6)
  for name in ("pearson", "spearman", "kendall", "rmse", "mae"):
    fn = regression.METRICS[name]
    np.testing.assert_allclose(fn(pad_a, pad_b, mask=mask), fn(a[mask], b[mask]), atol=1e-12)


def test_undefined_correlations_are_nan():
  assert np.isnan(regression.pearson([1.0], [2.0]))
  assert np.isnan(regression.pearson([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]))
  assert np.isnan(regression.spearman([1.0, 2.0, 3.0], [5.0, 5.0, 5.0]))
  assert np.isnan(regression.kendall([2.0, 2.0], [1.0, 3.0]))


def test_per_group_mean_per_target():
  rng = np.random.default_rng(5)
  groups, a, b = [], [], []
  for g, size in enumerate([5, 8, 1, 4, 6]):  # group 2 has a single item: skipped
    x, y = _data(rng, size, 5)
    groups += [f"t{g}"] * size
    a.append(x)
    b.append(y)
  a, b, groups = np.concatenate(a), np.concatenate(b), np.array(groups)
  b[groups == "t3"] = 2.0  # constant prediction inside t3: skipped for correlations
  expected = [scipy.stats.spearmanr(a[groups == g], b[groups == g])[0] for g in ("t0", "t1", "t4")]
  assert regression.per_group("spearman", a, b, groups) == pytest.approx(np.mean(expected))
  values = regression.per_group_values("spearman", a, b, groups)
  assert sorted(values) == ["t0", "t1", "t4"]
  # RMSE needs no variation: t3 counts, the single-item group still does not.
  rmses = [np.sqrt(np.mean((a[groups == g] - b[groups == g]) ** 2))
           for g in ("t0", "t1", "t3", "t4")]
  assert regression.per_group("rmse", a, b, groups) == pytest.approx(np.mean(rmses))
  # A callable metric and a mask.
  mask = groups != "t1"
  assert regression.per_group(regression.spearman, a, b, groups, mask=mask) == pytest.approx(
      np.mean([expected[0], expected[2]]))
  assert np.isnan(regression.per_group("pearson", a[:1], b[:1], groups[:1]))


def test_errors():
  with pytest.raises(errors.DataError):
    regression.pearson([1.0, 2.0], [1.0, 2.0, 3.0])
  with pytest.raises(errors.DataError):
    regression.rmse([1.0, 2.0], [1.0, 2.0], mask=[True])
  with pytest.raises(errors.ConfigError):
    regression.per_group("r2", [1.0, 2.0], [1.0, 2.0], [0, 0])
