"""Table row: task `atom3d_lba` (jaxgeo/tasks/atom3d.py) x Molformer x fusion
'replace': ESM-2 650M layer-33 vectors replace the residue-type embedding (the paper's PLM rows).
Model, schedule and graphs: `jaxgeo.config.paper_experiment`.
"""
from jaxgeo import config as config_lib


def get_config():
  return config_lib.paper_experiment("atom3d_lba", "molformer", "replace")
