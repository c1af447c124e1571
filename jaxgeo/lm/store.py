"""The embedding store: per-residue language-model embeddings, computed once, read many times.

Layout of a store folder:
  index.sqlite                  SQLite index (WAL mode): one row per entry, plus the models
  entries/ab/abcdef....npy      one array [L, D] per (model, layer, sequence)

An entry's file is named by the SHA-256 of its key (model name, layer, sequence), so the same
key always lands in the same file; the index row records its shape, dtype, the SHA-256 of its
bytes and how many times it was written (`writes`, used to check that resumed runs do not
recompute). Writes are atomic: the array goes to a temporary file in the same folder, is
fsynced and `os.replace`d, and only then is the index row committed, so a killed writer leaves
at worst an orphan file that the next run overwrites. SQLite's locking makes several writers
(processes or threads) safe.

Reads are memory-mapped (`np.load(mmap_mode="r")`). `get` checks the file against the index
(header, shape, dtype, size) and raises `DataError` for a missing, truncated, corrupt or
wrong-shaped entry; `verify()` also re-hashes every file.

Sequences are keyed in uppercase (see `tokenizer.normalize_sequence`).
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import pathlib
import sqlite3
import threading
import time
from typing import Iterator

import numpy as np

from jaxgeo.errors import DataError

INDEX_FILE = "index.sqlite"
ENTRIES_DIR = "entries"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
  key TEXT PRIMARY KEY,
  model TEXT NOT NULL,
  layer INTEGER NOT NULL,
  sequence TEXT NOT NULL,
  length INTEGER NOT NULL,
  dim INTEGER NOT NULL,
  dtype TEXT NOT NULL,
  sha256 TEXT NOT NULL,
  writes INTEGER NOT NULL DEFAULT 1,
  created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_model ON entries (model, layer);
CREATE TABLE IF NOT EXISTS models (
  model TEXT PRIMARY KEY,
  source TEXT NOT NULL,
  dim INTEGER NOT NULL,
  info TEXT NOT NULL DEFAULT ''
);
"""


def entry_key(model: str, layer: int, sequence: str) -> str:
  """Content hash of an entry's key. -> 64 hex characters."""
  h = hashlib.sha256()
  h.update(f"{model}\x00{int(layer)}\x00{sequence.upper()}".encode())
  return h.hexdigest()


def embed_command(model: str, store: str | os.PathLike, layer: int,
                  inputs: str = "--fasta SEQUENCES.fasta (or --structures DIR)",
                  source: str | None = None) -> str:
  """The `jaxgeo embed` command line that computes `model`'s layer `layer` into `store`.
  `source` is the --model argument (default: the UniRep name, or CONVERTED_MODEL_DIR for ESM-2
  models, whose weights come from a `jaxgeo convert-esm` folder)."""
  if source is None:
    source = model if model.startswith("unirep") else "CONVERTED_MODEL_DIR"
  return f"jaxgeo embed --model {source} {inputs} --store {store} --layers {layer}"


def _short(sequence: str) -> str:
  return sequence if len(sequence) <= 30 else f"{sequence[:27]}... (length {len(sequence)})"


