"""`jaxgeo report` gives exactly the numbers its run folders hold; `jaxgeo grid` skips finished
cells and resumes half-finished ones."""
import json

import numpy as np
import pytest

from jaxgeo import cli, grid, report, rows, train
from jaxgeo.errors import ConfigError, DataError


def fake_run(folder, row, seed, task, network, fusion, primary, values, higher=True,
             lm="unirep1900", features="paper", curve=(0.5, 0.6)):
  folder.mkdir(parents=True)
  (folder / "config.json").write_text(json.dumps({
      "name": row, "train": {"seed": seed}, "lm": {"model": lm},
      "data": {"features": features}}))
  (folder / "test_metrics.json").write_text(json.dumps({
      "task": task, "network": network, "fusion": fusion, "primary_metric": primary,
      "higher_is_better": higher, "test": values, "parameters": 1000,
      "train_seconds_total": 60.0}))
  (folder / "log.jsonl").write_text("".join(
      json.dumps({"epoch": i + 1, "val": {primary: v}}) + "\n" for i, v in enumerate(curve))
      + '{"epoch": 3, "val"')          # a torn last line, as a kill leaves it


@pytest.fixture
def runs(tmp_path):
  root = tmp_path / "runs"
  # interface / gvp: none 0.60, 0.62; replace 0.70, 0.66; random-lm 0.61, 0.60.
  for seed, (a, b, c) in enumerate([(0.60, 0.70, 0.61), (0.62, 0.66, 0.60)]):
    fake_run(root / f"n{seed}", "interface_gvp_none", seed, "interface", "gvp", "none",
             "auroc", {"auroc": a, "auprc": 0.1})
    fake_run(root / f"r{seed}", "interface_gvp_replace_unirep", seed, "interface", "gvp",
             "replace", "auroc", {"auroc": b, "auprc": 0.2})
    fake_run(root / f"x{seed}", "interface_gvp_replace_randomlm", seed, "interface", "gvp",
             "replace", "auroc", {"auroc": c, "auprc": 0.1}, lm="unirep1900_random")
  # position / egnn (lower is better): none 10.0, replace 8.0 (one seed).
  fake_run(root / "p0", "position_egnn_none", 0, "position", "egnn", "none", "rmse",
           {"rmse": 10.0}, higher=False)
  fake_run(root / "p1", "position_egnn_replace_unirep", 0, "position", "egnn", "replace",
           "rmse", {"rmse": 8.0}, higher=False)
  return root


def test_aggregates_and_pairs_hold_the_folders_numbers(runs):
  found = report.read_runs(runs)
  assert len(found) == 8
  assert found[0].val_curve == (0.5, 0.6)     # the torn line is skipped
  summaries = report.aggregate(found)
  none = summaries["interface_gvp_none"]
  assert none.seeds == (0, 1)
  assert none.mean("auroc") == pytest.approx(0.61)
  assert none.std("auroc") == pytest.approx(np.std([0.60, 0.62], ddof=1))
  by_variant = {(p.without.first.task, p.variant): p for p in report.pairs(summaries)}
  replace = by_variant[("interface", "replace")]
  assert replace.relative_gain == pytest.approx((0.68 - 0.61) / 0.61)
  np.testing.assert_allclose(replace.paired_differences(), [0.10, 0.04])
  assert replace.exceeds_seed_spread          # mean 0.07 > std 0.042
  random = by_variant[("interface", "random-lm")]
  np.testing.assert_allclose(random.paired_differences(), [0.01, -0.02])
  assert not random.exceeds_seed_spread
  position = by_variant[("position", "replace")]
  assert position.relative_gain == pytest.approx(0.2)   # lower RMSE is a gain
  assert not position.exceeds_seed_spread               # one seed: no spread to exceed


