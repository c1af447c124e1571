"""Tables and figures of the experiment grid, regenerated from run folders (never typed).

    runs = report.read_runs("experiments/results/runs")   # one Run per finished run folder
    rows = report.aggregate(runs)                          # mean +- std over seeds per row
    report.write(runs, "experiments/results")              # Markdown tables + PNG figures
    methods = report.read_docking(["experiments/results/docking_baselines.json",
                                   "experiments/results/docking_jaxgeo.json"])
    report.figure_docking_cdf(methods, "experiments/results/docking_cdf.png")

A run folder (written by `jaxgeo train`, or its small copy kept by `jaxgeo grid`) holds
`config.json`, `log.jsonl` and `test_metrics.json`; the row it belongs to is the config's
`name` and its seed `train.seed`. Rows are compared in pairs that differ only in the
language model: (none, replace), (none, project), (none, random-lm: replace with a randomly
initialised language model of the same architecture), each with the same task, network and
featurisation. The relative gain of a pair is (with - without) / |without|, signed so that a
positive gain is an improvement of the task's primary metric. Correlations (Spearman,
Pearson, Kendall: `is_correlation`) are the exception: their zero is "no signal", not "no
error", so a baseline near zero turns a small difference into a huge ratio; for them the
headline gives the absolute difference (with - without), averaged on its own and kept out of
the relative averages (the knowledge-vs-capacity figure draws them on an axis of their own).
The paired difference is computed seed by seed and said to exceed the seed spread when its
mean is larger than the standard deviation of the per-seed differences (and larger than zero
with 2+ seeds).

Docking (`read_docking`, `figure_docking_cdf`): the JSON of `jaxgeo score-docking --json` (or
of `experiments/score_docking_baselines.py`) gives each method's complex RMSD per complex; the
figure is the cumulative distribution of those over the complexes, one step curve a method.
"""
from __future__ import annotations

import collections
import dataclasses
import json
import math
import os
import pathlib
from collections.abc import Iterable, Sequence

import numpy as np

from jaxgeo import io
from jaxgeo.errors import DataError

__all__ = ["Run", "RowSummary", "Pair", "Gain", "knowledge_gains", "read_run", "read_runs",
           "aggregate", "pairs",
           "task_table", "headline_table", "summary_table", "update_markdown", "write",
           "FIGURES", "DOCKING_FIGURE", "DOCKING_LABELS", "SUMMARY_BEGIN", "SUMMARY_END",
           "read_docking", "figure_docking_cdf", "is_correlation", "CORRELATION_METRICS"]

RESULT_FILE = "test_metrics.json"
FIGURES = ("primary_{task}.png", "knowledge_vs_capacity.png", "validation_curves.png")
DOCKING_FIGURE = "docking_cdf.png"
# Method folder names (score-docking's, `experiments/docking_cdf.sh`'s) -> figure labels;
# other names are shown as they are.
DOCKING_LABELS = {
    "attract": "ATTRACT", "hdock": "HDOCK", "cluspro": "ClusPro", "patchdock": "PatchDock",
    "equidock": "EquiDock", "equidock_no_clashes": "EquiDock (no clashes)",
    "iegmn_none": "jaxgeo IEGMN, residue types", "iegmn_replace_unirep":
    "jaxgeo IEGMN + UniRep 1900 (replace)", "input_pose": "input pose (no docking)",
}
# Metric names (prefixes) that are correlation coefficients: gains in absolute difference.
CORRELATION_METRICS = ("spearman", "pearson", "kendall")
_JAXGEO_METHOD = "iegmn"           # methods whose name starts so are drawn as jaxgeo's models


