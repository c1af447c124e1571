"""Table row: task `position` (jaxgeo/tasks/position.py) x EGNN x fusion
'none': residue-type embedding, no language model (the paper's baseline).
Model, schedule and graphs: `jaxgeo.config.paper_experiment`.
"""
from jaxgeo import config as config_lib


def get_config():
  return config_lib.paper_experiment("position", "egnn", "none")
