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

A checkpoint that cannot be read (garbled or truncated chunk files) or a checkpoint folder that
is a file raises one `CheckpointError` line naming the run folder, not orbax's multi-KB
TensorStore dump. `RunLock` is the run folder's exclusive lock (`fcntl.flock` on `RUN_DIR/.lock`,
held for the length of a training run and released by the kernel when the process dies).
"""
from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import pathlib
import sys
import time
from typing import Any

from jaxgeo.errors import CheckpointError, ConfigError

LOCK_FILE = ".lock"
# Words of TensorStore / orbax errors that mean the files are damaged, not of another model.
_DAMAGE = ("corruption", "FAILED_PRECONDITION", "DATA_LOSS", "Error reading", "Encountered error",
           "checksum", "truncated", "OUT_OF_RANGE", "Unexpected end")

logger = logging.getLogger(__name__)


def _drop_closed_loop_noise() -> None:
  """Installs (once) what drops the noise of reads still in flight after a restore failed on
  damaged files: a `sys.unraisablehook` that drops `RuntimeError('Event loop is closed')`
  (passing everything else to the previous hook), and a filter on the `asyncio` logger that
  drops "Task / Future exception was never retrieved" records whose exception names damaged
  files (the sibling reads of a garbled checkpoint fail too, and asyncio logs each when its
  task or future is collected; seen on a loaded machine)."""
  previous = sys.unraisablehook
  if getattr(previous, "_jaxgeo_quiet", False):
    return

  def hook(args) -> None:
    if isinstance(args.exc_value, RuntimeError) and str(args.exc_value) == "Event loop is closed":
      return
    previous(args)

  hook._jaxgeo_quiet = True
  sys.unraisablehook = hook
  logging.getLogger("asyncio").addFilter(_unretrieved_damage_filter)


def _unretrieved_damage_filter(record: logging.LogRecord) -> bool:
  """False (drop) for asyncio's log of an unretrieved task or future exception about damaged
  files."""
  if not str(record.msg).split("\n", 1)[0].endswith(" exception was never retrieved"):
    return True
  exc = record.exc_info[1] if record.exc_info else None
  return not (exc is not None and any(w in str(exc) for w in _DAMAGE))


def _ocp():
  import orbax.checkpoint as ocp
  return ocp


class Checkpointer:
  """Save / restore numbered steps of (state pytree, JSON meta) in one folder."""

  def __init__(self, directory: str | os.PathLike, max_to_keep: int = 1):
    ocp = _ocp()
    self.directory = pathlib.Path(directory).absolute()
    for p in (self.directory, self.directory.parent, self.directory.parent.parent):
      if p.exists() and not p.is_dir():
        raise CheckpointError(f"run folder {self._run_dir()}: {p} is a file, not a folder; "
                              "move it away (or choose another --run-dir)")
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                           enable_async_checkpointing=False)
    try:
      self._manager = ocp.CheckpointManager(self.directory, options=options)
    except OSError as e:
      raise CheckpointError(f"run folder {self._run_dir()}: cannot create {self.directory} "
                            f"({e.strerror or e})") from None

  def _run_dir(self) -> pathlib.Path:
    """The run folder (checkpoints live in RUN_DIR/checkpoints/{last,best})."""
    return self.directory.parent.parent

  def _unreadable(self, step: int, e: BaseException) -> CheckpointError:
    """One line for a checkpoint that orbax / TensorStore could not read."""
    texts, x = [], e
    while x is not None and len(texts) < 5:
      texts.append(f"{type(x).__name__}: {x}")
      x = x.__cause__ or x.__context__
    first = next((t for t in reversed(texts) if any(w in t for w in _DAMAGE)), texts[0])
    first = first.splitlines()[0] if first.strip() else type(e).__name__
    if len(first) > 240:
      first = first[:237] + "..."
    where = f"run folder {self._run_dir()}: checkpoint {self.directory.name}/{step}"
    if any(w in " ".join(texts) for w in _DAMAGE):
      return CheckpointError(f"{where} is unreadable (garbled or truncated files: {first}); "
                             f"delete {self.directory} to restart the run from scratch, or "
                             "start a new run folder")
    return CheckpointError(f"{where}: cannot be restored into this model ({first}); was it "
                           "written by a different config?")

  def latest_step(self) -> int | None:
    self._manager.reload()
    return self._manager.latest_step()

  def save(self, step: int, state: Any, meta: dict) -> None:
    """Writes step `step` (replacing an existing one of that number) and waits for it."""
    ocp = _ocp()
    import jax
    if jax.process_count() == 1:
      # Host copies: orbax writes numpy arrays as they are, where it slices each array
      # replicated over several devices by device ops (one compilation a shape: 2 s on a
      # run's first save over 2 CPU devices). Restoring is unchanged (the template's types).
      state = jax.device_get(state)
    try:
      if step in self._manager.all_steps():
        self._manager.delete(step)
      self._manager.save(step, args=ocp.args.Composite(
          state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)), force=True)
      self._manager.wait_until_finished()
    except OSError as e:
      raise CheckpointError(f"run folder {self._run_dir()}: cannot write checkpoint "
                            f"{self.directory.name}/{step} ({e.strerror or e}: "
                            f"{getattr(e, 'filename', '') or ''})") from None

  def restore(self, template: Any, step: int | None = None) -> tuple[Any, dict, int]:
    """-> (state shaped like `template`, meta, step). `template`: arrays, or
    jax.ShapeDtypeStruct leaves (`jax.eval_shape` of an init: nothing computed; restored onto
    the first local device when they name no sharding). Raises CheckpointError when there
    is no checkpoint or it does not match the template."""
    ocp = _ocp()
    import jax
    step = self.latest_step() if step is None else step
    if step is None:
      raise CheckpointError(f"{self.directory}: no checkpoint")
    local = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    abstract = jax.tree_util.tree_map(
        lambda x: (jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=local)
                   if isinstance(x, jax.ShapeDtypeStruct) and x.sharding is None
                   else ocp.utils.to_shape_dtype_struct(x)), template)
    try:
      restored = self._manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()))
    except Exception as e:  # orbax / TensorStore raise plain Exception for damaged chunks
      error = self._unreadable(step, e)
      self._close_quietly()
      raise error from None
    return restored["state"], dict(restored["meta"]), int(step)

  def restore_meta(self, step: int | None = None) -> dict:
    ocp = _ocp()
    step = self.latest_step() if step is None else step
    if step is None:
      raise CheckpointError(f"{self.directory}: no checkpoint")
    try:
      restored = self._manager.restore(step, args=ocp.args.Composite(
          meta=ocp.args.JsonRestore()))
    except Exception as e:
      error = self._unreadable(step, e)
      self._close_quietly()
      raise error from None
    return dict(restored["meta"])

  def close(self) -> None:
    self._manager.close()

  def _close_quietly(self) -> None:
    """Closes the manager after a failed restore. TensorStore reads still in flight then
    complete into orbax's closed asyncio loop and raise `RuntimeError: Event loop is closed`
    through `sys.unraisablehook`, one traceback each: those (only those) are dropped."""
    _drop_closed_loop_noise()
    with contextlib.suppress(Exception):
      self._manager.close()


class RunLock:
  """Exclusive lock on a run folder for the length of a run (a context manager).

  `fcntl.flock` on RUN_DIR/.lock: the kernel releases it when the holder exits or is killed,
  so a killed run can always be resumed. The holder writes its pid (and start time) into the
  file; a second process gets a ConfigError saying which process holds the folder.
  """

  def __init__(self, run_dir: str | os.PathLike):
    self.run_dir = pathlib.Path(run_dir)
    self._fd: int | None = None

  def __enter__(self) -> "RunLock":
    path = self.run_dir / LOCK_FILE
    try:
      fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
      raise ConfigError(f"--run-dir {self.run_dir}: cannot create its lock file "
                        f"({e.strerror or e})") from None
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
      holder = b""
      with contextlib.suppress(OSError):
        holder = os.pread(fd, 200, 0)
      os.close(fd)
      who = holder.decode("utf-8", "replace").strip() or "another process"
      raise ConfigError(f"--run-dir {self.run_dir}: in use by another training ({who}); wait "
                        "for it to finish, or choose another --run-dir") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode(),
              0)
    self._fd = fd
    return self

  def __exit__(self, *exc) -> None:
    if self._fd is not None:
      with contextlib.suppress(OSError):
        os.ftruncate(self._fd, 0)
      os.close(self._fd)  # releases the flock
      self._fd = None