@dataclasses.dataclass(frozen=True)
class Run:
  """One finished run: its row, seed, test metrics, and what it cost."""
  path: pathlib.Path
  row: str
  seed: int
  task: str
  network: str
  fusion: str
  lm_model: str
  features: str
  primary_metric: str
  higher_is_better: bool
  test: dict
  parameters: int
  seconds: float
  val_curve: tuple[float, ...]    # the primary metric per epoch on the validation split

  @property
  def variant(self) -> str:
    """The language-model variant: none, replace, concat, project or random-lm."""
    if self.fusion != "none" and self.lm_model.endswith("_random"):
      return "random-lm"
    return self.fusion

  @property
  def group(self) -> tuple[str, str, str]:
    """(task, network, features): the rows that a with/without comparison pairs up."""
    return (self.task, self.network, self.features)

  @property
  def lm_family(self) -> str:
    """The language model a row's vectors come from, its random-lm control counted with it
    ("unirep256_random" -> "unirep256"); "" without one."""
    return "" if self.fusion == "none" else self.lm_model.removesuffix("_random")


def _read_json(path: pathlib.Path):
  try:
    return json.loads(path.read_text())
  except (OSError, json.JSONDecodeError) as e:
    raise DataError(f"{path}: cannot read ({e})") from None


def read_run(folder: str | os.PathLike) -> Run:
  """The Run of a finished run folder. Raises DataError naming a missing or broken file."""
  folder = pathlib.Path(folder)
  result = _read_json(folder / RESULT_FILE)
  config = _read_json(folder / "config.json")
  for name, value in ((RESULT_FILE, result), ("config.json", config)):
    if not isinstance(value, dict):
      raise DataError(f"{folder / name}: holds a JSON {type(value).__name__}, not an object")
  try:
    primary = str(result["primary_metric"])
    curve = []
    log = folder / "log.jsonl"
    if log.is_file():
      for line in log.read_text().splitlines():
        try:
          record = json.loads(line)
        except json.JSONDecodeError:     # a torn last line (a killed run) carries nothing
          continue
        value = record.get("val", {}).get(primary)
        curve.append(float("nan") if value is None else float(value))
    return Run(
        path=folder, row=str(config["name"]), seed=int(config["train"]["seed"]),
        task=str(result["task"]), network=str(result["network"]),
        fusion=str(result["fusion"]),
        lm_model=str(config.get("lm", {}).get("model", "")) if result["fusion"] != "none"
        else "", features=str(config.get("data", {}).get("features", "rich")),
        primary_metric=primary,
        higher_is_better=bool(result["higher_is_better"]), test=dict(result["test"]),
        parameters=int(result["parameters"]),
        seconds=float(result.get("train_seconds_total", float("nan"))),
        val_curve=tuple(curve))
  except (KeyError, TypeError, ValueError, AttributeError) as e:
    raise DataError(f"{folder}: not a finished jaxgeo run ({type(e).__name__}: {e})") from None


def read_runs(root: str | os.PathLike) -> list[Run]:
  """Every finished run below `root` (folders holding test_metrics.json), sorted by path."""
  root = pathlib.Path(root)
  if not root.is_dir():
    raise DataError(f"{root}: no such folder of runs")
  return [read_run(p.parent) for p in sorted(root.rglob(RESULT_FILE))]


@dataclasses.dataclass(frozen=True)
class RowSummary:
  """A row's runs over seeds: mean and std (ddof=0 for one seed: 0) of each test metric."""
  row: str
  runs: tuple[Run, ...]

  @property
  def first(self) -> Run:
    return self.runs[0]

  def values(self, metric: str) -> np.ndarray:
    return np.array([r.test.get(metric, float("nan")) for r in self.runs], np.float64)

  def mean(self, metric: str) -> float:
    return float(np.mean(self.values(metric)))

  def std(self, metric: str) -> float:
    v = self.values(metric)
    return float(np.std(v, ddof=1)) if len(v) > 1 else 0.0

  @property
  def seeds(self) -> tuple[int, ...]:
    return tuple(r.seed for r in self.runs)


def aggregate(runs: Iterable[Run]) -> dict[str, RowSummary]:
  """Runs grouped by row (seeds sorted)."""
  by_row: dict[str, list[Run]] = collections.defaultdict(list)
  for run in runs:
    by_row[run.row].append(run)
  return {row: RowSummary(row, tuple(sorted(rs, key=lambda r: r.seed)))
          for row, rs in sorted(by_row.items())}


