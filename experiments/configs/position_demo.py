"""A quick CPU demo of the position task (minutes on a laptop): a small EGNN learns the
relative sequence position i / (L - 1) of each residue of 120 generated proteins.

  jaxgeo train --config experiments/configs/position_demo.py
"""
from jaxgeo import config as config_lib


def get_config():
  config = config_lib.experiment("position", "egnn", "none", head="node", out_dim=1)
  config.task.update(dict(target="relative", num_train=96, num_val=12, num_test=12,
                          min_length=30, max_length=80, seed=0))
  config.data.k = 10
  config.model.egnn.hidden = 32
  config.model.egnn.num_layers = 2
  config.model.fusion.embed_dim = 32
  config.train.update(dict(lr=3e-3, epochs=30, batch_graphs=8, max_buckets=2, patience=8))
  return config
