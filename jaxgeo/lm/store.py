"""The embedding store: per-residue language-model embeddings, computed once, read many times.

Layout of a store folder:
  index.sqlite                  SQLite index (WAL mode): one row per entry, plus the models
  entries/ab/abcdef....npy      one array [L, D] per (model, layer, sequence)

Entries are keyed by the model's content, not its name: an embedder has a fingerprint (ESM-2:
the SHA-256 of its converted parameters and config, written by `jaxgeo convert-esm` beside
them; UniRep: of its weights file), registered in the `fingerprints` table with its readable
name as a label. An entry's file is named by the SHA-256 of (fingerprint, layer, sequence), so
two different models converted under one name never share entries. Every method taking a
`model` accepts a fingerprint (or a unique prefix of at least 8 hex digits) or a name, which is
resolved to the one fingerprint registered under it (two: `DataError` saying so). A name with
no fingerprint is an entry written before fingerprints existed, keyed by the name: such stores
still read, and `fingerprint(name)` is None.

The index row records an entry's shape, dtype, the SHA-256 of its bytes and how many times it
was written (`writes`, used to check that resumed runs do not recompute). Writes are atomic:
the array goes to a temporary file in the same folder, is fsynced and `os.replace`d, and only
then is the index row committed, so a killed writer leaves at worst an orphan file that the
next run overwrites (`jaxgeo store verify` reports entry files the index does not list; an
entry file holds only the array, so it cannot be re-indexed, and `--repair` deletes it).
SQLite's locking makes several writers (processes or threads) safe. `put` refuses non-finite
values (NaN, inf, float16 overflow).

Reads are memory-mapped (`np.load(mmap_mode="r")`). `get` checks the file against the index
(header, shape, dtype, size, finite values) and raises `DataError` for a missing, truncated,
corrupt, wrong-shaped or non-finite entry; `verify=True` (and `check`, used by `jaxgeo embed`
on what it skips, and `verify_report`, behind `jaxgeo store verify`) also re-hashes the file.

Sequences are keyed in uppercase (see `tokenizer.normalize_sequence`).
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import pathlib
import re
import sqlite3
import threading
import time
from typing import Iterator, Mapping

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
CREATE TABLE IF NOT EXISTS fingerprints (
  fingerprint TEXT NOT NULL,
  name TEXT NOT NULL,
  source TEXT NOT NULL,
  dim INTEGER NOT NULL,
  created REAL NOT NULL,
  PRIMARY KEY (fingerprint, name)
);
"""
# What `check` / `verify_report` can find, in report order ("absent": no index row).
STATUSES = ("ok", "missing file", "truncated", "corrupt", "checksum", "non-finite")
_HEX = re.compile(r"[0-9a-f]{8,64}")
# An entry file younger than this with no index row may be a write in progress (the file is
# replaced before its row is committed): `verify_report(repair=True)` leaves it in place.
RECENT_S = 300.0


def entry_key(model: str, layer: int, sequence: str) -> str:
  """Content hash of an entry's key (`model`: a fingerprint, or the name of an entry written
  before fingerprints). -> 64 hex characters."""
  h = hashlib.sha256()
  h.update(f"{model}\x00{int(layer)}\x00{sequence.upper()}".encode())
  return h.hexdigest()


def content_fingerprint(arrays: Mapping[str, np.ndarray], meta: Mapping | None = None) -> str:
  """SHA-256 of named arrays (names, dtypes, shapes, bytes) and a JSON-able `meta` dict: what
  identifies a model's content. -> 64 hex characters."""
  h = hashlib.sha256(b"jaxgeo-fingerprint-v1\x00")
  h.update(json.dumps(dict(meta or {}), sort_keys=True, default=str).encode() + b"\x00")
  for name in sorted(arrays):
    a = np.ascontiguousarray(arrays[name])
    h.update(f"{name}\x00{a.dtype.str}\x00{list(a.shape)}\x00".encode())
    h.update(memoryview(a).cast("B"))
  return h.hexdigest()


def file_fingerprint(path: str | os.PathLike) -> str:
  """SHA-256 of a file's bytes (a weights file). -> 64 hex characters."""
  h = hashlib.sha256(b"jaxgeo-file-v1\x00")
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 22), b""):
      h.update(block)
  return h.hexdigest()


def short_fingerprint(fingerprint: str | None) -> str:
  return "none" if not fingerprint else fingerprint[:12]


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


