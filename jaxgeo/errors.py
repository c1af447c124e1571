"""The errors a user can cause. Everything else is a bug.

Every `JaxgeoError` message names the file (or option) and the cause; the CLI prints that
one line and exits with status 2.
"""


class JaxgeoError(Exception):
  """Base class of every error caused by user input (files, options, data)."""


class StructureError(JaxgeoError):
  """A structure file that cannot be read as a protein (empty, truncated, no residues...)."""


class ConfigError(JaxgeoError):
  """An unknown or inconsistent option in a config or on the command line."""


class DataError(JaxgeoError):
  """A dataset, split, label or embedding-store problem."""


class CheckpointError(JaxgeoError):
  """A model checkpoint or converted-weights file that does not match what is expected."""
