"""The command line: main job on the examples, one-line errors, launch.sh."""
import pathlib
import subprocess
import sys

from jaxgeo import cli

REPO = pathlib.Path(__file__).resolve().parent.parent


def test_featurize_examples(capsys):
  assert cli.main(["featurize", str(REPO / "examples" / "structures"), "--quiet"]) == 0
  out = capsys.readouterr().out
  assert "structures: 8 read, 0 skipped" in out
  assert "padding efficiency" in out


def test_featurize_skips_bad_files(tmp_path, capsys):
  (tmp_path / "bad.pdb").write_text("nonsense\n")
  (tmp_path / "good.pdb.gz").write_bytes((REPO / "examples/structures/1AY7_l_b.pdb.gz").read_bytes())
  assert cli.main(["featurize", str(tmp_path), "--quiet"]) == 0
  out = capsys.readouterr().out
  assert "skipped:" in out and "bad.pdb" in out and "1 read, 1 skipped" in out


def test_user_errors_are_one_line_exit_2(tmp_path):
  result = subprocess.run([sys.executable, "-m", "jaxgeo", "featurize", str(tmp_path / "nope")],
                          capture_output=True, text=True)
  assert result.returncode == 2
  assert result.stderr.strip().splitlines() == [f"jaxgeo featurize: error: {tmp_path / 'nope'}: no such folder"]


def test_launch_unknown_experiment():
  result = subprocess.run(["bash", str(REPO / "launch.sh"), "no_such_experiment"],
                          capture_output=True, text=True)
  assert result.returncode == 2
  assert "unknown experiment 'no_such_experiment'" in result.stderr