def is_correlation(metric: str) -> bool:
  """True for correlation coefficients (spearman, pearson_per_target, ...), whose gains are
  absolute differences rather than ratios."""
  return metric.startswith(CORRELATION_METRICS)


@dataclasses.dataclass(frozen=True)
class Pair:
  """A with / without language-model comparison of one (task, network, features, language
  model) group."""
  without: RowSummary
  with_lm: RowSummary
  variant: str

  @property
  def group(self) -> tuple[str, str, str, str]:
    return self.with_lm.first.group + (self.with_lm.first.lm_family,)

  @property
  def metric(self) -> str:
    return self.without.first.primary_metric

  @property
  def sign(self) -> float:
    return 1.0 if self.without.first.higher_is_better else -1.0

  @property
  def relative_gain(self) -> float:
    """(with - without) / |without| of the mean primary metric, positive = better; NaN for a
    correlation (see `gain`)."""
    base = self.without.mean(self.metric)
    if base == 0 or not math.isfinite(base) or is_correlation(self.metric):
      return float("nan")
    return self.sign * (self.with_lm.mean(self.metric) - base) / abs(base)

  @property
  def absolute_gain(self) -> float:
    """sign * (with - without) of the mean primary metric, positive = better."""
    return self.sign * (self.with_lm.mean(self.metric) - self.without.mean(self.metric))

  @property
  def gain_text(self) -> str:
    """The headline's gain: "+12.3%" (relative) or "+0.157 (absolute)" for a correlation."""
    if is_correlation(self.metric):
      return f"{self.absolute_gain:+.3f} (absolute)"
    return f"{100 * self.relative_gain:+.1f}%"

  def paired_differences(self) -> np.ndarray:
    """Per seed (seeds both rows have): sign * (with - without)."""
    a = {r.seed: r.test.get(self.metric, float("nan")) for r in self.without.runs}
    b = {r.seed: r.test.get(self.metric, float("nan")) for r in self.with_lm.runs}
    return np.array([self.sign * (b[s] - a[s]) for s in sorted(set(a) & set(b))], np.float64)

  @property
  def exceeds_seed_spread(self) -> bool:
    d = self.paired_differences()
    if len(d) < 2:
      return False
    return bool(abs(d.mean()) > d.std(ddof=1))


# The grid's default language model: tables name the others beside their rows.
DEFAULT_LM = "unirep1900"


def _by_group(summaries: dict[str, RowSummary]) -> dict[tuple, dict[str, RowSummary]]:
  """{(task, network, features, language model): {variant: row}}: a group per language model
  (its random-lm control with it), the row without one (variant none) in each group of its
  (task, network, features); a row without a language model and no group to join is a group
  of its own, language model ""."""
  groups: dict[tuple, dict[str, RowSummary]] = collections.defaultdict(dict)
  without: dict[tuple, RowSummary] = {}
  for s in summaries.values():
    if s.first.variant == "none":
      without.setdefault(s.first.group, s)
    else:
      groups[s.first.group + (s.first.lm_family,)].setdefault(s.first.variant, s)
  for key, variants in groups.items():
    if key[:3] in without:
      variants["none"] = without[key[:3]]
  families = {key[:3] for key in groups}
  for key, s in without.items():
    if key not in families:
      groups[key + ("",)]["none"] = s
  return dict(groups)


def _lm_text(family: str) -> str:
  """A group's language model as the tables name it ("-" without one)."""
  return family or "-"


def pairs(summaries: dict[str, RowSummary]) -> list[Pair]:
  """Every (none, X) pair within a (task, network, features, language model) group, X in
  replace, concat, project, random-lm."""
  groups = _by_group(summaries)
  out = []
  for key in sorted(groups):
    variants = groups[key]
    if "none" not in variants:
      continue
    for v in ("replace", "concat", "project", "random-lm"):
      if v in variants:
        out.append(Pair(variants["none"], variants[v], v))
  return out


# Column / row order of the language-model variants in every table.
VARIANT_ORDER = ("none", "project", "concat", "random-lm", "replace")


