"""Table row: task `affinity` (jaxgeo/tasks/affinity.py) x GVP-GNN x fusion
'replace': ESM-2 650M layer-33 vectors replace the residue-type embedding (the paper's PLM rows).
Model, schedule and graphs: `jaxgeo.config.paper_experiment`.
"""
from jaxgeo import config as config_lib


def get_config():
  return config_lib.paper_experiment("affinity", "gvp", "replace")
