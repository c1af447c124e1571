"""`jaxgeo featurize`: a file or a folder, options checked once before any file is read."""
import pathlib
import shutil

import pytest

from jaxgeo import cli
from jaxgeo.commands import featurize
from jaxgeo.errors import ConfigError, DataError

REPO = pathlib.Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "structures" / "1AY7_l_b.pdb.gz"


@pytest.fixture
def folder(tmp_path):
  for name in ("1AY7_l_b.pdb.gz", "1AY7_r_b.pdb.gz", "1CGI_l_b.pdb.gz"):
    shutil.copy(REPO / "examples" / "structures" / name, tmp_path / name)
  return tmp_path


def test_featurize_accepts_a_single_file(capsys):
  assert cli.main(["featurize", str(EXAMPLE), "--quiet"]) == 0
  assert "structures: 1 read, 0 skipped" in capsys.readouterr().out
  # Any name: the reader sniffs the format (DB5.5 has '*.pdb.2.gz' files).
  assert featurize.structure_files(EXAMPLE) == [EXAMPLE]


def test_missing_paths_name_what_was_expected(tmp_path):
  with pytest.raises(DataError, match=r"nope\.pdb: no such file$"):
    featurize.structure_files(tmp_path / "nope.pdb")
  with pytest.raises(DataError, match=r"nope: no such folder$"):
    featurize.structure_files(tmp_path / "nope")


@pytest.mark.parametrize("option, message", [
    (["--k", "0"], r"--k 0: must be at least 1"),
    (["--edges", "radius", "--radius", "0"], r"--radius 0.0: must be positive"),
    (["--edges", "radius", "--max-neighbors", "0"], r"--max-neighbors 0: must be at least 1"),
    (["--batch-graphs", "0"], r"--batch-graphs 0: must be at least 1"),
    (["--max-buckets", "-1"], r"--max-buckets -1: must be at least 1"),
    (["--limit", "-3"], r"--limit -3: must be a positive number of files"),
    (["--limit", "0"], r"--limit 0: must be a positive number of files"),
])
def test_option_errors_are_one_error_before_any_file(folder, capsys, option, message):
  args = cli.build_parser().parse_args(["featurize", str(folder), "--quiet"] + option)
  with pytest.raises(ConfigError, match=message):
    featurize.run(args)
  assert capsys.readouterr().out == ""  # no file was read, nothing was reported per file
  # Through the CLI: one line, exit status 2.
  assert cli.main(["featurize", str(folder), "--quiet"] + option) == 2
  captured = capsys.readouterr()
  assert captured.out == ""
  assert len(captured.err.strip().splitlines()) == 1 and "error: --" in captured.err


def test_limit_reads_the_first_files(folder, capsys):
  assert cli.main(["featurize", str(folder), "--quiet", "--limit", "2"]) == 0
  assert "structures: 2 read, 0 skipped" in capsys.readouterr().out
