"""`jaxgeo params` (jaxgeo/commands/params.py): the table of paper-configuration counts."""
from __future__ import annotations

import subprocess
import sys

from jaxgeo import cli, nets


def test_params_command(capsys):
  assert cli.main(["params"]) == 0
  out = capsys.readouterr().out
  lines = out.strip().splitlines()
  assert lines[0].split() == ["fusion", "GVP-GNN", "EGNN", "Molformer"]
  assert [line.split()[0] for line in lines[1:]] == ["none", "replace", "concat", "project"]
  egnn = {line.split()[0]: int(line.split()[2].replace(",", "")) for line in lines[1:]}
  assert egnn["replace"] > 1000 * egnn["none"]
  # The default counts the paper's featurisation: what nets.count_params says.
  assert egnn["none"] == nets.count_params(nets.paper_config("egnn"), features="paper")


def test_params_markdown_features_and_lm_dim(capsys):
  assert cli.main(["params", "--markdown", "--lm-dim", "480"]) == 0
  out = capsys.readouterr().out
  assert "| fusion | GVP-GNN | EGNN | Molformer |" in out and "width 480" in out
  assert "16 edge scalars" in out
  assert cli.main(["params", "--features", "rich"]) == 0
  rich = capsys.readouterr().out.splitlines()[1].split()
  # EGNN's first edge-MLP layer reads the 36 rich edge scalars: 4 layers x 20 x 32 more.
  assert int(rich[2].replace(",", "")) == nets.count_params(
      nets.paper_config("egnn"), features="paper") + 4 * 20 * 32
  assert cli.main(["params", "--lm-dim", "0"]) == 2
  assert "--lm-dim=0" in capsys.readouterr().err


def test_registering_the_command_does_not_import_jax():
  code = ("import sys, argparse; import jaxgeo.commands.params as c; "
          "c.register(argparse.ArgumentParser().add_subparsers()); "
          "print('jax' in sys.modules, 'haiku' in sys.modules)")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
  assert out.stdout.split() == ["False", "False"]


def test_no_command_line_code_in_the_networks_package():
  """The networks are a library: argparse lives in jaxgeo/commands/ only."""
  import pathlib
  package = pathlib.Path(nets.__file__).parent
  assert not (package / "commands.py").exists()
  for path in package.glob("*.py"):
    assert "argparse" not in path.read_text(), f"{path.name} uses argparse"
