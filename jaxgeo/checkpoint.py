"""Training checkpoints with orbax-checkpoint: atomic, no pickles, multi-host ready.

A checkpoint is one orbax step folder holding two items:
  state   a pytree of arrays (params, optimizer state, PRNG key data ...), written with
          `StandardSave` (OCDBT / TensorStore) and restored against a template so that the
          optimizer's NamedTuple states come back with their types;
  meta    a JSON dict (epoch, best value, early-stopping counters, the data-order seed ...).

Orbax writes a step into a temporary folder and renames it when complete, so a run killed
while saving keeps its previous checkpoint. A `Checkpointer` keeps the newest `max_to_keep`
steps of one folder; the trainer uses two: `checkpoints/last` (every epoch) and
`checkpoints/best` (the best validation epoch so far).
"""
from __future__ import annotations

import logging
import os
import pathlib
from typing import Any

from jaxgeo.errors import CheckpointError

logger = logging.getLogger(__name__)


def _ocp():
  import orbax.checkpoint as ocp
  return ocp


class Checkpointer:
  """Save / restore numbered steps of (state pytree, JSON meta) in one folder."""

  def __init__(self, directory: str | os.PathLike, max_to_keep: int = 1):
    ocp = _ocp()
    self.directory = pathlib.Path(directory).absolute()
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                           enable_async_checkpointing=False)
    self._manager = ocp.CheckpointManager(self.directory, options=options)

  def latest_step(self) -> int | None:
    self._manager.reload()
    return self._manager.latest_step()

  def save(self, step: int, state: Any, meta: dict) -> None:
    """Writes step `step` (replacing an existing one of that number) and waits for it."""
    ocp = _ocp()
    if step in self._manager.all_steps():
      self._manager.delete(step)
    self._manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)), force=True)
    self._manager.wait_until_finished()

  def restore(self, template: Any, step: int | None = None) -> tuple[Any, dict, int]:
    """-> (state shaped like `template`, meta, step). Raises CheckpointError when there is
    no checkpoint or it does not match the template."""
    ocp = _ocp()
    import jax
    step = self.latest_step() if step is None else step
    if step is None:
      raise CheckpointError(f"{self.directory}: no checkpoint")
    abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, template)
    try:
      restored = self._manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()))
    except (ValueError, KeyError, TypeError, FileNotFoundError) as e:
      raise CheckpointError(f"{self.directory}/{step}: cannot be restored into this model "
                            f"({type(e).__name__}: {e}); was it written by a different "
                            "config?") from None
    return restored["state"], dict(restored["meta"]), int(step)

  def restore_meta(self, step: int | None = None) -> dict:
    ocp = _ocp()
    step = self.latest_step() if step is None else step
    if step is None:
      raise CheckpointError(f"{self.directory}: no checkpoint")
    restored = self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
    return dict(restored["meta"])

  def close(self) -> None:
    self._manager.close()
