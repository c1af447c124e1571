"""Table row: task `atom3d_lba` (jaxgeo/tasks/atom3d.py) x GVP-GNN x fusion
'none': residue-type embedding, no language model (the paper's baseline).
Model, schedule and graphs: `jaxgeo.config.paper_experiment`.
"""
from jaxgeo import config as config_lib


def get_config():
  return config_lib.paper_experiment("atom3d_lba", "gvp", "none")
