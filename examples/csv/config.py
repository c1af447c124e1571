"""Residue-level labels from a CSV: which residues of 12 DB5.5 complexes are at the interface.

    jaxgeo train --config examples/csv/config.py
    jaxgeo predict --model runs/config-<timestamp> --structures MY_PDBS --out pred.csv

`residues.csv` has one row per residue (file, chain, residue_number, insertion_code,
interface, group); `group` (the complex) keeps both partners in one split. See
docs/own_data.md.
"""
import pathlib

from jaxgeo import config as config_lib

HERE = pathlib.Path(__file__).resolve().parent


def get_config():
  config = config_lib.paper_experiment(
      "csv_residue", "egnn", "none", structures=str(HERE / "structures"),
      labels=str(HERE / "residues.csv"), label="interface", kind="binary", pos_weight=3.0,
      fractions="0.6,0.2,0.2")
  config.train.epochs = 30
  config.train.batch_graphs = 8
  config.train.lr = 1e-3
  return config