def _fmt(mean: float, std: float, n: int) -> str:
  if not math.isfinite(mean):
    return "-"
  return f"{mean:.4f} ± {std:.4f}" if n > 1 else f"{mean:.4f}"


def task_table(summaries: dict[str, RowSummary], task: str) -> str:
  """A Markdown table of one task: a line per row (network x variant x features), the
  task's metrics as mean ± std over seeds, seeds, parameters, train minutes."""
  rows = [s for s in summaries.values() if s.first.task == task]
  if not rows:
    return ""
  primary = rows[0].first.primary_metric
  metrics = [primary] + sorted({m for s in rows for r in s.runs for m in r.test
                                if m != primary and m != "n"})[:5]
  header = (["network", "language model", "features", "seeds"] + metrics
            + ["parameters", "train min"])
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  for s in sorted(rows, key=lambda s: (s.first.network, s.first.features,
                                       VARIANT_ORDER.index(s.first.variant))):
    r = s.first
    lm = "-" if r.variant == "none" else f"{r.variant} ({r.lm_model})"
    cells = [r.network, lm, r.features, str(len(s.runs))]
    cells += [_fmt(s.mean(m), s.std(m), len(s.runs)) for m in metrics]
    cells += [f"{r.parameters:,}",
              f"{np.mean([x.seconds for x in s.runs]) / 60:.1f}"]
    lines.append("| " + " | ".join(cells) + " |")
  arrow = "higher" if rows[0].first.higher_is_better else "lower"
  return f"Primary metric: {primary} ({arrow} is better).\n\n" + "\n".join(lines)


def headline_table(summaries: dict[str, RowSummary]) -> str:
  """The paper's headline: relative gain of each network with the language model over
  without, per task and on average, with the controls beside it."""
  found = pairs(summaries)
  if not found:
    return "No with/without pairs yet."
  header = ["task", "network", "features", "language model", "with", "metric", "without",
            "with LM", "gain", "paired difference (per seed)", "exceeds seed spread"]
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  for p in found:
    d = p.paired_differences()
    lines.append("| " + " | ".join([
        p.without.first.task, p.without.first.network, p.without.first.features,
        _lm_text(p.group[3]), p.variant, p.metric,
        _fmt(p.without.mean(p.metric), p.without.std(p.metric), len(p.without.runs)),
        _fmt(p.with_lm.mean(p.metric), p.with_lm.std(p.metric), len(p.with_lm.runs)),
        p.gain_text,
        _fmt(float(d.mean()) if len(d) else float("nan"),
             float(d.std(ddof=1)) if len(d) > 1 else 0.0, len(d)),
        "yes" if p.exceeds_seed_spread else "no"]) + " |")
  relative, absolute = collections.defaultdict(list), collections.defaultdict(list)
  for p in found:
    key = (p.variant, p.without.first.features, p.group[3])
    if is_correlation(p.metric):
      absolute[key].append(p.absolute_gain)
    elif math.isfinite(p.relative_gain):
      relative[key].append(p.relative_gain)
  lines.append("")
  lines.append("Gain: relative, (with - without) / |without|, positive = better; for "
               "correlations (" + ", ".join(CORRELATION_METRICS) + ") the absolute "
               "difference, kept out of the relative averages.")
  if relative:
    lines.append("")
    lines.append("Average relative gain over every (task, network) pair: " + "; ".join(
        f"{v} ({_average_text(f, lm)}) {100 * np.mean(g):+.1f}% over {len(g)}"
        for (v, f, lm), g in sorted(relative.items())) + ".")
  if absolute:
    lines.append("")
    lines.append("Average absolute gain of the correlation pairs: " + "; ".join(
        f"{v} ({_average_text(f, lm)}) {np.mean(g):+.3f} over {len(g)}"
        for (v, f, lm), g in sorted(absolute.items())) + ".")
  return "\n".join(lines)


def _average_text(features: str, family: str) -> str:
  """"paper features", or "paper features, unirep256" for a language model other than the
  grid's default."""
  return f"{features} features" + ("" if family == DEFAULT_LM else f", {family}")