class EmbeddingStore:
  """A folder of per-residue embeddings. Safe to share between processes and threads."""

  def __init__(self, path: str | os.PathLike, create: bool = True):
    self.path = pathlib.Path(path)
    if not self.path.is_dir():
      if not create:
        raise DataError(f"embedding store {self.path}: no such folder")
      self.path.mkdir(parents=True, exist_ok=True)
    elif not (self.path / INDEX_FILE).exists() and any(self.path.iterdir()) and not create:
      raise DataError(f"embedding store {self.path}: folder has no {INDEX_FILE}")
    (self.path / ENTRIES_DIR).mkdir(exist_ok=True)
    self._local = threading.local()
    with self._db() as db:
      db.executescript(_SCHEMA)

  # -- SQLite --------------------------------------------------------------------------------
  def _connection(self) -> sqlite3.Connection:
    conn = getattr(self._local, "conn", None)
    if conn is None or getattr(self._local, "pid", None) != os.getpid():
      try:
        conn = sqlite3.connect(self.path / INDEX_FILE, timeout=60.0, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=60000")
      except sqlite3.DatabaseError as e:
        raise DataError(f"embedding store {self.path}: index {INDEX_FILE} cannot be opened "
                        f"({e})") from None
      self._local.conn, self._local.pid = conn, os.getpid()
    return conn

  @contextlib.contextmanager
  def _db(self) -> Iterator[sqlite3.Connection]:
    conn = self._connection()
    try:
      yield conn
    except sqlite3.DatabaseError as e:
      raise DataError(f"embedding store {self.path}: index error ({e})") from None

  def close(self) -> None:
    conn = getattr(self._local, "conn", None)
    if conn is not None:
      conn.close()
      self._local.conn = None

  # -- paths ----------------------------------------------------------------------------------
  def entry_path(self, model: str, layer: int, sequence: str) -> pathlib.Path:
    key = entry_key(model, layer, sequence)
    return self.path / ENTRIES_DIR / key[:2] / f"{key}.npy"

  # -- models ---------------------------------------------------------------------------------
  def register_model(self, model: str, source: str, dim: int, info: str = "") -> None:
    """Records where a model's embeddings come from (used in error messages)."""
    with self._db() as db:
      db.execute("INSERT OR REPLACE INTO models (model, source, dim, info) VALUES (?, ?, ?, ?)",
                 (model, str(source), int(dim), info))

  def models(self) -> dict[str, dict]:
    with self._db() as db:
      rows = db.execute("SELECT model, source, dim, info FROM models").fetchall()
    return {m: {"source": s, "dim": d, "info": i} for m, s, d, i in rows}

  # -- entries --------------------------------------------------------------------------------
  def has(self, model: str, layer: int, sequence: str) -> bool:
    """Whether the index holds the entry and its file exists."""
    key = entry_key(model, layer, sequence)
    with self._db() as db:
      row = db.execute("SELECT 1 FROM entries WHERE key = ?", (key,)).fetchone()
    return row is not None and self.entry_path(model, layer, sequence).is_file()

  def put(self, model: str, layer: int, sequence: str, embedding: np.ndarray,
          dtype: str | np.dtype = np.float32) -> None:
    """Writes one entry atomically. embedding: [L, D] with L = len(sequence)."""
    sequence = sequence.upper()
    arr = np.asarray(embedding)
    if arr.ndim != 2 or arr.shape[0] != len(sequence):
      raise DataError(f"embedding store {self.path}: embedding of shape {list(arr.shape)} for "
                      f"sequence {_short(sequence)!r}; expected [{len(sequence)}, D]")
    arr = np.ascontiguousarray(arr, dtype=np.dtype(dtype))
    path = self.entry_path(model, layer, sequence)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(tmp, "wb") as f:
      np.save(f, arr, allow_pickle=False)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
    digest = hashlib.sha256(arr.tobytes()).hexdigest()
    with self._db() as db:
      db.execute(
          "INSERT INTO entries (key, model, layer, sequence, length, dim, dtype, sha256, writes,"
          " created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, ?) ON CONFLICT(key) DO UPDATE SET "
          "length=excluded.length, dim=excluded.dim, dtype=excluded.dtype, "
          "sha256=excluded.sha256, writes=entries.writes + 1, created=excluded.created",
          (entry_key(model, layer, sequence), model, int(layer), sequence, arr.shape[0],
           arr.shape[1], arr.dtype.str, digest, time.time()))

  @staticmethod
  def is_store(path: str | os.PathLike) -> bool:
    """Whether `path` is a store folder (holds an index)."""
    return (pathlib.Path(path) / INDEX_FILE).is_file()

  def source(self, model: str) -> str | None:
    """The `--model` argument the entries of `model` were computed with (None: unknown)."""
    info = self.models().get(model)
    return info["source"] if info else None

  def _missing_message(self, model: str, layer: int, sequence: str) -> str:
    return (f"embedding store {self.path}: no embedding for model {model!r}, layer {layer}, "
            f"sequence {_short(sequence.upper())!r}. Compute it with: "
            f"{embed_command(model, self.path, layer, source=self.source(model))}")

  def _row(self, model: str, layer: int, sequence: str):
    with self._db() as db:
      return db.execute("SELECT length, dim, dtype, sha256 FROM entries WHERE key = ?",
                        (entry_key(model, layer, sequence),)).fetchone()

  def get(self, model: str, layer: int, sequence: str, verify: bool = False) -> np.ndarray:
    """The embedding of `sequence`, memory-mapped read-only. -> [L, D] (dtype as stored).

    Raises DataError naming the entry (and the `jaxgeo embed` command that computes it) when
    it is missing, or naming the file when it is truncated, corrupt or of the wrong shape.
    `verify=True` also checks the SHA-256 of the bytes (reads the whole file).
    """
    row = self._row(model, layer, sequence)
    path = self.entry_path(model, layer, sequence)
    if row is None:
      raise DataError(self._missing_message(model, layer, sequence))
    length, dim, dtype, digest = row
    where = (f"embedding store {self.path}: entry {path.name} (model {model!r}, layer {layer}, "
             f"sequence {_short(sequence.upper())!r})")
    if not path.is_file():
      raise DataError(f"{where}: file is missing; re-run `jaxgeo embed` to recompute it")
    try:
      arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
      raise DataError(f"{where}: file is corrupt ({e}); delete it and re-run `jaxgeo embed`") from None
    if arr.shape != (length, dim) or arr.dtype.str != dtype:
      raise DataError(f"{where}: file holds {arr.dtype} {list(arr.shape)}, the index says "
                      f"{np.dtype(dtype)} [{length}, {dim}]; delete it and re-run `jaxgeo embed`")
    if len(sequence) != length:
      raise DataError(f"{where}: {length} rows for a sequence of {len(sequence)} residues")
    if verify and hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest() != digest:
      raise DataError(f"{where}: checksum mismatch (file changed since it was written); delete "
                      "it and re-run `jaxgeo embed`")
    return arr

  def writes(self, model: str, layer: int, sequence: str) -> int:
    """How many times the entry was written (0 when absent)."""
    with self._db() as db:
      row = db.execute("SELECT writes FROM entries WHERE key = ?",
                       (entry_key(model, layer, sequence),)).fetchone()
    return 0 if row is None else int(row[0])

  def entries(self, model: str | None = None) -> list[tuple[str, int, str]]:
    """(model, layer, sequence) of every entry (of `model`), in insertion order."""
    with self._db() as db:
      if model is None:
        rows = db.execute("SELECT model, layer, sequence FROM entries ORDER BY rowid").fetchall()
      else:
        rows = db.execute("SELECT model, layer, sequence FROM entries WHERE model = ? "
                          "ORDER BY rowid", (model,)).fetchall()
    return [(m, int(l), s) for m, l, s in rows]

  def __len__(self) -> int:
    with self._db() as db:
      return int(db.execute("SELECT COUNT(*) FROM entries").fetchone()[0])

  def verify(self) -> list[str]:
    """Checks every entry (file present, header, shape, checksum). -> problems, one a line."""
    problems = []
    for model, layer, seq in self.entries():
      try:
        self.get(model, layer, seq, verify=True)
      except DataError as e:
        problems.append(str(e))
    return problems
