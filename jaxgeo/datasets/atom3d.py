"""ATOM3D LMDB datasets (drorlab/atom3d) and the PSR, LBA and PPI tasks built on them.

The format (as `atom3d.datasets.make_lmdb_dataset` writes it; the fixture in
`../shared/data/atom3d_fixture/lmdb` is one):
- an LMDB environment (a folder with `data.mdb`), keys `b"0"` .. `b"{n-1}"` one record each,
  plus `num_examples` (decimal text), `serialization_format` (`json`, `msgpack` or `pkl`) and
  `id_to_idx` ({id: index}, serialized the same way);
- each record is gzip-compressed and holds a dict: `id`, `file_path`, `types` ({key: the
  Python type's repr}) and the data; pandas DataFrames (the `atoms*` tables) are stored in
  pandas' "split" orientation `{columns, index, data}` (rows of values). Columns of an atoms
  table: ensemble, subunit, structure, model, chain, hetero, insertion_code, residue, segid,
  resname, altloc, occupancy, bfactor, x, y, z, element, name, fullname, serial_number.

Reading here needs neither pandas nor torch: tables become `AtomsTable`s (numpy columns).
`pkl` datasets are refused unless `allow_pickle=True` (unpickling runs code from the file);
their DataFrames then need pandas to unpickle. A record that cannot be read (corrupt gzip,
bad JSON, a table whose rows do not match its columns) raises DataError naming the LMDB
folder, the record and the cause.

`protein_from_atoms(table)` turns a table into a `jaxgeo.structure.Protein` with the same
residue assembly as `load_protein` (first model, highest-occupancy alternate locations,
modified residues mapped to their parents, hydrogens and waters dropped).

The tasks built on them live in `jaxgeo/tasks/atom3d.py`.
"""
from __future__ import annotations

import ast
import dataclasses
import gzip
import json
import logging
import os
import pathlib
import zlib
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from jaxgeo import structure
from jaxgeo.errors import ConfigError, DataError
from jaxgeo.structure import Protein

logger = logging.getLogger(__name__)

FORMATS = ("json", "msgpack", "pkl")
DATAFRAME_TYPE = "<class 'pandas.core.frame.DataFrame'>"
_META_KEYS = (b"num_examples", b"serialization_format", b"id_to_idx")
_FLOAT_COLUMNS = ("x", "y", "z", "occupancy", "bfactor")
_INT_COLUMNS = ("residue", "model", "serial_number")


# ------------------------------------------------------------------ tables


@dataclasses.dataclass(frozen=True, eq=False)
class AtomsTable:
  """An ATOM3D atoms table: one numpy array per column, all of length A.

  Attributes:
    columns: {column name: [A] array} in the file's column order.
  """
  columns: dict[str, np.ndarray]

  def __len__(self) -> int:
    return 0 if not self.columns else int(next(iter(self.columns.values())).shape[0])

  def __contains__(self, name: str) -> bool:
    return name in self.columns

  def __getitem__(self, name: str) -> np.ndarray:
    return self.columns[name]

  @property
  def names(self) -> tuple[str, ...]:
    return tuple(self.columns)

  def select(self, mask: np.ndarray) -> "AtomsTable":
    """The rows where `mask` [A] bool is True (or the rows at int indices)."""
    return AtomsTable({k: v[mask] for k, v in self.columns.items()})

  def xyz(self) -> np.ndarray:
    """[A, 3] float64 coordinates."""
    return np.stack([self.columns[c].astype(np.float64) for c in ("x", "y", "z")], axis=-1)

  def to_split(self) -> dict:
    """pandas' orient="split" dict ({columns, index, data}) of plain Python values."""
    names = list(self.columns)
    cols = [self.columns[n].tolist() for n in names]
    return {"columns": names, "index": list(range(len(self))),
            "data": [list(row) for row in zip(*cols)] if cols else []}

  @classmethod
  def from_split(cls, obj: Any, where: str) -> "AtomsTable":
    """From a {columns, index, data} dict; malformed -> DataError naming `where`."""
    if not isinstance(obj, dict) or "columns" not in obj or "data" not in obj:
      raise DataError(f"{where}: not a table (expected pandas 'split' {{columns, index, data}})")
    names = [str(c) for c in obj["columns"]]
    rows = obj["data"]
    if not isinstance(rows, list):
      raise DataError(f"{where}: table data is not a list of rows")
    for i, row in enumerate(rows):
      if not isinstance(row, (list, tuple)):
        raise DataError(f"{where}: row {i} is not a list of values")
      if len(row) != len(names):
        raise DataError(f"{where}: row {i} has {len(row)} values for {len(names)} columns")
    columns = {}
    values = list(zip(*rows)) if rows else [()] * len(names)
    for name, col in zip(names, values):
      base_name = name.rstrip("0123456789")  # PPI neighbour tables: residue0, residue1, ...
      try:
        if base_name in _FLOAT_COLUMNS:
          arr = np.array([np.nan if v is None else v for v in col], dtype=np.float64)
        elif base_name in _INT_COLUMNS:
          arr = np.array(col, dtype=np.int64)
        else:
          arr = np.array(["" if v is None else str(v) for v in col], dtype=str)
      except (TypeError, ValueError) as e:
        raise DataError(f"{where}: column {name!r} has a bad value ({e})") from None
      columns[name] = arr
    return cls(columns)