# The block of a Markdown file (the README's Results) that `jaxgeo report --readme` rewrites.
SUMMARY_BEGIN = "<!-- jaxgeo report: summary (regenerated by `jaxgeo report --readme`) -->"
SUMMARY_END = "<!-- /jaxgeo report: summary -->"


def _short(mean: float, std: float, n: int) -> str:
  if not math.isfinite(mean):
    return "-"
  digits = 3 if abs(mean) < 10 else 1
  text = f"{mean:.{digits}f} ± {std:.{digits}f}" if n > 1 else f"{mean:.{digits}f}"
  return f"{text} ({n})"


def summary_table(summaries: dict[str, RowSummary]) -> str:
  """The primary metric of every (task, network, features, language model) group, one column
  per variant
  (none, project, concat, random-lm, replace: mean ± std (seeds)); variants no group has are
  left out."""
  groups = _by_group(summaries)
  if not groups:
    return "No finished runs yet."
  variants = [v for v in VARIANT_ORDER if any(v in g for g in groups.values())]
  header = ["task", "network", "features", "language model", "metric"] + variants
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  for (task, network, features, family), by_variant in sorted(groups.items()):
    first = next(iter(by_variant.values())).first
    arrow = "higher" if first.higher_is_better else "lower"
    metric = f"{first.primary_metric} ({arrow} is better)"
    cells = []
    for v in variants:
      s = by_variant.get(v)
      cells.append("-" if s is None else _short(s.mean(first.primary_metric),
                                                 s.std(first.primary_metric), len(s.runs)))
    lines.append("| " + " | ".join([task, network, features, _lm_text(family), metric] + cells)
                 + " |")
  return "\n".join(lines)


def totals(runs: Sequence[Run]) -> str:
  """One sentence: how many runs and rows, and the hours of training they took."""
  total = sum(r.seconds for r in runs if math.isfinite(r.seconds))
  rows = len({r.row for r in runs})
  return (f"{len(runs)} runs, {rows} rows, {total / 3600:.2f} hours of training (the wall "
          "time of the training epochs as each run logged it, one core a run, on whatever "
          "machine ran it and beside whatever else ran there).")


def readme_block(runs: Sequence[Run]) -> str:
  """The README's regenerated block: the summary table and the totals under it."""
  return summary_table(aggregate(runs)) + "\n\n" + totals(runs)


def update_markdown(path: str | os.PathLike, block: str) -> None:
  """Replaces the text between SUMMARY_BEGIN and SUMMARY_END in the Markdown file `path` with
  `block` (atomically; the rest of the file is kept byte for byte). DataError when the
  markers are missing or out of order."""
  path = pathlib.Path(path)
  try:
    text = path.read_text()
  except OSError as e:
    raise DataError(f"{path}: cannot read ({e})") from None
  start, end = text.find(SUMMARY_BEGIN), text.find(SUMMARY_END)
  if start < 0 or end < start:
    raise DataError(f"{path}: no block to update: put the lines {SUMMARY_BEGIN!r} and "
                    f"{SUMMARY_END!r} where the summary table goes")
  head = text[:start + len(SUMMARY_BEGIN)]
  io.atomic_write_text(path, head + "\n" + block.strip("\n") + "\n" + text[end:])


# --- figures -----------------------------------------------------------------------------------

def _pyplot():
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  return plt


def _variant_label(run: Run) -> str:
  """A run's variant as the figures name it: "replace", or "replace unirep256" for a language
  model other than the grid's default."""
  family = run.lm_family
  return run.variant + ("" if family in ("", DEFAULT_LM) else f" {family}")


