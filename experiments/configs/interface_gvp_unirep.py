"""Protein-protein interface residues on DB5.5 with GVP-GNN and UniRep features.

The same task and model as interface_gvp_replace.py, with the one pre-trained protein
language model that installs offline: UniRep 1900 (its per-residue hidden states, layer 1)
replaces the residue-type embedding. Embed once with

  jaxgeo embed --model unirep1900 --config experiments/configs/interface_gvp_unirep.py
"""
from jaxgeo import config as config_lib


def get_config():
  config = config_lib.experiment("interface", "gvp", "replace", head="node", out_dim=1,
                                 lm_dim=1900)
  config.task.update(dict(data_dir="", splits_dir="", definition="ca", cutoff=0.0, bound=True,
                          limit=0, pos_weight=1.0))
  config.data.edges = "radius"  # the paper: radius graph, 8 A, at most 32 neighbours
  config.train.batch_graphs = 32
  config.lm.model = "unirep1900"
  config.lm.layer = 1
  return config