def _is_split_dict(value: Any) -> bool:
  return isinstance(value, dict) and {"columns", "data", "index"} <= set(value)


def _decode_tables(item: dict, where: str) -> dict:
  """Turns the DataFrame entries of a record (per its `types`) into AtomsTables."""
  types = item.get("types") if isinstance(item.get("types"), dict) else None
  out = {}
  for key, value in item.items():
    is_table = (types is not None and "DataFrame" in str(types.get(key, ""))) or (
        types is None and _is_split_dict(value))
    if hasattr(value, "to_dict") and hasattr(value, "columns"):  # an unpickled DataFrame
      value = value.to_dict(orient="split")
      is_table = True
    out[key] = AtomsTable.from_split(value, f"{where}: {key}") if is_table else value
  return out


# ------------------------------------------------------------------ LMDB


def _deserialize(raw: bytes, fmt: str, where: str, allow_pickle: bool) -> Any:
  if fmt == "json":
    try:
      return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
      raise DataError(f"{where}: not valid JSON ({e})") from None
  if fmt == "msgpack":
    try:
      import msgpack
    except ModuleNotFoundError:
      raise DataError(f"{where}: serialization_format 'msgpack' needs the msgpack package "
                      "(pip install msgpack)") from None
    try:
      return msgpack.unpackb(raw, raw=False, strict_map_key=False)
    except Exception as e:  # msgpack raises several unrelated types
      raise DataError(f"{where}: not valid msgpack ({type(e).__name__}: {e})") from None
  if fmt == "pkl":
    if not allow_pickle:
      raise DataError(_pickle_refusal(where))
    import pickle
    try:
      return pickle.loads(raw)  # noqa: S301 - the user allowed it explicitly
    except ModuleNotFoundError as e:
      raise DataError(f"{where}: the pickle needs module {e.name!r} (pandas for ATOM3D "
                      "tables); install it or convert the dataset to json") from None
    except Exception as e:
      raise DataError(f"{where}: cannot unpickle ({type(e).__name__}: {e})") from None
  raise DataError(f"{where}: unknown serialization_format {fmt!r} (expected one of {FORMATS})")


def _pickle_refusal(where: str) -> str:
  return (f"{where}: serialization_format is 'pkl' (Python pickle): reading it can run "
          "arbitrary code from the file. Pass allow_pickle=True (task.allow_pickle=True) only "
          "for a dataset you trust, or convert it to json (ATOM3D: make_lmdb_dataset(..., "
          "serialization_format='json'))")


