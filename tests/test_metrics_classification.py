"""jaxgeo.metrics.classification against scikit-learn (ties, masks, degenerate groups)."""
import numpy as np
import pytest
import sklearn.metrics

from jaxgeo import errors
from jaxgeo.metrics import classification


def _data(rng, n, n_levels=None, p=0.3):
  y = rng.random(n) < p
  s = y * 0.8 + rng.normal(size=n)
  if n_levels is not None:
    s = np.round(s * n_levels / 4.0)  # many tied scores
  return y, s


@pytest.mark.parametrize("n", [2, 5, 40, 1000])
@pytest.mark.parametrize("n_levels", [None, 1, 3, 10])
def test_pooled_matches_sklearn(n, n_levels):
  rng = np.random.default_rng(n + 7 * (n_levels or 0))
  y, s = _data(rng, n, n_levels)
  if y.all() or not y.any():
    y[0], y[-1] = True, False
  np.testing.assert_allclose(classification.auroc(y, s), sklearn.metrics.roc_auc_score(y, s),
                             atol=1e-12)
  np.testing.assert_allclose(classification.auprc(y, s),
                             sklearn.metrics.average_precision_score(y, s), atol=1e-12)


def test_all_scores_tied():
  y = np.array([1, 0, 0, 1, 0])
  s = np.zeros(5)
  assert classification.auroc(y, s) == pytest.approx(0.5)
  assert classification.auprc(y, s) == pytest.approx(sklearn.metrics.average_precision_score(y, s))
  assert classification.auprc(y, s) == pytest.approx(0.4)


def test_perfect_and_inverted():
  y = np.array([0, 0, 1, 1])
  s = np.array([0.1, 0.2, 0.8, 0.9])
  assert classification.auroc(y, s) == 1.0
  assert classification.auprc(y, s) == 1.0
  assert classification.auroc(y, -s) == 0.0


def test_degenerate_single_class():
  assert np.isnan(classification.auroc([1, 1, 1], [0.1, 0.5, 0.2]))
  assert np.isnan(classification.auroc([0, 0], [0.1, 0.5]))
  assert np.isnan(classification.auprc([0, 0], [0.1, 0.5]))
  # Only positives: precision is 1 at every threshold, as sklearn.
  assert classification.auprc([1, 1], [0.1, 0.5]) == 1.0
  assert sklearn.metrics.average_precision_score([1, 1], [0.1, 0.5]) == 1.0


def test_mask_excludes_padding():
  rng = np.random.default_rng(11)
  y, s = _data(rng, 80, 5)
  mask = rng.random(80) < 0.7
  y_pad = np.where(mask, y.astype(int), -1)  # padding labels are not even 0/1
  s_pad = np.where(mask, s, 99.0)
  for fn in (classification.auroc, classification.auprc):
    assert fn(y_pad, s_pad, mask=mask) == pytest.approx(fn(y[mask], s[mask]))


def test_per_group_skips_single_class_groups():
  rng = np.random.default_rng(12)
  ys, ss, gs = [], [], []
  for g, size in enumerate([30, 12, 20, 7]):
    y, s = _data(rng, size, 4)
    y[0], y[1] = True, False
    if g == 1:
      y[:] = False  # no positive: skipped
    if g == 3:
      y[:] = True  # no negative: skipped
    ys.append(y)
    ss.append(s)
    gs += [g] * size
  y, s, groups = np.concatenate(ys), np.concatenate(ss), np.array(gs)
  for name, ref in (("auroc", sklearn.metrics.roc_auc_score),
                    ("auprc", sklearn.metrics.average_precision_score)):
    expected = np.mean([ref(y[groups == g], s[groups == g]) for g in (0, 2)])
    assert classification.per_group(name, y, s, groups) == pytest.approx(expected)
    assert sorted(classification.per_group_values(name, y, s, groups)) == [0, 2]
  # A mask that leaves a group with one class skips it too.
  mask = ~((groups == 2) & y)
  assert sorted(classification.per_group_values("auroc", y, s, groups, mask=mask)) == [0]
  assert np.isnan(classification.per_group("auroc", y[groups == 1], s[groups == 1],
                                           groups[groups == 1]))


def test_errors():
  with pytest.raises(errors.DataError):
    classification.auroc([0, 2, 1], [0.1, 0.2, 0.3])
  with pytest.raises(errors.DataError):
    classification.auroc([0, 1], [0.1, 0.2, 0.3])
  with pytest.raises(errors.ConfigError):
    classification.per_group("f1", [0, 1], [0.1, 0.2], [0, 0])
