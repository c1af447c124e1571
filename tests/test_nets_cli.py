"""`jaxgeo params`."""
from __future__ import annotations

import subprocess
import sys

from jaxgeo import cli


def test_params_command(capsys):
  assert cli.main(["params"]) == 0
  out = capsys.readouterr().out
  lines = out.strip().splitlines()
  assert lines[0].split() == ["fusion", "GVP-GNN", "EGNN", "Molformer"]
  assert [line.split()[0] for line in lines[1:]] == ["none", "replace", "concat", "project"]
  egnn = {line.split()[0]: int(line.split()[2].replace(",", "")) for line in lines[1:]}
  assert egnn["replace"] > 1000 * egnn["none"]


def test_params_markdown_and_lm_dim(capsys):
  assert cli.main(["params", "--markdown", "--lm-dim", "480"]) == 0
  out = capsys.readouterr().out
  assert "| fusion | GVP-GNN | EGNN | Molformer |" in out and "width 480" in out
  assert cli.main(["params", "--lm-dim", "0"]) == 2
  assert "--lm-dim=0" in capsys.readouterr().err


def test_registering_the_command_does_not_import_jax():
  code = ("import sys, argparse; import jaxgeo.nets.commands as c; "
          "c.register(argparse.ArgumentParser().add_subparsers()); "
          "print('jax' in sys.modules, 'haiku' in sys.modules)")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
  assert out.stdout.split() == ["False", "False"]