def _inspect(path: pathlib.Path, length: int, dim: int, dtype: str, digest: str,
             checksum: bool) -> tuple[str, str, np.ndarray | None]:
  """Checks an entry's file against its index row. -> (status, what is wrong, array or None)."""
  if not path.is_file():
    return "missing file", "file is missing", None
  size = path.stat().st_size
  try:
    with open(path, "rb") as f:
      version = np.lib.format.read_magic(f)
      read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
              else np.lib.format.read_array_header_2_0)
      shape, _, dt = read(f)
      start = f.tell()
  except (ValueError, OSError, EOFError) as e:
    if size < 128:
      return "truncated", f"file is truncated ({size} bytes, no complete header)", None
    return "corrupt", f"file is corrupt ({e})", None
  if tuple(shape) != (length, dim) or dt.str != dtype:
    return "corrupt", (f"file holds {dt} {list(shape)}, the index says {np.dtype(dtype)} "
                       f"[{length}, {dim}]"), None
  expected = start + length * dim * dt.itemsize
  if size < expected:
    return "truncated", f"file is truncated ({size} of {expected} bytes)", None
  if size > expected:
    return "corrupt", f"file is corrupt ({size - expected} bytes after the array)", None
  try:
    arr = np.load(path, mmap_mode="r", allow_pickle=False)
  except (ValueError, OSError, EOFError) as e:
    return "corrupt", f"file is corrupt ({e})", None
  if arr.dtype.kind == "f" and not np.isfinite(arr).all():
    bad = int(arr.size - np.isfinite(arr).sum())
    return "non-finite", f"holds {bad} non-finite value(s) (NaN or inf)", None
  if checksum and hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest() != digest:
    return "checksum", "checksum mismatch (file changed since it was written)", None
  return "ok", "", arr


@dataclasses.dataclass(frozen=True)
class VerifyReport:
  """What `EmbeddingStore.verify_report` found. counts: status -> entries (STATUSES);
  problems: one line per entry that is not ok; repaired: entries removed from the index.
  Entry files the index does not list: unindexed (found, no repair asked), removed (deleted by
  the repair), recent (left by the repair: written in the last RECENT_S seconds)."""
  path: str
  counts: dict
  problems: tuple[str, ...]
  repaired: int
  unindexed: tuple[str, ...] = ()
  removed: tuple[str, ...] = ()
  recent: tuple[str, ...] = ()

  @property
  def total(self) -> int:
    return sum(self.counts.values())

  @property
  def bad(self) -> int:
    return self.total - self.counts.get("ok", 0)

  @property
  def clean(self) -> bool:
    """Whether nothing damaged is left: every entry ok or repaired, no unindexed file left."""
    return self.bad == self.repaired and not self.unindexed and not self.recent

  def summary(self) -> str:
    parts = ", ".join(f"{s} {self.counts.get(s, 0)}" for s in STATUSES)
    line = f"embedding store {self.path}: {self.total} entries: {parts}"
    if self.repaired:
      line += (f"; repaired {self.repaired} (removed from the index: the next `jaxgeo embed` "
               "recomputes them)")
    elif self.bad:
      line += ("; run `jaxgeo store verify --repair` to remove them so that `jaxgeo embed` "
               "recomputes them")
    return line + self._unindexed_summary()

  def _unindexed_summary(self) -> str:
    why = ("an entry file holds only the array, not its model, layer or sequence, so it "
           "cannot be re-indexed; the next `jaxgeo embed` recomputes them")
    line, what = "", "entry file(s) the index does not list"
    if self.removed:
      line += f"; removed {len(self.removed)} {what} (e.g. {self.removed[0]}): {why}"
    if self.recent:
      line += (f"; left {len(self.recent)} {what} (e.g. {self.recent[0]}) in place: written "
               f"in the last {RECENT_S / 60:.0f} minutes, maybe by a `jaxgeo embed` still "
               "running; verify again later")
    if self.unindexed:
      line += (f"; {len(self.unindexed)} {what} (e.g. {self.unindexed[0]}): "
               f"`jaxgeo store verify --repair` removes them ({why})")
    return line


