"""Protein-protein interface residues on DB5.5 with GVP-GNN and UniRep features.

The same task and model as interface_gvp_replace.py, with the one pre-trained protein
language model that installs offline: UniRep 1900 (its per-residue hidden states, layer 1)
replaces the residue-type embedding. Embed once with

  jaxgeo embed --model unirep1900 --config experiments/configs/interface_gvp_replace_unirep.py
"""
from jaxgeo import config as config_lib


def get_config():
  return config_lib.paper_experiment("interface", "gvp", "replace", lm_model="unirep1900")