def figure_primary(summaries: dict[str, RowSummary], task: str, path: pathlib.Path) -> None:
  """Bar chart of the primary metric per network and variant, error bars over seeds."""
  plt = _pyplot()
  rows = [s for s in summaries.values() if s.first.task == task]
  metric = rows[0].first.primary_metric
  labels = [f"{s.first.network}\n{_variant_label(s.first)}\n{s.first.features}" for s in rows]
  fig, ax = plt.subplots(figsize=(max(5.0, 0.9 * len(rows)), 3.6))
  ax.bar(range(len(rows)), [s.mean(metric) for s in rows],
         yerr=[s.std(metric) for s in rows], capsize=3, color="#4c72b0")
  ax.set_xticks(range(len(rows)), labels, fontsize=7)
  ax.set_ylabel(metric)
  ax.set_title(f"{task}: {metric} ({'higher' if rows[0].first.higher_is_better else 'lower'}"
               " is better)", fontsize=9)
  fig.tight_layout()
  with io.atomic_path(path, suffix=".png") as tmp:
    fig.savefig(tmp, format="png", dpi=120)
  plt.close(fig)


KNOWLEDGE_VARIANTS = ("project", "random-lm", "replace")


@dataclasses.dataclass(frozen=True)
class Gain:
  """One bar of the knowledge-vs-capacity figure: a variant's gain over `none` in a group.

  `value` is relative ((with - without) / |without|) for an error metric and absolute
  (with - without) for a correlation (`relative` says which); `spread` is the standard
  deviation of the per-seed paired differences on the same scale (NaN with fewer than two
  seeds), positive = better in both.
  """
  group: tuple
  variant: str
  metric: str
  relative: bool
  value: float
  spread: float


def knowledge_gains(summaries: dict[str, RowSummary]) -> list[Gain]:
  """The gains of project, random-lm and replace over none in every (task, network,
  features, language model) group that has none and at least one of them, in `pairs`
  order."""
  out = []
  for p in pairs(summaries):
    if p.variant not in KNOWLEDGE_VARIANTS:
      continue
    d = p.paired_differences()
    spread = float(d.std(ddof=1)) if len(d) >= 2 else float("nan")
    relative = not is_correlation(p.metric)
    if relative:
      base = abs(p.without.mean(p.metric))
      value, spread = p.relative_gain, (spread / base if base else float("nan"))
    else:
      value = p.absolute_gain
    out.append(Gain(p.group, p.variant, p.metric, relative, value, spread))
  return out


def figure_knowledge(summaries: dict[str, RowSummary], path: pathlib.Path) -> None:
  """Knowledge vs capacity, every task: the gain of project, random-lm and replace over none
  per (task, network, features, language model) group, error bars the spread of the per-seed paired
  differences. Relative gains (%) on the left; groups whose metric is a correlation (quality's
  Spearman) on their own axis on the right, as absolute differences (see the module notes)."""
  plt = _pyplot()
  gains = knowledge_gains(summaries)
  panels = [(kind, sorted({g.group for g in gains if g.relative == kind}))
            for kind in (True, False)]
  panels = [(kind, groups) for kind, groups in panels if groups]
  if not panels:
    panels = [(True, [])]
  counts = [max(len(groups), 1) for _, groups in panels]
  fig, axes = plt.subplots(1, len(panels), squeeze=False, gridspec_kw={"width_ratios": counts},
                           figsize=(max(5.5, 1.2 * sum(counts) + 1.0), 3.8))
  width = 0.8 / len(KNOWLEDGE_VARIANTS)
  colors = {"project": "#1f77b4", "random-lm": "#ff7f0e", "replace": "#2ca02c"}
  for ax, (relative, groups) in zip(axes[0], panels):
    scale = 100.0 if relative else 1.0
    for i, v in enumerate(KNOWLEDGE_VARIANTS):
      found = {g.group: g for g in gains if g.variant == v and g.relative == relative}
      values = [scale * found[k].value if k in found else float("nan") for k in groups]
      spreads = [scale * found[k].spread if k in found else float("nan") for k in groups]
      ax.bar(np.arange(len(groups)) + (i - 1) * width, values, width, label=v,
             color=colors[v], yerr=np.nan_to_num(spreads), capsize=2,
             error_kw={"linewidth": 0.8})
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(groups)), ["\n".join(g[:3] + (() if g[3] == DEFAULT_LM else g[3:]))
                                       for g in groups], fontsize=7)
    if relative:
      ax.set_ylabel("relative gain over none (%)")
    else:
      metrics = sorted({g.metric for g in gains if not g.relative})
      ax.set_ylabel(f"absolute gain over none ({', '.join(metrics)})")
    ax.set_xlim(-0.6, max(len(groups), 1) - 0.4)
  axes[0][0].legend(fontsize=7)
  fig.suptitle("knowledge (replace vs random-lm) vs capacity (project); error bars: spread of "
               "the per-seed paired differences", fontsize=9)
  fig.tight_layout()
  with io.atomic_path(path, suffix=".png") as tmp:
    fig.savefig(tmp, format="png", dpi=120)
  plt.close(fig)


