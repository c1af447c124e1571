"""Position toy task (Wu et al. TOY, label 'dist': min(i, L - i) per residue, MSE / RMSE),
egnn with fusion 'none': no language model (residue-type embedding).

Generated structures (jaxgeo.testing.random_protein): 800 / 100 / 100 proteins of 50-300
residues. The paper's schedule: Adam 1e-4, reduce-on-plateau x0.6, early stopping after 8
epochs, at most 200 epochs, batches of 32 proteins.
"""
from jaxgeo import config as config_lib


def get_config():
  config = config_lib.experiment("position", "egnn", "none", head="node", out_dim=1)
  config.task.update(dict(target="dist", num_train=800, num_val=100, num_test=100,
                          min_length=50, max_length=300, seed=0))
  config.data.edges = "radius"  # the paper: radius graph, 8 A, at most 32 neighbours
  config.train.batch_graphs = 32
  config.lm.model = "esm2_t33_650M"
  config.lm.layer = 33
  return config
