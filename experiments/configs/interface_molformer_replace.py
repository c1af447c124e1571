"""Protein-protein interface residues on DB5.5 (the paper's PPI): per-residue
binary classification of each partner of the 253 complexes (bound structures, EquiDock's
split 203 / 25 / 25 -> 406 / 50 / 50 graphs); interface = CA within 8 A of a partner CA.
Metrics: AUROC pooled (primary), AUROC per complex, AUPRC.

molformer with fusion 'replace': ESM-2 650M layer 33 vectors replace the
residue-type embedding (the paper's PLM runs).
The paper's schedule: Adam 1e-4, reduce-on-plateau x0.6, early stopping after 8 epochs, at
most 200 epochs, batches of 4 graphs.
"""
from jaxgeo import config as config_lib


def get_config():
  config = config_lib.experiment("interface", "molformer", "replace", head="node", out_dim=1)
  config.task.update(dict(data_dir="", splits_dir="", definition="ca", cutoff=0.0, bound=True,
                          limit=0, pos_weight=1.0))
  config.data.edges = "knn"  # unused by Molformer (attention over all nodes of a graph)
  config.train.batch_graphs = 4
  config.lm.model = "esm2_t33_650M"
  config.lm.layer = 33
  return config
