"""JAX's persistent compilation cache as the commands use it, and a counter of compilations.

    folder = compile_cache.setup(args.compile_cache, default=compile_cache.default_dir(store))
    with compile_cache.CompileCounter() as counter:
      ...                                   # jitted work
    counter.compiled, counter.cache_hits    # XLA compilations run / loaded from the cache

Which folder (`resolve`): the command's `--compile-cache DIR`, else `$JAXGEO_JAX_CACHE`, else
the command's default, a `.jax_cache` folder (`DIR_NAME`) beside what it writes: inside the
embedding store for `jaxgeo embed`, in the runs root (the run folder's parent) for
`jaxgeo train`. `--no-compile-cache` turns the cache off: nothing is read from or written to
any folder.

What is cached: every XLA executable whose compilation took at least `MIN_COMPILE_SECS`
(0.05 s: every ESM-2 / UniRep batch shape and every network step, about 0.5-20 s each on a
CPU, but not the many trivial host-side ops, whose entries would cost more to read than to
compile), keyed by JAX on the computation, its devices, the compile options and the
jax/jaxlib version, so a cache shared by several versions or machines misses rather than
returning a wrong executable, and a hit is the very executable a compilation would produce
(the same results, bit for bit). Tracing and lowering still run on a hit (about 0.1 s per
shape); only the XLA compilation is skipped.

Trust: as JAX warns, the folder is trusted: whoever can write to it can make the processes
that use it run code. Do not point it at a folder others may write to.

No JAX import at module level; `enable` / `disable` switch the cache of this process (the
folder takes effect for the next compilation even when another folder was in use).
"""
from __future__ import annotations

import contextlib
import os
import pathlib
import threading
from typing import Iterator

ENV = "JAXGEO_JAX_CACHE"
DIR_NAME = ".jax_cache"
# Compilations faster than this are not written (JAX's default is 1 s, which would leave out
# the smaller ESM-2 batch shapes on a fast machine).
MIN_COMPILE_SECS = 0.05

BACKEND_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"
CACHE_HIT_EVENT = "/jax/compilation_cache/cache_hits"


def default_dir(beside: str | os.PathLike) -> pathlib.Path:
  """The default cache folder of a command that writes into `beside` (a store, a runs
  root): `beside/.jax_cache`."""
  return pathlib.Path(beside) / DIR_NAME


def resolve(flag: str | os.PathLike | None = None, default: str | os.PathLike | None = None,
            enabled: bool = True) -> pathlib.Path | None:
  """The cache folder: `flag` (`--compile-cache DIR`), else $JAXGEO_JAX_CACHE, else
  `default`; None when `enabled` is False (`--no-compile-cache`) or nothing is set."""
  if not enabled:
    return None
  folder = flag or os.environ.get(ENV) or default
  return pathlib.Path(folder) if folder else None


def enable(cache_dir: str | os.PathLike, min_compile_secs: float = MIN_COMPILE_SECS,
           what: str = "--compile-cache") -> str:
  """Turns the persistent cache on at `cache_dir` (created if absent). -> the folder.

  Raises ConfigError (naming `what`, where the folder came from) when the folder cannot be
  created."""
  import jax
  from jax.experimental.compilation_cache import compilation_cache
  from jaxgeo.errors import ConfigError
  folder = str(pathlib.Path(cache_dir))
  try:
    os.makedirs(folder, exist_ok=True)
  except OSError as e:
    raise ConfigError(f"{what} {folder}: cannot create the compilation cache folder "
                      f"({e.strerror or e}); pass --compile-cache DIR elsewhere or "
                      "--no-compile-cache") from None
  if jax.config.jax_compilation_cache_dir != folder:
    jax.config.update("jax_compilation_cache_dir", folder)
    compilation_cache.reset_cache()   # an earlier folder stays open otherwise
  jax.config.update("jax_persistent_cache_min_compile_time_secs", float(min_compile_secs))
  return folder


def disable() -> None:
  """Turns the persistent cache off for this process (nothing is read or written)."""
  import jax
  from jax.experimental.compilation_cache import compilation_cache
  if jax.config.jax_compilation_cache_dir is not None:
    jax.config.update("jax_compilation_cache_dir", None)
    compilation_cache.reset_cache()