def test_report_writes_tables_and_figures(runs, tmp_path):
  assert cli.main(["report", str(runs), "--out", str(tmp_path / "out")]) == 0
  text = (tmp_path / "out" / "results.md").read_text()
  assert "0.6100 ± 0.0141" in text and "0.6800 ± 0.0283" in text
  assert "+11.5%" in text and "+20.0%" in text
  assert ("| position | egnn | paper | unirep1900 | replace | rmse | 10.0000 | 8.0000 | "
          "+20.0% |") in text
  for name in ("primary_interface.png", "primary_position.png", "knowledge_vs_capacity.png",
               "validation_curves.png"):
    assert (tmp_path / "out" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  with pytest.raises(DataError, match="no such folder"):
    report.read_runs(tmp_path / "nope")


def test_correlation_gains_are_absolute_and_kept_out_of_the_relative_average(runs, tmp_path):
  # quality / egnn, Spearman near zero: none -0.02, 0.00; project 0.10, 0.16. A ratio would
  # say +1400%; the headline says +0.140 (absolute) and averages it on its own.
  for seed, (a, b) in enumerate([(-0.02, 0.10), (0.00, 0.16)]):
    fake_run(runs / f"q{seed}", "quality_egnn_none", seed, "quality", "egnn", "none",
             "spearman", {"spearman": a})
    fake_run(runs / f"qp{seed}", "quality_egnn_project_unirep", seed, "quality", "egnn",
             "project", "spearman", {"spearman": b})
  summaries = report.aggregate(report.read_runs(runs))
  quality = next(p for p in report.pairs(summaries) if p.without.first.task == "quality")
  assert report.is_correlation("spearman_per_target") and not report.is_correlation("auroc")
  assert np.isnan(quality.relative_gain)
  assert quality.absolute_gain == pytest.approx(0.14)
  assert quality.gain_text == "+0.140 (absolute)"
  np.testing.assert_allclose(quality.paired_differences(), [0.12, 0.16])
  text = report.headline_table(summaries)
  assert "| quality | egnn | paper | unirep1900 | project | spearman |" in text
  assert "+0.140 (absolute)" in text
  # The relative averages are the interface / position pairs' alone.
  assert "replace (paper features) +15.7% over 2" in text
  assert "Average absolute gain of the correlation pairs: project (paper features) +0.140 " \
         "over 1." in text
  # The knowledge figure's bars: relative for interface / position, absolute for quality.
  gains = {(g.group[0], g.variant): g for g in report.knowledge_gains(summaries)}
  assert set(gains) == {("interface", "replace"), ("interface", "random-lm"),
                        ("position", "replace"), ("quality", "project")}
  q = gains[("quality", "project")]
  assert not q.relative and q.metric == "spearman"
  assert q.value == pytest.approx(0.14) and q.spread == pytest.approx(np.std([0.12, 0.16],
                                                                             ddof=1))
  r = gains[("interface", "replace")]
  assert r.relative and r.value == pytest.approx(0.07 / 0.61)
  assert r.spread == pytest.approx(np.std([0.10, 0.04], ddof=1) / 0.61)
  assert np.isnan(gains[("position", "replace")].spread)      # one seed: no spread
  report.figure_knowledge(summaries, tmp_path / "k.png")    # two panels
  assert (tmp_path / "k.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_each_language_model_is_a_group_of_its_own(runs):
  # interface / gvp with UniRep 256 too (0.64, 0.62; its random-lm control 0.59, 0.61):
  # the same none row (0.60, 0.62) pairs with each language model; averages stay apart.
  for seed, (a, b) in enumerate([(0.64, 0.59), (0.62, 0.61)]):
    fake_run(runs / f"u{seed}", "interface_gvp_replace_unirep256", seed, "interface", "gvp",
             "replace", "auroc", {"auroc": a}, lm="unirep256")
    fake_run(runs / f"ur{seed}", "interface_gvp_replace_randomlm_unirep256", seed, "interface",
             "gvp", "replace", "auroc", {"auroc": b}, lm="unirep256_random")
  summaries = report.aggregate(report.read_runs(runs))
  found = {(p.group, p.variant): p for p in report.pairs(summaries)}
  small = found[(("interface", "gvp", "paper", "unirep256"), "replace")]
  assert small.without.row == "interface_gvp_none"
  np.testing.assert_allclose(small.paired_differences(), [0.04, 0.00])
  assert small.relative_gain == pytest.approx(0.02 / 0.61)
  control = found[(("interface", "gvp", "paper", "unirep256"), "random-lm")]
  assert control.with_lm.row == "interface_gvp_replace_randomlm_unirep256"
  assert found[(("interface", "gvp", "paper", "unirep1900"), "replace")].with_lm.row == \
      "interface_gvp_replace_unirep"
  table = report.summary_table(summaries).splitlines()
  assert ("| interface | gvp | paper | unirep256 | auroc (higher is better) | 0.610 ± 0.014 (2) "
          "| 0.600 ± 0.014 (2) | 0.630 ± 0.014 (2) |") in table
  text = report.headline_table(summaries)
  assert "replace (paper features) +15.7% over 2" in text     # interface and position
  assert "replace (paper features, unirep256) +3.3% over 1" in text
  gains = {(g.group, g.variant) for g in report.knowledge_gains(summaries)}
  assert (("interface", "gvp", "paper", "unirep256"), "random-lm") in gains


def test_summary_table_and_readme_block_hold_the_folders_numbers(runs, tmp_path, capsys):
  table = report.summary_table(report.aggregate(report.read_runs(runs)))
  assert table.splitlines() == [
      "| task | network | features | language model | metric | none | random-lm | replace |",
      "|---|---|---|---|---|---|---|---|",
      "| interface | gvp | paper | unirep1900 | auroc (higher is better) | 0.610 ± 0.014 (2) | "
      "0.605 ± 0.007 (2) | 0.680 ± 0.028 (2) |",
      "| position | egnn | paper | unirep1900 | rmse (lower is better) | 10.0 (1) | - | "
      "8.000 (1) |"]
  # 8 runs of 60 s each (fake_run) in 5 rows: the totals line under the table.
  assert report.totals(report.read_runs(runs)).startswith(
      "8 runs, 5 rows, 0.13 hours of training")
  block = report.readme_block(report.read_runs(runs))
  assert block == table + "\n\n" + report.totals(report.read_runs(runs))
  readme = tmp_path / "README.md"
  before, after = "# x\n\ntext before\n", "\ntext after\n"
  readme.write_text(before + report.SUMMARY_BEGIN + "\nold table\n" + report.SUMMARY_END + after)
  for _ in range(2):    # idempotent: the second run finds its own block
    assert cli.main(["report", str(runs), "--out", str(tmp_path / "out"), "--no-figures",
                     "--readme", str(readme)]) == 0
    assert readme.read_text() == (before + report.SUMMARY_BEGIN + "\n" + block + "\n"
                                  + report.SUMMARY_END + after)
  readme.write_text("no markers\n")
  with pytest.raises(DataError, match="no block to update"):
    report.update_markdown(readme, table)
  assert readme.read_text() == "no markers\n"
  assert cli.main(["report", "--docking", str(readme), "--readme", str(readme)]) == 2
  assert "--readme needs RUNS_DIR" in capsys.readouterr().err


def test_grid_cells_follow_the_row_table():
  spec = grid.GridSpec(tasks=("interface",), networks=("gvp",),
                       variants=("none", "project", "random-lm"), features=("paper", "rich"),
                       seeds=(0, 1))
  names = [c.name for c in grid.cells(spec)]
  assert names == ["interface_gvp_none-seed0", "interface_gvp_none-seed1",
                   "interface_gvp_project_unirep-seed0", "interface_gvp_project_unirep-seed1",
                   "interface_gvp_replace_randomlm-seed0", "interface_gvp_replace_randomlm-seed1",
                   "interface_gvp_none_rich-seed0", "interface_gvp_none_rich-seed1"]
  config = grid.cell_config(grid.Cell("interface_gvp_none", 1), "cpu")
  assert config.train.seed == 1 and config.task.limit == 60
  with pytest.raises(ConfigError, match="--fusions"):
    grid.GridSpec(variants=("mean",))


def test_grid_docking_cells_are_iegmn_rows_with_the_cpu_docking_budget():
  spec = grid.GridSpec(tasks=("interface", "docking"), networks=("egnn", "iegmn"),
                       variants=("none", "replace", "random-lm"), features=("paper", "rich"),
                       seeds=(0,))
  names = [c.name for c in grid.cells(spec)]
  # IEGMN only for docking, docking only with IEGMN, no rich docking rows.
  assert [n for n in names if "iegmn" in n or "docking" in n] == [
      "docking_iegmn_none-seed0", "docking_iegmn_replace_unirep-seed0",
      "docking_iegmn_replace_randomlm-seed0"]
  assert "interface_egnn_replace_unirep_rich-seed0" in names
  config = grid.cell_config(grid.Cell("docking_iegmn_replace_randomlm", 2), "cpu")
  assert config.lm.model == rows.RANDOM_LM and config.model.fusion.mode == "replace"
  assert (config.train.seed, config.train.epochs, config.model.iegmn.hidden,
          config.model.iegmn.num_keypoints, config.task.max_train_residues) == (2, 10, 32, 16, 700)
  with pytest.raises(ConfigError, match="no cell"):
    grid.GridSpec(tasks=("docking",), networks=("gvp",))
  with pytest.raises(ConfigError, match="--nets"):
    grid.GridSpec(networks=("schnet",))


def test_grid_skips_finished_cells_and_resumes_half_finished_ones(shared_data, tmp_path,
                                                                   monkeypatch):
  monkeypatch.setenv("JAXGEO_DATA", str(shared_data))
  monkeypatch.setitem(rows.GRID_BUDGETS, "tiny", {"position": (
      ("task.limit", 1), ("train.epochs", 2), ("train.batch_graphs", 4),
      ("model.egnn.hidden", 8), ("model.egnn.num_layers", 1), ("model.fusion.embed_dim", 8))})
  spec = grid.GridSpec(tasks=("position",), networks=("egnn",), variants=("none",),
                       seeds=(0, 1), budget="tiny")
  results, runs_dir = tmp_path / "results", tmp_path / "runs"
  # Seed 0 finished on another machine: only its small results are here.
  fake_run(results / "position_egnn_none-seed0", "position_egnn_none", 0, "position", "egnn",
           "none", "rmse", {"rmse": 1.0}, higher=False)
  # Seed 1 was interrupted after its first epoch.
  half = runs_dir / "position_egnn_none-seed1"
  config = grid.cell_config(grid.Cell("position_egnn_none", 1), "tiny")
  assert train.train(config, half, progress=False, stop_after_epochs=1) is None
  said = []
  status = grid.run(spec, runs_dir, results, progress=False, echo=said.append)
  assert status == {"position_egnn_none-seed0": "kept", "position_egnn_none-seed1": "trained"}
  assert any("resuming after epoch 1" in line for line in said)
  assert [r["epoch"] for r in train.read_log(half)] == [1, 2]
  kept = results / "position_egnn_none-seed1"
  assert sorted(p.name for p in kept.iterdir()) == ["config.json", "dataset.json", "log.jsonl",
                                                    "model.json",
                                                    "test_metrics.json"]
  # Everything is kept now: a second call trains nothing.
  assert set(grid.run(spec, runs_dir, results, progress=False, echo=said.append).values()) == {
      "kept"}


def _docking_json(path, methods, compact=True):
  """A score-docking JSON: per_complex values (compact) or per-complex rows only (the old
  layout)."""
  out = {"complexes": sorted({i for v in methods.values() for i in v}), "methods": {}}
  for method, by_id in methods.items():
    if compact:
      out["methods"][method] = {"summary": {}, "per_complex": {
          "complex_rmsd": by_id,
          "interface_rmsd": {i: None if v is None else v / 2 for i, v in by_id.items()}}}
    else:
      out["methods"][method] = {"summary": {}, "complexes": [
          {"id": i, "complex_rmsd": v} for i, v in by_id.items()]}
  path.write_text(json.dumps(out))
  return path


def test_docking_cdf_figure_from_a_tiny_dict(tmp_path):
  methods = {"equidock": {"A": 14.0, "B": 9.5, "C": 20.1},
             "hdock": {"A": 0.3, "B": 1.2, "C": float("nan")},     # a NaN never counts
             "iegmn_none": {"A": 17.7, "B": 12.0}}                  # C missing
  path = tmp_path / "figs" / "docking_cdf.png"
  report.figure_docking_cdf(methods, path)
  assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  with pytest.raises(DataError, match="no complexes"):
    report.figure_docking_cdf({}, tmp_path / "empty.png")


def test_report_docking_reads_score_docking_json(tmp_path, capsys):
  baselines = _docking_json(tmp_path / "baselines.json",
                            {"equidock": {"A": 14.0, "B": 9.5}}, compact=False)
  ours = _docking_json(tmp_path / "ours.json", {"iegmn_none": {"A": 17.7, "B": None},
                                                "equidock": {"A": 1.0, "B": 2.0}})
  found = report.read_docking([baselines, ours])
  assert list(found) == ["equidock", "iegmn_none"]
  assert found["equidock"] == {"A": 1.0, "B": 2.0}                 # the later file wins
  assert found["iegmn_none"]["A"] == 17.7 and np.isnan(found["iegmn_none"]["B"])
  assert report.read_docking([ours], metric="interface_rmsd")["iegmn_none"]["A"] == 8.85
  assert report.read_docking([baselines])["equidock"] == {"A": 14.0, "B": 9.5}
  # jaxgeo report --docking, without run folders.
  out = tmp_path / "out"
  assert cli.main(["report", "--docking", str(baselines), str(ours), "--out", str(out)]) == 0
  assert "2 docking methods" in capsys.readouterr().out
  assert (out / "docking_cdf.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  assert not (out / "results.md").exists()
  # Errors: one line each.
  assert cli.main(["report", "--out", str(out)]) == 2
  assert "give RUNS_DIR" in capsys.readouterr().err
  (tmp_path / "bad.json").write_text('{"methods": {}}')
  assert cli.main(["report", "--docking", str(tmp_path / "bad.json")]) == 2
  assert "no docking methods" in capsys.readouterr().err


def test_report_runs_and_docking_together(runs, tmp_path):
  ours = _docking_json(tmp_path / "ours.json", {"iegmn_none": {"A": 17.7, "B": 12.0}})
  out = tmp_path / "out"
  assert cli.main(["report", str(runs), "--out", str(out), "--docking", str(ours)]) == 0
  assert (out / "results.md").is_file() and (out / "docking_cdf.png").is_file()


def test_cpu_grid_script_lists_every_committed_run(capsys):
  """experiments/cpu_grid.sh is the sequence of `jaxgeo grid` calls that produced the
  committed results: every call names cells of the row table, and every committed run folder
  is one of its cells (so a re-run on a fresh clone keeps them all and trains the rest)."""
  import pathlib
  import shlex
  repo = pathlib.Path(__file__).resolve().parent.parent
  script = (repo / "experiments" / "cpu_grid.sh").read_text().replace("\\\n", " ")
  calls = [shlex.split(line.split('"${GRID[@]}"', 1)[1])
           for line in script.splitlines() if line.strip().startswith('"${GRID[@]}"')]
  assert len(calls) >= 5
  listed = set()
  for args in calls:
    capsys.readouterr()
    assert cli.main(["grid", *args, "--list"]) == 0, args
    listed |= set(capsys.readouterr().out.splitlines()[1:])
  committed = {p.name for p in (repo / "experiments" / "results" / "runs").iterdir()
               if (p / "test_metrics.json").is_file()}
  assert committed, "no committed runs"
  assert committed <= listed, sorted(committed - listed)
