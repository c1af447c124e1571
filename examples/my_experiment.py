"""A user's own experiment config: any file whose `get_config()` returns a ConfigDict works
wherever a row name does (`jaxgeo train --config examples/my_experiment.py`).

It starts from a row of the table (`jaxgeo.rows`) and changes a few values.
"""
from jaxgeo import rows


def get_config():
  config = rows.config("position_demo")
  config.train.epochs = 5
  config.task.num_train = 32
  return config