def current() -> str | None:
  """The folder in use, or None."""
  import jax
  return jax.config.jax_compilation_cache_dir or None


def setup(flag: str | os.PathLike | None = None, default: str | os.PathLike | None = None,
          enabled: bool = True) -> str | None:
  """`resolve`, then `enable` the folder or `disable` the cache. -> the folder, or None.

  With nothing set (no flag, no $JAXGEO_JAX_CACHE, no default) the process keeps whatever
  was configured before (e.g. a test session's cache)."""
  folder = resolve(flag, default, enabled)
  if folder is not None:
    what = ("--compile-cache" if flag else f"${ENV}" if os.environ.get(ENV)
            else "the default compilation cache")
    return enable(folder, what=what)
  if not enabled:
    disable()
  return current()


@contextlib.contextmanager
def using(flag: str | os.PathLike | None = None, default: str | os.PathLike | None = None,
          enabled: bool = True) -> Iterator[str | None]:
  """`setup` for the duration of a `with` block (yields the folder or None); the cache the
  process had before is restored after it, so a command run in-process (e.g. by a test)
  leaves the process as it found it."""
  import jax
  before = (jax.config.jax_compilation_cache_dir,
            jax.config.jax_persistent_cache_min_compile_time_secs)
  try:
    yield setup(flag, default, enabled)
  finally:
    if before[0]:
      enable(before[0], before[1])
    else:
      disable()
      jax.config.update("jax_persistent_cache_min_compile_time_secs", before[1])


def describe(folder: str | None) -> str:
  """One line for the user: where compiled code is kept."""
  if folder is None:
    return "compilation cache: off"
  return f"compilation cache: {folder}"


class CompileCounter:
  """Counts XLA compilations while active (jax.monitoring listeners).

  `requests`: executables asked of the backend (each new jitted shape); `cache_hits`: those
  loaded from the persistent cache; `compiled` (= `count`): those actually compiled.
  `fun_name` (e.g. "jit(apply_fn)") restricts the counts to one jitted function.
  """

  def __init__(self, fun_name: str | None = None):
    self.fun_name = fun_name
    self.requests = 0
    self.cache_hits = 0
    self.seconds = 0.0   # backend time of the requests (compilations and cache reads)
    self._local = threading.local()   # the request in progress, per compiling thread
    self._lock = threading.Lock()

  @property
  def compiled(self) -> int:
    return self.requests - self.cache_hits

  count = compiled   # the name train.py's log uses ("backend_compiles")

  def _duration(self, event: str, duration: float, **kwargs) -> None:
    if event == BACKEND_COMPILE_EVENT and (self.fun_name is None
                                           or kwargs.get("fun_name") == self.fun_name):
      with self._lock:
        self.requests += 1
        self.seconds += float(duration)

  def _scalar(self, event: str, value, **kwargs) -> None:
    # Recorded when a backend request starts (with its function's name): cache hits, which
    # carry no name, are attributed to the request in progress in the same thread.
    del value
    if event == BACKEND_COMPILE_EVENT:
      self._local.mine = self.fun_name is None or kwargs.get("fun_name") == self.fun_name

  def _event(self, event: str, **kwargs) -> None:
    del kwargs
    if event == CACHE_HIT_EVENT and getattr(self._local, "mine", False):
      with self._lock:
        self.cache_hits += 1

  def __enter__(self) -> "CompileCounter":
    import jax
    jax.monitoring.register_event_duration_secs_listener(self._duration)
    jax.monitoring.register_scalar_listener(self._scalar)
    jax.monitoring.register_event_listener(self._event)
    return self

  def __exit__(self, *exc) -> None:
    import jax
    for unregister, listener in (
        (jax.monitoring.unregister_event_duration_listener, self._duration),
        (jax.monitoring.unregister_scalar_listener, self._scalar),
        (jax.monitoring.unregister_event_listener, self._event)):
      try:
        unregister(listener)
      except (AttributeError, ValueError, AssertionError):
        pass

  def summary(self) -> str:
    return (f"{self.compiled} compilation(s), {self.cache_hits} loaded from the compilation "
            "cache")
