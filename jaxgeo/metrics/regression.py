"""Regression metrics on the host (numpy): correlations, RMSE and means per group.

Every function takes `y_true [N]` and `y_pred [N]` and an optional boolean `mask [N]`
(True = a real item). Padding rows must be masked out: they never count.

Conventions:
- Values are computed in float64 and returned as Python floats.
- A correlation that is undefined (fewer than 2 items, or a constant input) is `nan`,
  as in scipy.stats (which also returns nan there, with a warning).
- `kendall` is Kendall's tau-b (ties corrected), the default of `scipy.stats.kendalltau`,
  computed in O(N log^2 N) time and O(N) memory (no N x N matrices).
- `spearman` ranks ties by their average rank (`scipy.stats.rankdata(method="average")`).
- `per_group(metric, y_true, y_pred, groups)` is the "mean per target" of the PSR/LBA
  literature: the metric is computed inside each group and the group values are averaged
  (unweighted). A group counts only when it has at least `min_size` (default 2) unmasked
  items and, for correlations, neither `y_true` nor `y_pred` is constant inside it (the
  correlation would be undefined there); skipped groups are left out of the mean.
"""
from __future__ import annotations

from typing import Callable, Union

import numpy as np

from jaxgeo import errors

Metric = Union[str, Callable[..., float]]


def masked_pair(y_true, y_pred, mask=None, true_dtype=np.float64
                ) -> tuple[np.ndarray, np.ndarray]:
  """Flattens two arrays, checks they have the same length, applies an optional bool mask.
  Returns (`y_true` as `true_dtype` (None: as given), `y_pred` float64), each `[M]`."""
  y_true = np.asarray(y_true, dtype=true_dtype).reshape(-1)
  y_pred = np.asarray(y_pred, dtype=np.float64).reshape(-1)
  if y_true.shape != y_pred.shape:
    raise errors.DataError(
        f"metrics: y_true has {y_true.shape[0]} items but the predictions have {y_pred.shape[0]}")
  if mask is not None:
    mask = np.asarray(mask).reshape(-1)
    if mask.shape != y_true.shape:
      raise errors.DataError(
          f"metrics: mask has {mask.shape[0]} items but the labels have {y_true.shape[0]}")
    mask = mask.astype(bool)
    y_true, y_pred = y_true[mask], y_pred[mask]
  return y_true, y_pred


def _prepare(y_true, y_pred, mask=None) -> tuple[np.ndarray, np.ndarray]:
  """Two float64 arrays `[M]`, masked (see `masked_pair`)."""
  return masked_pair(y_true, y_pred, mask)


def rankdata(x: np.ndarray) -> np.ndarray:
  """Ranks 1..N with ties given their average rank (as scipy.stats.rankdata).

  Args:
    x: `[N]` values.
  Returns:
    `[N]` float64 ranks.
  """
  x = np.asarray(x).reshape(-1)
  n = x.shape[0]
  order = np.argsort(x, kind="mergesort")
  xs = x[order]
  # Start index of each run of equal values in sorted order.
  new_run = np.concatenate([[True], xs[1:] != xs[:-1]]) if n else np.zeros(0, bool)
  run_id = np.cumsum(new_run) - 1
  starts = np.flatnonzero(new_run)
  ends = np.concatenate([starts[1:], [n]])
  avg = (starts + ends + 1) / 2.0  # mean of ranks start+1 .. end
  ranks = np.empty(n, dtype=np.float64)
  ranks[order] = avg[run_id]
  return ranks


def pearson(y_true, y_pred, mask=None) -> float:
  """Pearson correlation coefficient.

  Args:
    y_true: `[N]` targets.
    y_pred: `[N]` predictions.
    mask: optional `[N]` bool, True for items that count.
  Returns:
    r in [-1, 1]; nan with fewer than 2 items or a constant input.
  """
  a, b = _prepare(y_true, y_pred, mask)
  return _pearson(a, b)


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
  if a.shape[0] < 2:
    return float("nan")
  a = a - a.mean()
  b = b - b.mean()
  # Scale first so that the products cannot overflow and constant inputs are exact zeros.
  na = np.sqrt(np.dot(a, a))
  nb = np.sqrt(np.dot(b, b))
  if na == 0.0 or nb == 0.0:
    return float("nan")
  r = np.dot(a / na, b / nb)
  return float(np.clip(r, -1.0, 1.0))


