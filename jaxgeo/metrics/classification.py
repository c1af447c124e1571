"""Binary classification metrics on the host (numpy): AUROC and AUPRC, pooled or per group.

Every function takes `y_true [N]` (bool or 0/1) and `y_score [N]` (any real score, higher =
more likely positive) and an optional boolean `mask [N]` (True = a real item; padding never
counts).

- `auroc` equals `sklearn.metrics.roc_auc_score`: the Mann-Whitney statistic with tied
  scores counted one half.
- `auprc` equals `sklearn.metrics.average_precision_score`: AP = sum_k (R_k - R_{k-1}) P_k
  over the distinct score thresholds (tied scores enter together, no interpolation).
- Degenerate cases: with no positives or no negatives AUROC is undefined and returns `nan`
  (sklearn raises); with no positives AUPRC returns `nan` (sklearn warns and returns a
  meaningless value); with only positives AUPRC is 1.0 (as sklearn).
- `per_group(metric, y_true, y_score, groups)`: the metric inside each group (e.g. per
  complex for interface prediction) averaged over groups, unweighted. A group with a single
  class (all positive or all negative unmasked items) is skipped, for both metrics, so that
  the two means are over the same groups; `per_group_values` returns the values that count.
"""
from __future__ import annotations

from typing import Callable, Union

import numpy as np

from jaxgeo import errors
from jaxgeo.metrics import regression
from jaxgeo.metrics.regression import group_slices, rankdata

Metric = Union[str, Callable[..., float]]


def _prepare(y_true, y_score, mask=None) -> tuple[np.ndarray, np.ndarray]:
  """Checks shapes and labels, applies the mask. Returns (bool `[M]`, float64 `[M]`)."""
  y_true, y_score = regression.masked_pair(y_true, y_score, mask, true_dtype=None)
  if y_true.dtype != bool:
    if not np.all((y_true == 0) | (y_true == 1)):
      raise errors.DataError("metrics: binary labels must be 0/1 or bool")
    y_true = y_true.astype(bool)
  if np.any(np.isnan(y_score)):
    raise errors.DataError("metrics: y_score holds NaN")
  return y_true, y_score


def auroc(y_true, y_score, mask=None) -> float:
  """Area under the ROC curve.

  Args:
    y_true: `[N]` bool or 0/1 labels.
    y_score: `[N]` scores.
    mask: optional `[N]` bool.
  Returns:
    AUROC in [0, 1]; nan when only one class is present.
  """
  y, s = _prepare(y_true, y_score, mask)
  n_pos = int(y.sum())
  n_neg = y.shape[0] - n_pos
  if n_pos == 0 or n_neg == 0:
    return float("nan")
  ranks = rankdata(s)
  u = ranks[y].sum() - n_pos * (n_pos + 1) / 2.0
  return float(u / (n_pos * n_neg))


def auprc(y_true, y_score, mask=None) -> float:
  """Average precision (area under the precision-recall curve, step-wise).

  Args:
    y_true: `[N]` bool or 0/1 labels.
    y_score: `[N]` scores.
    mask: optional `[N]` bool.
  Returns:
    AP in [0, 1]; nan when there is no positive.
  """
  y, s = _prepare(y_true, y_score, mask)
  n_pos = int(y.sum())
  if n_pos == 0:
    return float("nan")
  order = np.argsort(-s, kind="mergesort")
  s, y = s[order], y[order]
  # Last index of each run of equal scores: the thresholds.
  ends = np.flatnonzero(np.concatenate([s[1:] != s[:-1], [True]]))
  tp = np.cumsum(y)[ends].astype(np.float64)
  fp = (ends + 1) - tp
  precision = tp / (tp + fp)
  recall = tp / n_pos
  recall_step = np.diff(np.concatenate([[0.0], recall]))
  return float(np.sum(recall_step * precision))


METRICS: dict[str, Callable[..., float]] = {"auroc": auroc, "auprc": auprc}


def per_group_values(metric: Metric, y_true, y_score, groups, mask=None) -> dict:
  """The metric inside each group with both classes present.

  Args:
    metric: "auroc", "auprc" or a function f(y_true, y_score) -> float.
    y_true: `[N]` bool or 0/1 labels.
    y_score: `[N]` scores.
    groups: `[N]` group labels (e.g. the complex of each residue pair).
    mask: optional `[N]` bool.
  Returns:
    {group label: value} for the groups that count (both classes present).
  """
  if callable(metric):
    fn = metric
  elif metric in METRICS:
    fn = METRICS[metric]
  else:
    raise errors.ConfigError(
        f"metrics: unknown classification metric {metric!r}; choose from {sorted(METRICS)}")
  _prepare(y_true, y_score, mask)  # validates the items that count
  y = np.asarray(y_true).reshape(-1) == 1  # padding rows are never indexed below
  s = np.asarray(y_score, dtype=np.float64).reshape(-1)
  if np.asarray(groups).size != y.shape[0]:
    raise errors.DataError(
        f"metrics: groups has {np.asarray(groups).size} items but the labels have {y.shape[0]}")
  values = {}
  for label, index in group_slices(groups, mask).items():
    yg = y[index]
    if yg.all() or not yg.any():
      continue
    value = fn(yg, s[index])
    if np.isfinite(value):
      values[label] = float(value)
  return values


def per_group(metric: Metric, y_true, y_score, groups, mask=None) -> float:
  """Unweighted mean over groups of the metric inside each group (single-class groups skipped).

  Args:
    metric: "auroc", "auprc" or a function f(y_true, y_score) -> float.
    y_true: `[N]` bool or 0/1 labels.
    y_score: `[N]` scores.
    groups: `[N]` group labels.
    mask: optional `[N]` bool.
  Returns:
    The mean; nan when no group has both classes.
  """
  values = per_group_values(metric, y_true, y_score, groups, mask=mask)
  if not values:
    return float("nan")
  return float(np.mean(list(values.values())))
