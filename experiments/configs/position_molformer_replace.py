"""Position toy task (Wu et al. TOY, label 'dist': min(i, L - i) per residue, MSE / RMSE) on
generated structures: 800 / 100 / 100 proteins of 50-300 residues.

Molformer, fusion 'replace': ESM-2 650M layer-33 vectors replace the residue-type embedding (the paper's PLM runs).
The paper's schedule and graphs (`config.paper_experiment`): Adam 1e-4, reduce-on-plateau
x0.6, early stopping after 8 epochs, at most 200 epochs, batches of 4 graphs (attention
over all residues of a graph).
"""
from jaxgeo import config as config_lib


def get_config():
  return config_lib.paper_experiment("position", "molformer", "replace")