class LMDBDataset:
  """An ATOM3D LMDB dataset, read-only.

      with LMDBDataset("psr/split-by-year/data/train") as ds:
        item = ds[0]                   # dict; atoms tables as AtomsTable
        protein = protein_from_atoms(item["atoms"])

  Args:
    path: the LMDB folder (holding data.mdb) or the data file itself.
    allow_pickle: read a `pkl` dataset (unpickling runs code: trusted files only).
  Raises:
    DataError naming the path when it is missing, not an LMDB, or lacks ATOM3D's keys;
    `pkl` without allow_pickle.
  """

  def __init__(self, path: str | os.PathLike, allow_pickle: bool = False):
    import lmdb
    self.path = pathlib.Path(path)
    self.allow_pickle = bool(allow_pickle)
    if not self.path.exists():
      raise DataError(f"{self.path}: no such LMDB dataset")
    subdir = self.path.is_dir()
    if subdir and not (self.path / "data.mdb").is_file():
      raise DataError(f"{self.path}: no data.mdb: not an LMDB dataset folder")
    try:
      self._env = lmdb.open(str(self.path), subdir=subdir, readonly=True, lock=False,
                            readahead=False, meminit=False, max_readers=126)
    except lmdb.Error as e:
      raise DataError(f"{self.path}: cannot open as LMDB ({e})") from None
    try:
      with self._env.begin(write=False) as txn:
        meta = {k: txn.get(k) for k in _META_KEYS}
    except lmdb.Error as e:
      raise DataError(f"{self.path}: cannot read the LMDB ({e})") from None
    if meta[b"num_examples"] is None or meta[b"serialization_format"] is None:
      raise DataError(f"{self.path}: not an ATOM3D dataset (no num_examples / "
                      "serialization_format key)")
    try:
      self._num = int(meta[b"num_examples"].decode())
    except (ValueError, UnicodeDecodeError):
      raise DataError(f"{self.path}: num_examples is not a number") from None
    self.serialization_format = meta[b"serialization_format"].decode(errors="replace").strip()
    if self.serialization_format not in FORMATS:
      raise DataError(f"{self.path}: unknown serialization_format "
                      f"{self.serialization_format!r} (expected one of {FORMATS})")
    if self.serialization_format == "pkl" and not self.allow_pickle:
      raise DataError(_pickle_refusal(str(self.path)))
    self._id_to_idx: dict[str, int] = {}
    if meta[b"id_to_idx"] is not None:
      mapping = _deserialize(meta[b"id_to_idx"], self.serialization_format,
                             f"{self.path}: id_to_idx", self.allow_pickle)
      if not isinstance(mapping, dict):
        raise DataError(f"{self.path}: id_to_idx is not a mapping")
      self._id_to_idx = {str(k): int(v) for k, v in mapping.items()}

  def __len__(self) -> int:
    return self._num

  def __enter__(self) -> "LMDBDataset":
    return self

  def __exit__(self, *exc) -> None:
    self.close()

  def close(self) -> None:
    self._env.close()

  def ids(self) -> list[str]:
    """Example ids in index order (from `id_to_idx`)."""
    return [k for k, _ in sorted(self._id_to_idx.items(), key=lambda kv: kv[1])]

  def index_of(self, example_id: str) -> int:
    if example_id not in self._id_to_idx:
      raise DataError(f"{self.path}: no example with id {example_id!r}")
    return self._id_to_idx[example_id]

  def get(self, example_id: str) -> dict:
    return self[self.index_of(example_id)]

  def raw(self, index: int) -> dict:
    """Record `index` deserialized, tables still as stored (split dicts)."""
    if not 0 <= index < self._num:
      raise IndexError(f"{self.path}: index {index} out of range (0..{self._num - 1})")
    where = f"{self.path}: record {index}"
    with self._env.begin(write=False) as txn:
      compressed = txn.get(str(index).encode())
    if compressed is None:
      raise DataError(f"{where} is missing (num_examples is {self._num})")
    try:
      serialized = gzip.decompress(compressed)
    except (OSError, EOFError, zlib.error) as e:
      raise DataError(f"{where}: corrupt gzip data ({e})") from None
    item = _deserialize(serialized, self.serialization_format, where, self.allow_pickle)
    if not isinstance(item, dict):
      raise DataError(f"{where}: holds {type(item).__name__}, expected a dict")
    return item

  def __getitem__(self, index: int) -> dict:
    """Record `index` as a dict: tables as AtomsTable, `id` and `file_path` always set."""
    item = _decode_tables(self.raw(index), f"{self.path}: record {index}")
    item.setdefault("id", str(index))
    item.setdefault("file_path", str(self.path))
    return item

  def __iter__(self) -> Iterator[dict]:
    for i in range(self._num):
      yield self[i]


