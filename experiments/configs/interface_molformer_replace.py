"""Protein-protein interface residues on DB5.5 (the paper's PPI): per-residue
binary classification of each partner of the 253 complexes (bound structures, EquiDock's
split 203 / 25 / 25 -> 406 / 50 / 50 graphs); interface = CA within 8 A of a partner CA.
Metrics: AUROC pooled (primary), AUROC per complex, AUPRC.

Molformer, fusion 'replace': ESM-2 650M layer-33 vectors replace the residue-type embedding (the paper's PLM runs).
The paper's schedule and graphs (`config.paper_experiment`): Adam 1e-4, reduce-on-plateau
x0.6, early stopping after 8 epochs, at most 200 epochs, batches of 4 graphs (attention
over all residues of a graph).
"""
from jaxgeo import config as config_lib


def get_config():
  return config_lib.paper_experiment("interface", "molformer", "replace")