def figure_curves(summaries: dict[str, RowSummary], path: pathlib.Path) -> None:
  """Validation curves (primary metric per epoch) of one row per task (its first seed),
  with and without the language model."""
  plt = _pyplot()
  tasks = sorted({s.first.task for s in summaries.values()})
  fig, axes = plt.subplots(1, len(tasks), figsize=(3.6 * len(tasks), 3.0), squeeze=False)
  for ax, task in zip(axes[0], tasks):
    for s in summaries.values():
      r = s.first
      if r.task == task and r.features == "paper" and r.variant in ("none", "replace"):
        ax.plot(range(1, len(r.val_curve) + 1), r.val_curve, marker=".",
                label=f"{r.network} {_variant_label(r)}")
    ax.set_title(task, fontsize=9)
    ax.set_xlabel("epoch")
    ax.set_ylabel(next(s.first.primary_metric for s in summaries.values()
                       if s.first.task == task))
    ax.legend(fontsize=6)
  fig.tight_layout()
  with io.atomic_path(path, suffix=".png") as tmp:
    fig.savefig(tmp, format="png", dpi=120)
  plt.close(fig)


# --- docking ----------------------------------------------------------------------------------

def read_docking(paths: Iterable[str | os.PathLike], metric: str = "complex_rmsd"
                 ) -> dict[str, dict[str, float]]:
  """{method: {complex id: value of `metric`}} from score-docking JSON files (`jaxgeo
  score-docking --json [--compact]`, `experiments/score_docking_baselines.py`'s JSON): each
  method's `per_complex[metric]`, or its per-complex rows where a file has none. A method in
  two files: the later file wins. Null values (NaN in the JSON) become NaN.

  Raises:
    DataError naming a file that is unreadable or holds no methods.
  """
  out: dict[str, dict[str, float]] = {}
  for path in paths:
    path = pathlib.Path(path)
    scores = _read_json(path)
    methods = scores.get("methods") if isinstance(scores, dict) else None
    if not isinstance(methods, dict) or not methods:
      raise DataError(f"{path}: no docking methods (expected the JSON of `jaxgeo score-docking "
                      "--json`)")
    for method, result in methods.items():
      try:
        if metric in result.get("per_complex", {}):
          values = result["per_complex"][metric]
        else:
          values = {str(row["id"]): row[metric] for row in result["complexes"]}
        out[method] = {str(k): float("nan") if v is None else float(v)
                       for k, v in values.items()}
      except (KeyError, TypeError, AttributeError) as e:
        raise DataError(f"{path}: method {method}: no per-complex {metric} ({e!r})") from None
      except ValueError as e:
        raise DataError(f"{path}: method {method}: a per-complex {metric} is not a number "
                        f"({e})") from None
  return out