def write_lmdb(path: str | os.PathLike, items: Iterable[dict],
               serialization_format: str = "json") -> int:
  """Writes an ATOM3D LMDB dataset (readable by `atom3d.datasets.LMDBDataset` too).

  Args:
    path: a new (or empty) folder.
    items: dicts with an `id`; AtomsTable values are stored as DataFrames ("split" dicts with
      the DataFrame type recorded in `types`).
    serialization_format: "json" or "msgpack" (pickles are not written).
  Returns:
    The number of records written. All records are written in one LMDB transaction.
  """
  import lmdb
  if serialization_format not in ("json", "msgpack"):
    raise ConfigError(f"write_lmdb: serialization_format {serialization_format!r}: use json "
                      "or msgpack (no pickles)")
  path = pathlib.Path(path)
  if path.exists() and any(path.iterdir()):
    raise DataError(f"{path}: folder is not empty; write the dataset to a new folder")
  path.mkdir(parents=True, exist_ok=True)

  def dump(obj) -> bytes:
    if serialization_format == "json":
      return json.dumps(obj).encode()
    import msgpack
    return msgpack.packb(obj)

  records, id_to_idx = [], {}
  for i, item in enumerate(items):
    item = dict(item)
    item.setdefault("id", str(i))
    types = {k: (DATAFRAME_TYPE if isinstance(v, AtomsTable) else str(type(v)))
             for k, v in item.items()}
    types["types"] = str(dict)
    plain = {k: (v.to_split() if isinstance(v, AtomsTable) else v) for k, v in item.items()}
    plain["types"] = types
    records.append(gzip.compress(dump(plain), compresslevel=6, mtime=0))
    id_to_idx[str(item["id"])] = i
  meta = dump(id_to_idx)
  size = sum(len(r) for r in records) + len(meta)
  env = lmdb.open(str(path), map_size=max(1 << 20, 4 * size + (1 << 20)), subdir=True)
  try:
    with env.begin(write=True) as txn:
      for i, record in enumerate(records):
        txn.put(str(i).encode(), record)
      txn.put(b"num_examples", str(len(records)).encode())
      txn.put(b"serialization_format", serialization_format.encode())
      txn.put(b"id_to_idx", meta)
  finally:
    env.close()
  return len(records)


# ------------------------------------------------------------------ tables -> structures


def _column(table: AtomsTable, name: str, default: Any, where: str) -> np.ndarray:
  if name in table:
    return table[name]
  if default is None:
    raise DataError(f"{where}: atoms table lacks column {name!r} (has {', '.join(table.names)})")
  return np.full(len(table), default)


def protein_from_atoms(table: AtomsTable, source: str = "atoms") -> Protein:
  """A Protein from an ATOM3D atoms table (one structure: select a subunit first).

  Needs columns chain, residue, resname, name, x, y, z; uses hetero, insertion_code, altloc,
  occupancy, element and model when present. Only the first model is read.

  Args:
    table: A atoms.
    source: a name for messages and `Protein.source` (e.g. "LMDB[id]:atoms").
  Raises:
    DataError naming `source` for a missing column or non-finite coordinates;
    StructureError when no protein residue remains.
  """
  if len(table) == 0:
    raise DataError(f"{source}: empty atoms table")
  if "model" in table:
    table = table.select(table["model"] == table["model"][0])
  chain = _column(table, "chain", None, source)
  resnum = _column(table, "residue", None, source)
  resname = _column(table, "resname", None, source)
  name = _column(table, "name", None, source)
  xyz = np.stack([_column(table, c, None, source).astype(np.float64) for c in "xyz"], axis=-1)
  if not np.all(np.isfinite(xyz)):
    raise DataError(f"{source}: non-finite atom coordinates")
  hetero = _column(table, "hetero", " ", source)
  icode = _column(table, "insertion_code", " ", source)
  altloc = _column(table, "altloc", " ", source)
  occupancy = _column(table, "occupancy", 1.0, source).astype(np.float64)
  occupancy = np.where(np.isfinite(occupancy), occupancy, 1.0)
  element = _column(table, "element", "", source)
  records = [
      # The residue assembly of load_protein (structure.py's record type and assembler).
      structure.AtomRecord(
          hetero=str(hetero[i]).strip() != "",
          name=str(name[i]).strip(), altloc=str(altloc[i]).strip(),
          resname=str(resname[i]).strip(), chain=str(chain[i]).strip(),
          resnum=int(resnum[i]), icode=str(icode[i]).strip(),
          position=(float(xyz[i, 0]), float(xyz[i, 1]), float(xyz[i, 2])),
          occupancy=float(occupancy[i]), element=_element(str(element[i])))
      for i in range(len(table))]
  protein = structure.protein_from_records(source, records)
  return dataclasses.replace(protein, source=source)


