"""Graph-level labels from a CSV: is a structure file the receptor or the ligand of its
complex? (`structures.csv`: file, role, group; a two-class column read as binary, positive
class the last name in sorted order, "receptor".)

    jaxgeo train --config examples/csv/config_graph.py
"""
import pathlib

from jaxgeo import config as config_lib

HERE = pathlib.Path(__file__).resolve().parent


def get_config():
  config = config_lib.paper_experiment(
      "csv", "egnn", "none", structures=str(HERE / "structures"),
      labels=str(HERE / "structures.csv"), fractions="0.6,0.2,0.2")
  config.train.epochs = 30
  config.train.batch_graphs = 8
  config.train.lr = 1e-3
  return config