class EmbeddingStore:
  """A folder of per-residue embeddings. Safe to share between processes and threads."""

  def __init__(self, path: str | os.PathLike, create: bool = True):
    self.path = pathlib.Path(path)
    if self.path.exists() and not self.path.is_dir():
      raise DataError(f"embedding store {self.path}: is a file, not a folder")
    if not self.path.is_dir():
      if not create:
        raise DataError(f"embedding store {self.path}: no such folder")
      try:
        self.path.mkdir(parents=True, exist_ok=True)
      except OSError as e:
        raise DataError(f"embedding store {self.path}: cannot create the folder "
                        f"({e.strerror or e})") from None
    elif not (self.path / INDEX_FILE).exists() and any(self.path.iterdir()):
      raise DataError(f"embedding store {self.path}: folder is not empty and holds no "
                      f"{INDEX_FILE}, so it is not an embedding store; choose a new or empty "
                      "folder")
    self._local = threading.local()
    with self._db() as db:
      db.executescript(_SCHEMA)
    (self.path / ENTRIES_DIR).mkdir(exist_ok=True)

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

  # -- models ---------------------------------------------------------------------------------
  def register_model(self, model: str, source: str, dim: int, info: str = "",
                     fingerprint: str | None = None) -> list[str]:
    """Records where a model's embeddings come from (used in error messages) and, with
    `fingerprint`, the content fingerprint its entries are keyed by, labelled `model`.
    -> the other fingerprints already registered under the name `model` (each makes the name
    ambiguous: readers must then name the model by its fingerprint)."""
    with self._db() as db:
      db.execute("INSERT OR REPLACE INTO models (model, source, dim, info) VALUES (?, ?, ?, ?)",
                 (model, str(source), int(dim), info))
      if fingerprint is None:
        return []
      db.execute("INSERT OR REPLACE INTO fingerprints (fingerprint, name, source, dim, created)"
                 " VALUES (?, ?, ?, ?, ?)", (fingerprint, model, str(source), int(dim),
                                             time.time()))
      rows = db.execute("SELECT fingerprint FROM fingerprints WHERE name = ? AND fingerprint "
                        "!= ? ORDER BY created", (model, fingerprint)).fetchall()
    return [r[0] for r in rows]

  def models(self) -> dict[str, dict]:
    with self._db() as db:
      rows = db.execute("SELECT model, source, dim, info FROM models").fetchall()
    return {m: {"source": s, "dim": d, "info": i} for m, s, d, i in rows}

  def fingerprints(self, name: str | None = None) -> dict[str, dict]:
    """fingerprint -> {"name", "source", "dim"} of the registered models (named `name`)."""
    with self._db() as db:
      if name is None:
        rows = db.execute("SELECT fingerprint, name, source, dim FROM fingerprints "
                          "ORDER BY created").fetchall()
      else:
        rows = db.execute("SELECT fingerprint, name, source, dim FROM fingerprints WHERE "
                          "name = ? ORDER BY created", (name,)).fetchall()
    return {f: {"name": n, "source": s, "dim": d} for f, n, s, d in rows}

  def resolve(self, model: str) -> str:
    """The model id entries of `model` are keyed by: its fingerprint (`model` a fingerprint,
    a unique prefix of one, or a name with exactly one fingerprint), else `model` itself (a
    name from before fingerprints). Raises DataError when a name or prefix is ambiguous."""
    model = str(model)
    with self._db() as db:
      if db.execute("SELECT 1 FROM fingerprints WHERE fingerprint = ?", (model,)).fetchone():
        return model
      named = [r[0] for r in db.execute(
          "SELECT DISTINCT fingerprint FROM fingerprints WHERE name = ?", (model,)).fetchall()]
      if not named and _HEX.fullmatch(model):
        named = [r[0] for r in db.execute(
            "SELECT DISTINCT fingerprint FROM fingerprints WHERE substr(fingerprint, 1, ?) = ?",
            (len(model), model)).fetchall()]
    if len(named) == 1:
      return named[0]
    if len(named) > 1:
      infos = self.fingerprints()
      which = "; ".join(f"{short_fingerprint(f)} from {infos.get(f, {}).get('source', '?')}"
                        for f in named)
      raise DataError(f"embedding store {self.path}: model {model!r} names {len(named)} "
                      f"different models ({which}); set lm.model to the fingerprint you mean "
                      "(at least its first 8 characters), or keep each model in its own store")
    return model

  def fingerprint(self, model: str) -> str | None:
    """The fingerprint `model` resolves to, or None (entries written before fingerprints)."""
    resolved = self.resolve(model)
    with self._db() as db:
      row = db.execute("SELECT 1 FROM fingerprints WHERE fingerprint = ?",
                       (resolved,)).fetchone()
    return resolved if row else None

  def label(self, model: str) -> str:
    """A readable name of a model id: `name (fingerprint abc...)` or the legacy name."""
    infos = self.fingerprints()
    if model in infos:
      return f"{infos[model]['name']} (fingerprint {short_fingerprint(model)})"
    return model

  def source(self, model: str) -> str | None:
    """The `--model` argument the entries of `model` were computed with (None: unknown)."""
    infos = self.fingerprints()
    try:
      resolved = self.resolve(model)
    except DataError:
      resolved = model
    if resolved in infos:
      return infos[resolved]["source"]
    info = self.models().get(model)
    return info["source"] if info else None

  # -- paths ----------------------------------------------------------------------------------
  def _path(self, model_id: str, layer: int, sequence: str) -> pathlib.Path:
    key = entry_key(model_id, layer, sequence)
    return self.path / ENTRIES_DIR / key[:2] / f"{key}.npy"

  def entry_path(self, model: str, layer: int, sequence: str) -> pathlib.Path:
    return self._path(self.resolve(model), layer, sequence)

  # -- entries --------------------------------------------------------------------------------
  def has(self, model: str, layer: int, sequence: str) -> bool:
    """Whether the index holds the entry and its file exists (see `check` for its contents)."""
    model = self.resolve(model)
    key = entry_key(model, layer, sequence)
    with self._db() as db:
      row = db.execute("SELECT 1 FROM entries WHERE key = ?", (key,)).fetchone()
    return row is not None and self._path(model, layer, sequence).is_file()

  def put(self, model: str, layer: int, sequence: str, embedding: np.ndarray,
          dtype: str | np.dtype = np.float32) -> None:
    """Writes one entry atomically. embedding: [L, D] with L = len(sequence), finite."""
    model = self.resolve(model)
    sequence = sequence.upper()
    arr = np.asarray(embedding)
    if arr.ndim != 2 or arr.shape[0] != len(sequence):
      raise DataError(f"embedding store {self.path}: embedding of shape {list(arr.shape)} for "
                      f"sequence {_short(sequence)!r}; expected [{len(sequence)}, D]")
    finite_before = bool(np.isfinite(arr).all()) if arr.dtype.kind == "f" else True
    with np.errstate(over="ignore", invalid="ignore"):
      arr = np.ascontiguousarray(arr, dtype=np.dtype(dtype))
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
      why = ("" if not finite_before else f" after conversion to {arr.dtype} (values beyond its "
             "range: use --store-dtype float32)")
      raise DataError(f"embedding store {self.path}: embedding of model {self.label(model)}, "
                      f"layer {layer}, sequence {_short(sequence)!r} holds non-finite values "
                      f"(NaN or inf){why}; not written")
    path = self._path(model, layer, sequence)
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

  def _missing_message(self, model: str, layer: int, sequence: str) -> str:
    infos = self.fingerprints()
    name = infos[model]["name"] if model in infos else model
    return (f"embedding store {self.path}: no embedding for model {self.label(model)!r}, "
            f"layer {layer}, sequence {_short(sequence.upper())!r}. Compute it with: "
            f"{embed_command(name, self.path, layer, source=self.source(model))}")

  def _row(self, model_id: str, layer: int, sequence: str):
    with self._db() as db:
      return db.execute("SELECT length, dim, dtype, sha256 FROM entries WHERE key = ?",
                        (entry_key(model_id, layer, sequence),)).fetchone()

  def check(self, model: str, layer: int, sequence: str, checksum: bool = True
            ) -> tuple[str, str]:
    """The state of one entry. -> (status, detail): status "absent" (no index row) or one of
    STATUSES; `checksum=True` re-hashes the file."""
    model = self.resolve(model)
    row = self._row(model, layer, sequence)
    if row is None:
      return "absent", "not in the index"
    if row[0] != len(sequence):
      return "corrupt", f"{row[0]} rows for a sequence of {len(sequence)} residues"
    status, detail, _ = _inspect(self._path(model, layer, sequence), *row, checksum=checksum)
    return status, detail

  def get(self, model: str, layer: int, sequence: str, verify: bool = False) -> np.ndarray:
    """The embedding of `sequence`, memory-mapped read-only. -> [L, D] (dtype as stored).

    Raises DataError naming the entry (and the `jaxgeo embed` command that computes it) when
    it is missing, or naming the file when it is truncated, corrupt, of the wrong shape or
    holds non-finite values. `verify=True` also checks the SHA-256 of the bytes.
    """
    model = self.resolve(model)
    row = self._row(model, layer, sequence)
    path = self._path(model, layer, sequence)
    if row is None:
      raise DataError(self._missing_message(model, layer, sequence))
    where = (f"embedding store {self.path}: entry {path.name} (model {self.label(model)!r}, "
             f"layer {layer}, sequence {_short(sequence.upper())!r})")
    if row[0] != len(sequence):
      raise DataError(f"{where}: {row[0]} rows for a sequence of {len(sequence)} residues")
    status, detail, arr = _inspect(path, *row, checksum=verify)
    if status == "missing file":
      raise DataError(f"{where}: file is missing; re-run `jaxgeo embed` to recompute it")
    if status != "ok":
      raise DataError(f"{where}: {detail}; re-run `jaxgeo embed` (it recomputes damaged "
                      "entries) or `jaxgeo store verify --repair`")
    return arr

  def writes(self, model: str, layer: int, sequence: str) -> int:
    """How many times the entry was written (0 when absent)."""
    with self._db() as db:
      row = db.execute("SELECT writes FROM entries WHERE key = ?",
                       (entry_key(self.resolve(model), layer, sequence),)).fetchone()
    return 0 if row is None else int(row[0])

  def entries(self, model: str | None = None) -> list[tuple[str, int, str]]:
    """(model id, layer, sequence) of every entry (of `model`), in insertion order. The model
    id is the fingerprint (or the name of an entry written before fingerprints)."""
    with self._db() as db:
      if model is None:
        rows = db.execute("SELECT model, layer, sequence FROM entries ORDER BY rowid").fetchall()
      else:
        rows = db.execute("SELECT model, layer, sequence FROM entries WHERE model = ? "
                          "ORDER BY rowid", (self.resolve(model),)).fetchall()
    return [(m, int(l), s) for m, l, s in rows]

  def unfingerprinted(self, name: str) -> int:
    """How many entries are keyed by the name `name` (written before fingerprints)."""
    with self._db() as db:
      return int(db.execute("SELECT COUNT(*) FROM entries WHERE model = ?",
                            (name,)).fetchone()[0])

  def remove(self, model: str, layer: int, sequence: str) -> None:
    """Deletes an entry's index row and file (the next `jaxgeo embed` recomputes it)."""
    self._remove_id(self.resolve(model), layer, sequence)

  def _remove_id(self, model_id: str, layer: int, sequence: str) -> None:
    with self._db() as db:
      db.execute("DELETE FROM entries WHERE key = ?", (entry_key(model_id, layer, sequence),))
    with contextlib.suppress(FileNotFoundError):
      self._path(model_id, layer, sequence).unlink()

  def __len__(self) -> int:
    with self._db() as db:
      return int(db.execute("SELECT COUNT(*) FROM entries").fetchone()[0])

  def unindexed(self) -> list[pathlib.Path]:
    """The entry files under entries/ whose key the index does not hold, sorted."""
    # Files first, then keys: `put` writes the file before its row.
    files = sorted((self.path / ENTRIES_DIR).glob("*/*.npy"))
    with self._db() as db:
      keys = {r[0] for r in db.execute("SELECT key FROM entries").fetchall()}
    return [p for p in files if p.stem not in keys]

  @staticmethod
  def _remove_unindexed(path: pathlib.Path) -> bool:
    """Deletes an unindexed entry file unless it is recent (maybe a write in progress).
    -> whether it is gone."""
    try:
      if time.time() - path.stat().st_mtime < RECENT_S:
        return False
      path.unlink()
    except FileNotFoundError:
      pass
    return True

  def verify_report(self, repair: bool = False) -> VerifyReport:
    """Checks every entry (file present, header, size, shape, finite values, checksum) and
    lists the entry files the index does not hold. `repair=True` removes every entry that is
    not ok from the index (and its file), and deletes the unindexed files (they cannot be
    re-indexed: a file holds only the array) but those written in the last RECENT_S seconds.
    """
    with self._db() as db:
      rows = db.execute("SELECT model, layer, sequence, length, dim, dtype, sha256 FROM entries "
                        "ORDER BY rowid").fetchall()
    counts = {s: 0 for s in STATUSES}
    problems, repaired = [], 0
    for model, layer, seq, length, dim, dtype, digest in rows:
      path = self._path(model, layer, seq)
      if length != len(seq):
        status, detail = "corrupt", f"{length} rows for a sequence of {len(seq)} residues"
      else:
        status, detail, _ = _inspect(path, length, dim, dtype, digest, checksum=True)
      counts[status] += 1
      if status == "ok":
        continue
      problems.append(f"{status}: entry {path.name} (model {self.label(model)}, layer {layer}, "
                      f"sequence {_short(seq)!r}): {detail}")
      if repair:
        self._remove_id(model, layer, seq)
        repaired += 1
    unindexed = [str(p) for p in self.unindexed()]
    if not repair:
      return VerifyReport(str(self.path), counts, tuple(problems), repaired, tuple(unindexed))
    removed, recent = [], []
    for p in unindexed:
      (removed if self._remove_unindexed(pathlib.Path(p)) else recent).append(p)
    return VerifyReport(str(self.path), counts, tuple(problems), repaired, (), tuple(removed),
                        tuple(recent))

  def verify(self) -> list[str]:
    """Checks every entry (file present, header, shape, checksum). -> problems, one a line."""
    return list(self.verify_report().problems)
