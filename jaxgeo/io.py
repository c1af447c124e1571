"""Small file helpers: atomic writes (temp file in the same folder + os.replace), and checks
of output paths made before anything is computed."""
from __future__ import annotations

import contextlib
import gzip
import json
import os
import pathlib
import tempfile
import zlib
from typing import Any, Iterator

# Read once (os.umask can only be read by setting it, which is not thread-safe).
_UMASK = os.umask(0o022)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[str]:
  """Yields a temporary path beside `path`; on success it replaces `path` in one step, so a
  reader never sees a half-written file and an interrupted write leaves the old one."""
  path = os.fspath(path)
  folder = os.path.dirname(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".",
                             suffix=suffix + ".tmp")
  os.close(fd)
  try:
    yield tmp
    # mkstemp creates 0600 files; give the result the permissions a plain open() would.
    os.chmod(tmp, 0o666 & ~_UMASK)
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.unlink(tmp)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
  with atomic_path(path) as tmp:
    with open(tmp, "wb") as f:
      f.write(data)
      f.flush()
      os.fsync(f.fileno())


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
  atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
  atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_bytes_maybe_gzip(path: str | os.PathLike, error: type[Exception]) -> bytes:
  """The bytes of a file, gunzipped when it starts with the gzip magic number.

  Raises `error` (a JaxgeoError subclass) naming the file when it is missing, unreadable or
  a truncated / corrupt gzip stream.
  """
  path = os.fspath(path)
  if not os.path.exists(path):
    raise error(f"{path}: no such file")
  if os.path.isdir(path):
    raise error(f"{path}: is a folder, not a file")
  try:
    with open(path, "rb") as f:
      raw = f.read()
    if raw[:2] == b"\x1f\x8b":
      raw = gzip.decompress(raw)
  except (EOFError, gzip.BadGzipFile, zlib.error) as e:
    raise error(f"{path}: truncated or corrupt gzip file ({e})") from None
  except OSError as e:
    raise error(f"{path}: cannot read ({e.strerror or e})") from None
  return raw


def input_file(path: str | os.PathLike, what: str, error: type[Exception]) -> pathlib.Path:
  """Checks that the input `path` is a file. Raises `error` (a JaxgeoError subclass) whose
  message is `what` (the option and / or the path) and the cause: missing, or a folder."""
  path = pathlib.Path(path)
  if path.is_dir():
    raise error(f"{what}: is a folder, not a file")
  if not path.is_file():
    raise error(f"{what}: no such file")
  return path


def input_folder(path: str | os.PathLike, what: str, error: type[Exception]) -> pathlib.Path:
  """Checks that the input `path` is a folder. Raises `error` (a JaxgeoError subclass) whose
  message is `what` (the option and / or the path) and the cause: missing, or a file."""
  path = pathlib.Path(path)
  if path.exists() and not path.is_dir():
    raise error(f"{what}: is a file, not a folder")
  if not path.is_dir():
    raise error(f"{what}: no such folder")
  return path


def output_folder(path: str | os.PathLike, what: str, error: type[Exception]
                  ) -> pathlib.Path:
  """Creates the output folder `path` (and its parents), before anything is computed.

  Raises `error` (a JaxgeoError subclass) whose message is `what` (the option and / or the
  path) and the cause when it is a file or cannot be created.
  """
  path = pathlib.Path(path)
  _make_folder(path, what, error)
  return path


def output_file(path: str | os.PathLike, what: str, error: type[Exception]) -> pathlib.Path:
  """Checks that the output file `path` can be written (not a folder; its folder created),
  before anything is computed. Raises `error` whose message is `what` (the option and / or
  the path) and the cause."""
  path = pathlib.Path(path)
  if path.is_dir():
    raise error(f"{what}: is a folder, not a file")
  _make_folder(path.parent, what, error)
  return path


def _make_folder(folder: pathlib.Path, what: str, error: type[Exception]) -> None:
  """Creates `folder` (and its parents); raises `error`, its message `what` and the cause,
  when the folder is a file or cannot be created."""
  if folder.exists() and not folder.is_dir():
    raise error(f"{what}: {folder} is a file, not a folder")
  try:
    folder.mkdir(parents=True, exist_ok=True)
  except OSError as e:
    raise error(f"{what}: cannot create the folder {folder} ({e.strerror or e})") from None