def figure_docking_cdf(methods: dict[str, dict[str, float]], path: str | os.PathLike,
                       labels: dict[str, str] | None = None,
                       xlabel: str = "complex RMSD (Å)", title: str | None = None) -> None:
  """Cumulative distribution of complex RMSD per docking method: a step curve a method,
  x the RMSD (A), y the fraction of the complexes with at most that RMSD.

  Args:
    methods: {method: {complex id: complex RMSD}} (`read_docking`); the fraction is of every
      complex any method has (the union of ids: 25 for DB5.5's test set), so a method that
      misses a complex, or has NaN for it, never reaches 1.
    path: the PNG written (atomically).
    labels: method -> legend label (default `DOCKING_LABELS`, else the name); each label
      ends with the method's median.
    xlabel, title: the axis label and the title (default: the number of complexes).
  """
  plt = _pyplot()
  labels = {**DOCKING_LABELS, **(labels or {})}
  ids = sorted({i for values in methods.values() for i in values})
  if not ids:
    raise DataError(f"{path}: no complexes to draw")
  baseline_styles = iter([("#4c72b0", "-"), ("#55a868", "-"), ("#c44e52", "-"),
                          ("#8172b2", "-"), ("#937860", "--"), ("#da8bc3", "--"),
                          ("#64b5cd", "-."), ("#bcbd22", "-.")] * 4)
  jaxgeo_colors = iter(["#dd8452", "#000000", "#ccb974", "#17becf"] * 4)
  finite = {m: np.sort(np.array([v for v in by_id.values() if math.isfinite(v)], np.float64))
            for m, by_id in methods.items()}
  x_max = max([1.0] + [float(v[-1]) for v in finite.values() if v.size]) * 1.02
  fig, ax = plt.subplots(figsize=(6.4, 4.2))
  for method, values in finite.items():
    # (0, 0), a step up of 1 / n at each value, then flat to the right edge.
    x = np.concatenate([[0.0], values, [x_max]])
    y = np.concatenate([np.arange(values.size + 1), [values.size]]) / len(ids)
    median = f"{np.median(values):.2f}" if values.size else "-"
    label = f"{labels.get(method, method)} (median {median})"
    if method.startswith(_JAXGEO_METHOD):
      style = {"color": next(jaxgeo_colors), "linewidth": 2.4, "zorder": 3}
    elif method == "input_pose":
      style = {"color": "#8c8c8c", "linestyle": ":", "linewidth": 1.3}
    else:
      color, line = next(baseline_styles)
      style = {"color": color, "linestyle": line, "linewidth": 1.3}
    ax.step(x, y, where="post", label=label, **style)
  ax.set_xlim(0.0, x_max)
  ax.set_ylim(0.0, 1.02)
  ax.set_xlabel(xlabel)
  ax.set_ylabel(f"fraction of the {len(ids)} complexes")
  ax.set_title(title or f"docking: cumulative distribution over {len(ids)} complexes",
               fontsize=9)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7, loc="lower right")
  fig.tight_layout()
  with io.atomic_path(pathlib.Path(path), suffix=".png") as tmp:
    fig.savefig(tmp, format="png", dpi=120)
  plt.close(fig)


def write(runs: Sequence[Run], out_dir: str | os.PathLike, figures: bool = True
          ) -> list[pathlib.Path]:
  """Writes `results.md` (a table per task and the headline table) and the figures into
  `out_dir`. -> the files written."""
  out_dir = pathlib.Path(out_dir)
  summaries = aggregate(runs)
  tasks = sorted({s.first.task for s in summaries.values()})
  parts = ["# Results of the experiment grid", "",
           "Generated by `jaxgeo report` from the run folders; mean ± std over seeds.", ""]
  parts += ["## Headline: relative gain with the language model", "",
            headline_table(summaries), ""]
  parts += ["## Summary: the primary metric of every row (mean ± std (seeds))", "",
            summary_table(summaries), ""]
  for task in tasks:
    parts += [f"## {task}", "", task_table(summaries, task), ""]
  parts += [totals(runs), ""]
  written = [out_dir / "results.md"]
  io.atomic_write_text(written[0], "\n".join(parts))
  if figures and summaries:
    for task in tasks:
      written.append(out_dir / f"primary_{task}.png")
      figure_primary(summaries, task, written[-1])
    if any(not is_correlation(p.metric) for p in pairs(summaries)):
      written.append(out_dir / "knowledge_vs_capacity.png")
      figure_knowledge(summaries, written[-1])
    written.append(out_dir / "validation_curves.png")
    figure_curves(summaries, written[-1])
  return written