def atoms_table(protein: Protein, ensemble: str = "", subunit: str = "",
                model: int = 1) -> AtomsTable:
  """An ATOM3D atoms table of a Protein's atom37 heavy atoms (ATOM records), in residue order.

  The inverse of `protein_from_atoms` (up to ligands, which are not written): used to build
  ATOM3D-format datasets from structures.
  """
  from jaxgeo import residues
  res_idx, slot = np.nonzero(protein.atom_mask)
  names = np.array(residues.ATOM_TYPES)[slot]
  letters = np.array(list(protein.sequence))[res_idx]
  resname = np.array([residues.RESTYPE_1TO3.get(c, "UNK") for c in letters])
  xyz = protein.atom_positions[res_idx, slot].astype(np.float64)
  n = len(res_idx)
  source = protein.source or "protein"
  return AtomsTable({
      "ensemble": np.full(n, ensemble or source), "subunit": np.full(n, subunit or source),
      "structure": np.full(n, source), "model": np.full(n, model, np.int64),
      "chain": protein.chain_id[res_idx].astype(str), "hetero": np.full(n, " "),
      "insertion_code": np.array([c or " " for c in protein.insertion_code[res_idx]]),
      "residue": protein.residue_number[res_idx].astype(np.int64), "segid": np.full(n, "    "),
      "resname": resname, "altloc": np.full(n, " "), "occupancy": np.ones(n),
      "bfactor": np.zeros(n), "x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2],
      "element": np.array([a[:1] for a in names]), "name": names,
      "fullname": np.array([f" {a:<3s}" if len(a) < 4 else a for a in names]),
      "serial_number": np.arange(1, n + 1, dtype=np.int64),
  })


def _element(symbol: str) -> str:
  s = symbol.strip()
  return s[:1].upper() + s[1:].lower() if s else ""


def ligand_atoms(table: AtomsTable, hydrogens: bool = False, source: str = "ligand"
                 ) -> tuple[np.ndarray, list[str]]:
  """(positions [A, 3] float32, element symbols [A]) of a ligand table (hydrogens dropped).

  Raises DataError naming `source` when the table is empty, lacks element or coordinate
  columns, or has no (heavy) atom.
  """
  if len(table) == 0:
    raise DataError(f"{source}: empty ligand table (missing ligand?)")
  elements = [_element(str(e)) for e in _column(table, "element", None, source)]
  xyz = np.stack([_column(table, c, None, source).astype(np.float64) for c in "xyz"], axis=-1)
  keep = np.array([hydrogens or e not in ("H", "D") for e in elements], bool)
  if not keep.any():
    raise DataError(f"{source}: the ligand has no heavy atom")
  if not np.all(np.isfinite(xyz[keep])):
    raise DataError(f"{source}: non-finite ligand coordinates")
  return xyz[keep].astype(np.float32), [e for e, k in zip(elements, keep) if k]


def parse_target(example_id: str) -> str:
  """PSR ids are "('T0759', 'MODEL')": the target, else the id itself."""
  try:
    value = ast.literal_eval(example_id)
  except (ValueError, SyntaxError):
    return str(example_id)
  if isinstance(value, (tuple, list)) and value:
    return str(value[0])
  return str(example_id)