def spearman(y_true, y_pred, mask=None) -> float:
  """Spearman rank correlation (Pearson correlation of average ranks).

  Args:
    y_true: `[N]` targets.
    y_pred: `[N]` predictions.
    mask: optional `[N]` bool.
  Returns:
    rho in [-1, 1]; nan with fewer than 2 items or a constant input.
  """
  a, b = _prepare(y_true, y_pred, mask)
  if a.shape[0] < 2:
    return float("nan")
  return _pearson(rankdata(a), rankdata(b))


def _count_inversions(values: np.ndarray) -> int:
  """Number of pairs i < j with values[i] > values[j] (strict), for int values >= 0.

  Bottom-up merge sort, each level vectorised: O(N log^2 N) time, O(N) memory.
  """
  a = np.asarray(values, dtype=np.int64).copy()
  n = a.shape[0]
  if n < 2:
    return 0
  m = int(a.max()) + 1
  idx = np.arange(n)
  total = 0
  width = 1
  while width < n:
    pair = idx // (2 * width)
    is_right = (idx // width) % 2 == 1
    key = pair * m + a  # inside a pair, keys order as values; pairs stay apart
    left = key[~is_right]  # each left block is sorted, so all left keys are sorted
    right = key[is_right]
    right_pair = pair[is_right]
    # Left items of the same pair greater than the right item.
    end = np.searchsorted(left, (right_pair + 1) * m, side="left")
    not_greater = np.searchsorted(left, right, side="right")
    total += int(np.sum(end - not_greater))
    key = np.sort(key, kind="stable")  # merge every pair of blocks
    a = key - (key // m) * m
    width *= 2
  return total


def _tie_pairs(x: np.ndarray) -> int:
  """Sum over runs of equal values of t (t - 1) / 2, for sorted x `[N]`."""
  if x.shape[0] < 2:
    return 0
  new_run = np.concatenate([[True], x[1:] != x[:-1], [True]])
  sizes = np.diff(np.flatnonzero(new_run)).astype(np.int64)
  return int(np.sum(sizes * (sizes - 1) // 2))


def kendall(y_true, y_pred, mask=None) -> float:
  """Kendall's tau-b (ties corrected), as scipy.stats.kendalltau(variant="b").

  tau_b = (C - D) / sqrt((n0 - n1) (n0 - n2)) with C / D the concordant / discordant pairs,
  n0 = N (N - 1) / 2 and n1, n2 the pairs tied in y_true, y_pred.

  Args:
    y_true: `[N]` targets.
    y_pred: `[N]` predictions.
    mask: optional `[N]` bool.
  Returns:
    tau in [-1, 1]; nan with fewer than 2 items or a constant input.
  """
  a, b = _prepare(y_true, y_pred, mask)
  n = a.shape[0]
  if n < 2:
    return float("nan")
  # Dense integer ranks keep the comparisons exact.
  ra = np.unique(a, return_inverse=True)[1].reshape(-1)
  rb = np.unique(b, return_inverse=True)[1].reshape(-1)
  order = np.lexsort((rb, ra))  # by a, ties by b
  ra, rb = ra[order], rb[order]
  n0 = n * (n - 1) // 2
  n1 = _tie_pairs(ra)
  n2 = _tie_pairs(np.sort(rb))
  joint = ra.astype(np.int64) * (int(rb.max()) + 1) + rb  # sorted, since order is by (a, b)
  n3 = _tie_pairs(joint)
  discordant = _count_inversions(rb)
  concordant_minus_discordant = n0 - n1 - n2 + n3 - 2 * discordant
  denominator = float(n0 - n1) * float(n0 - n2)
  if denominator <= 0.0:
    return float("nan")
  tau = concordant_minus_discordant / np.sqrt(denominator)
  return float(np.clip(tau, -1.0, 1.0))


def rmse(y_true, y_pred, mask=None) -> float:
  """Root mean squared error; nan when no item counts.

  Args:
    y_true: `[N]` targets.
    y_pred: `[N]` predictions.
    mask: optional `[N]` bool.
  """
  a, b = _prepare(y_true, y_pred, mask)
  if a.shape[0] == 0:
    return float("nan")
  return float(np.sqrt(np.mean((a - b) ** 2)))


def mae(y_true, y_pred, mask=None) -> float:
  """Mean absolute error; nan when no item counts.

  Args:
    y_true: `[N]` targets.
    y_pred: `[N]` predictions.
    mask: optional `[N]` bool.
  """
  a, b = _prepare(y_true, y_pred, mask)
  if a.shape[0] == 0:
    return float("nan")
  return float(np.mean(np.abs(a - b)))


METRICS: dict[str, Callable[..., float]] = {
    "pearson": pearson,
    "spearman": spearman,
    "kendall": kendall,
    "rmse": rmse,
    "mae": mae,
}
_CORRELATIONS = frozenset({"pearson", "spearman", "kendall"})


def _resolve(metric: Metric) -> tuple[Callable[..., float], bool]:
  """Returns (function, needs_non_constant_values)."""
  if callable(metric):
    return metric, metric in (pearson, spearman, kendall)
  if metric not in METRICS:
    raise errors.ConfigError(
        f"metrics: unknown regression metric {metric!r}; choose from {sorted(METRICS)}")
  return METRICS[metric], metric in _CORRELATIONS


def group_slices(groups, mask=None) -> dict:
  """Indices of the (unmasked) items of each group.

  Args:
    groups: `[N]` group labels (any hashable numpy dtype: ints, strings).
    mask: optional `[N]` bool.
  Returns:
    {group label: `[n_g]` int indices into the `[N]` arrays}, in sorted label order.
  """
  groups = np.asarray(groups).reshape(-1)
  keep = np.ones(groups.shape[0], bool) if mask is None else np.asarray(mask, bool).reshape(-1)
  if keep.shape != groups.shape:
    raise errors.DataError(
        f"metrics: mask has {keep.shape[0]} items but groups has {groups.shape[0]}")
  index = np.flatnonzero(keep)
  labels, inverse = np.unique(groups[index], return_inverse=True)
  inverse = inverse.reshape(-1)
  order = np.argsort(inverse, kind="stable")
  bounds = np.searchsorted(inverse[order], np.arange(labels.shape[0] + 1))
  return {
      labels[g].item(): index[order[bounds[g]:bounds[g + 1]]] for g in range(labels.shape[0])
  }


def per_group_values(metric: Metric, y_true, y_pred, groups, mask=None,
                     min_size: int = 2) -> dict:
  """The metric inside each group that counts (see the module notes for the rule).

  Args:
    metric: a name in METRICS or a function f(y_true, y_pred) -> float.
    y_true: `[N]` targets.
    y_pred: `[N]` predictions.
    groups: `[N]` group labels (e.g. the target of each decoy).
    mask: optional `[N]` bool.
    min_size: the fewest unmasked items a group needs to count.
  Returns:
    {group label: metric value} for the groups that count.
  """
  fn, needs_variation = _resolve(metric)
  y_true = np.asarray(y_true, dtype=np.float64).reshape(-1)
  y_pred = np.asarray(y_pred, dtype=np.float64).reshape(-1)
  if y_true.shape != y_pred.shape or np.asarray(groups).size != y_true.shape[0]:
    raise errors.DataError(
        f"metrics: y_true, y_pred and groups differ in length ({y_true.shape[0]}, "
        f"{y_pred.shape[0]}, {np.asarray(groups).size})")
  values = {}
  for label, index in group_slices(groups, mask).items():
    if index.shape[0] < min_size:
      continue
    a, b = y_true[index], y_pred[index]
    if needs_variation and (np.all(a == a[0]) or np.all(b == b[0])):
      continue
    value = fn(a, b)
    if np.isfinite(value):
      values[label] = float(value)
  return values


def per_group(metric: Metric, y_true, y_pred, groups, mask=None, min_size: int = 2) -> float:
  """Mean over groups of the metric computed inside each group ("mean per target").

  Groups with fewer than `min_size` unmasked items, or (correlations) a constant y_true or
  y_pred inside the group, are skipped; the mean is unweighted over the groups that count.

  Args:
    metric: a name in METRICS ("pearson", "spearman", "kendall", "rmse", "mae") or a
      function f(y_true, y_pred) -> float.
    y_true: `[N]` targets.
    y_pred: `[N]` predictions.
    groups: `[N]` group labels.
    mask: optional `[N]` bool.
    min_size: the fewest unmasked items a group needs to count.
  Returns:
    The mean; nan when no group counts.
  """
  values = per_group_values(metric, y_true, y_pred, groups, mask=mask, min_size=min_size)
  if not values:
    return float("nan")
  return float(np.mean(list(values.values())))
