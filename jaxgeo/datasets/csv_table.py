"""A researcher's own labels: a CSV table of measurements on a folder of structures.

Two layouts (the `level`):

- "graph": one row per example: `file` (a structure file name in the folder), optional
  `chains` ("A", "A,B"; empty: every chain), and label column(s);
- "residue": one row per labelled residue: `file`, `chain`, `residue_number`, optional
  `insertion_code`, and label column(s). Residues of a file without a row are unlabelled.

Optional columns (both levels): `split` (train / val / test), `group` (examples of one group
stay in one split and per-group metrics average over groups). Every other column is a label
column; `read_table` picks one (`label`), parses it by `kind` ("regression", "binary",
"multiclass", or "auto": inferred from the values and reported) and checks the table:

    table = read_table("labels.csv", level="graph", label="", kind="auto")
    table.rows        # [Row(line, file, chains, label, group, split, ...)]
    table.kind, table.classes, table.label_column, table.choice (how the kind was chosen)

Everything a user can get wrong raises one `DataError` naming the file, the line and the
cause: a missing column, an empty or non-numeric label, a label of one class only, an
unknown split value, duplicate rows that disagree. With `on_bad_row="skip"` a row whose label
is empty or unusable is skipped instead and listed in `table.skipped` (never silently).
`split_units` assigns the rows to splits (the `split` column, or seeded at random by group,
or by structure file); `check_residues` matches residue rows to a loaded structure.
"""
from __future__ import annotations

import csv
import dataclasses
import io as _io
import math
import pathlib
from collections.abc import Sequence

import numpy as np

from jaxgeo.errors import ConfigError, DataError

LEVELS = ("graph", "residue")
KINDS = ("auto", "regression", "binary", "multiclass")
ON_BAD_ROW = ("error", "skip")
SPLIT_VALUES = ("train", "val", "test")
SPLIT_ALIASES = {"train": "train", "training": "train", "val": "val", "valid": "val",
                 "validation": "val", "test": "test", "testing": "test"}
RESERVED = {"graph": ("file", "chains", "split", "group"),
            "residue": ("file", "chain", "residue_number", "insertion_code", "split", "group")}
REQUIRED = {"graph": ("file",), "residue": ("file", "chain", "residue_number")}


@dataclasses.dataclass(frozen=True)
class Row:
  """One usable row. `label` is the value (regression) or the class index (classification)."""
  line: int              # 1-based line of the CSV file (the header is line 1)
  file: str
  label: float
  chains: str = ""       # graph level
  chain: str = ""        # residue level
  residue_number: int = 0
  insertion_code: str = ""
  group: str = ""
  split: str = ""


@dataclasses.dataclass(frozen=True)
class Table:
  """A validated label table (see the module docstring)."""
  path: str
  level: str
  label_column: str
  kind: str
  classes: tuple[str, ...]     # classification: class names in index order; () regression
  choice: str                  # how the kind was chosen (printed / logged)
  rows: tuple[Row, ...]
  has_split: bool
  has_group: bool
  skipped: tuple[str, ...] = ()   # "line N: cause" of rows skipped under on_bad_row="skip"

  @property
  def files(self) -> list[str]:
    """The distinct structure files, in order of first appearance."""
    return list(dict.fromkeys(r.file for r in self.rows))


def _is_number(text: str) -> bool:
  try:
    return math.isfinite(float(text))
  except ValueError:
    return False


def _class_key(text: str):
  """Sort numbers numerically, then strings."""
  return (0, float(text), text) if _is_number(text) else (1, 0.0, text)


def read_rows(path: str | pathlib.Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
  """The header and the non-empty rows [(line, {column: stripped text})] of a CSV file."""
  path = pathlib.Path(path)
  try:
    text = path.read_text(encoding="utf-8-sig")
  except FileNotFoundError:
    raise DataError(f"task.labels={str(path)!r}: no such file") from None
  except (OSError, UnicodeDecodeError) as e:
    raise DataError(f"{path}: cannot be read as a text CSV file ({e})") from None
  reader = csv.reader(_io.StringIO(text))
  header, rows = None, []
  for record in reader:
    line = reader.line_num
    if not any(cell.strip() for cell in record) or record[0].lstrip().startswith("#"):
      continue
    if header is None:
      header = [c.strip() for c in record]
      dupes = sorted({c for c in header if header.count(c) > 1})
      if dupes or "" in header:
        raise DataError(f"{path}: line {line}: the header has "
                        f"{'repeated column(s) ' + ', '.join(dupes) if dupes else 'an empty column name'}")
      continue
    if len(record) > len(header):
      raise DataError(f"{path}: line {line}: {len(record)} fields but the header has "
                      f"{len(header)} columns")
    record = record + [""] * (len(header) - len(record))
    rows.append((line, {h: c.strip() for h, c in zip(header, record)}))
  if header is None:
    raise DataError(f"{path}: empty CSV file (expected a header line)")
  if not rows:
    raise DataError(f"{path}: no rows after the header")
  return header, rows


def read_table(path: str | pathlib.Path, level: str = "graph", label: str = "",
               kind: str = "auto", classes: str = "", on_bad_row: str = "error") -> Table:
  """Reads and validates a label table (see the module docstring). Raises DataError naming
  the file and line, ConfigError for a bad option."""
  if level not in LEVELS:
    raise ConfigError(f"task.level={level!r}: expected one of {LEVELS}")
  if kind not in KINDS:
    raise ConfigError(f"task.kind={kind!r}: expected one of {KINDS}")
  if on_bad_row not in ON_BAD_ROW:
    raise ConfigError(f"task.on_bad_row={on_bad_row!r}: expected one of {ON_BAD_ROW}")
  path = pathlib.Path(path)
  header, raw = read_rows(path)
  missing = [c for c in REQUIRED[level] if c not in header]
  if missing:
    raise DataError(f"{path}: line 1: missing column(s) {', '.join(missing)} (a {level}-level "
                    f"table needs {', '.join(REQUIRED[level])} and a label column; header: "
                    f"{', '.join(header)})")
  label_columns = [c for c in header if c not in RESERVED[level]]
  if label:
    if label not in header:
      raise DataError(f"{path}: line 1: no label column {label!r} (task.label; label columns: "
                      f"{', '.join(label_columns) or 'none'})")
    column = label
  elif len(label_columns) == 1:
    column = label_columns[0]
  elif not label_columns:
    raise DataError(f"{path}: line 1: no label column (every column is one of "
                    f"{', '.join(RESERVED[level])})")
  else:
    raise ConfigError(f"task.label: {path} has several label columns "
                      f"({', '.join(label_columns)}); choose one with task.label")

  skipped: list[str] = []

  def bad(line: int, cause: str) -> None:
    if on_bad_row == "skip":
      skipped.append(f"line {line}: {cause}")
    else:
      raise DataError(f"{path}: line {line}: {cause}"
                      " (or set task.on_bad_row=skip to skip such rows, listed in the log)")

  # Labels: kind and class names.
  values = [(line, row[column]) for line, row in raw]
  given = [v for _, v in values if v]
  numeric = [v for v in given if _is_number(v)]
  class_list = [c.strip() for c in classes.split(",") if c.strip()] if classes else []
  if kind == "auto":
    if given and len(numeric) == len(given):
      distinct = {float(v) for v in numeric}
      if distinct <= {0.0, 1.0}:
        kind, choice = "binary", f"binary (column {column!r} holds only 0 and 1)"
      else:
        kind, choice = "regression", (f"regression (column {column!r} is numeric with "
                                      f"{len(distinct)} distinct values; set task.kind="
                                      "multiclass for integer classes)")
    elif numeric and class_list == []:
      first = next((line, v) for line, v in values if v and not _is_number(v))
      raise DataError(f"{path}: line {first[0]}: non-numeric label {first[1]!r} in column "
                      f"{column!r} whose other values are numbers (fix it, or set task.kind="
                      "binary / multiclass to read the column as class names)")
    else:
      n_classes = len(class_list) or len(set(given))
      kind = "binary" if n_classes == 2 else "multiclass"
      choice = f"{kind} (column {column!r} holds {n_classes} class names)"
  else:
    choice = f"{kind} (task.kind)"
  if kind != "regression":
    if not class_list:
      class_list = sorted(set(given), key=_class_key)
      if kind == "binary" and set(class_list) <= {"0", "1", "0.0", "1.0"}:
        class_list = sorted(class_list, key=float)
    if kind == "binary" and len(class_list) > 2:
      raise DataError(f"{path}: column {column!r} holds {len(class_list)} classes "
                      f"({', '.join(class_list[:6])}) but task.kind=binary")
    choice += f"; classes {class_list}" + (f", positive {class_list[-1]!r}"
                                           if kind == "binary" else "")
  index = {c: i for i, c in enumerate(class_list)}

  rows: list[Row] = []
  seen: dict[tuple, Row] = {}
  for line, row in raw:
    text = row[column]
    if not row["file"]:
      bad(line, "empty 'file' field")
      continue
    if not text:
      bad(line, f"empty label in column {column!r}")
      continue
    if kind == "regression":
      if not _is_number(text):
        bad(line, f"non-numeric label {text!r} in column {column!r}")
        continue
      value = float(text)
    else:
      if text not in index:
        if _is_number(text) and any(_is_number(c) and float(c) == float(text)
                                    for c in class_list):
          text = next(c for c in class_list if _is_number(c) and float(c) == float(text))
        else:
          bad(line, f"label {text!r} in column {column!r} is not one of the classes "
              f"{class_list} (task.classes)")
          continue
      value = float(index[text])
    split = ""
    if "split" in row:
      split = SPLIT_ALIASES.get(row["split"].lower(), "")
      if not split:
        raise DataError(f"{path}: line {line}: split {row['split']!r} is not one of "
                        f"{', '.join(SPLIT_VALUES)}")
    fields = {"line": line, "file": row["file"], "label": value,
              "group": row.get("group", ""), "split": split}
    if level == "graph":
      fields["chains"] = ",".join(c.strip() for c in row.get("chains", "").replace(
          ";", ",").split(",") if c.strip())
      key = (row["file"], fields["chains"])
    else:
      try:
        number = int(row["residue_number"])
      except ValueError:
        bad(line, f"residue_number {row['residue_number']!r} is not an integer")
        continue
      fields.update(chain=row["chain"], residue_number=number,
                    insertion_code=row.get("insertion_code", ""))
      key = (row["file"], row["chain"], number, fields["insertion_code"])
    new = Row(**fields)
    if key in seen:
      old = seen[key]
      if (old.label, old.split, old.group) != (new.label, new.split, new.group):
        raise DataError(f"{path}: line {line}: duplicates line {old.line} ({_describe(key)}) "
                        f"with a different label, split or group")
      skipped.append(f"line {line}: same as line {old.line} ({_describe(key)}); read once")
      continue
    seen[key] = new
    rows.append(new)
  if not rows:
    raise DataError(f"{path}: no usable rows ({len(skipped)} skipped)")
  if kind != "regression":
    present = sorted({int(r.label) for r in rows})
    if len(present) < 2:
      raise DataError(f"{path}: label column {column!r} has one class only "
                      f"({class_list[present[0]]!r}): nothing to classify")
  table = Table(str(path), level, column, kind, tuple(class_list), choice, tuple(rows),
                "split" in header, "group" in header, tuple(skipped))
  _check_units(table)
  return table


def _describe(key: tuple) -> str:
  if len(key) == 2:
    return f"file {key[0]}" + (f" chains {key[1]}" if key[1] else "")
  return f"file {key[0]} chain {key[1]!r} residue {key[2]}{key[3]}"


def _check_units(table: Table) -> None:
  """Residue tables: one split and one group per file."""
  if table.level != "residue":
    return
  first: dict[str, Row] = {}
  for row in table.rows:
    ref = first.setdefault(row.file, row)
    for field in ("split", "group"):
      if getattr(row, field) != getattr(ref, field):
        raise DataError(f"{table.path}: line {row.line}: {field} {getattr(row, field)!r} of "
                        f"{row.file} differs from line {ref.line} ({getattr(ref, field)!r}); "
                        "the residues of one structure are one example")


def parse_fractions(text: str) -> tuple[float, float, float]:
  """"0.8,0.1,0.1" -> (0.8, 0.1, 0.1); three non-negative numbers summing to 1."""
  try:
    parts = tuple(float(p) for p in str(text).split(","))
  except ValueError:
    parts = ()
  if len(parts) != 3 or min(parts) < 0 or abs(sum(parts) - 1.0) > 1e-6 or parts[0] <= 0:
    raise ConfigError(f"task.fractions={text!r}: expected three fractions train,val,test "
                      "summing to 1, e.g. 0.8,0.1,0.1")
  return parts  # type: ignore[return-value]


def split_units(table: Table, seed: int = 0, fractions: Sequence[float] = (0.8, 0.1, 0.1),
                how: str = "auto") -> tuple[dict[str, str], str]:
  """Which split each unit goes to. -> ({unit: split}, description).

  A unit is a row's group (`group` column) or else its structure file: all rows of a unit go
  to one split. how: "auto" (the `split` column when present, else random by group when
  there is a group column, else random by file), "column", "group" or "file". Random splits
  are seeded and each split gets at least one unit.
  """
  if how not in ("auto", "column", "group", "file"):
    raise ConfigError(f"task.split={how!r}: expected auto, column, group or file")
  if how == "auto":
    how = "column" if table.has_split else "group" if table.has_group else "file"
  if how == "column":
    if not table.has_split:
      raise DataError(f"{table.path}: line 1: task.split=column but there is no 'split' column")
    return {_unit_key(r): r.split for r in table.rows}, "the 'split' column"
  if how == "group" and not table.has_group:
    raise DataError(f"{table.path}: line 1: task.split=group but there is no 'group' column")
  by = "group" if how == "group" else "file"
  units = list(dict.fromkeys(r.group if by == "group" else r.file for r in table.rows))
  if len(units) < 3:
    raise DataError(f"{table.path}: {len(units)} distinct {by}(s): a random split needs at "
                    "least 3 (or give a 'split' column)")
  order = np.random.default_rng(seed).permutation(len(units))
  n_val = max(1, int(round(fractions[1] * len(units))))
  n_test = max(1, int(round(fractions[2] * len(units))))
  n_train = len(units) - n_val - n_test
  if n_train < 1:
    raise DataError(f"{table.path}: {len(units)} {by}s are too few for fractions {fractions}")
  assign = {}
  for rank, i in enumerate(order):
    assign[units[i]] = ("train" if rank < n_train else "val" if rank < n_train + n_val
                        else "test")
  out = {}
  for r in table.rows:
    out[_unit_key(r)] = assign[r.group if by == "group" else r.file]
  return out, f"random by {by} (seed {seed}, fractions {tuple(fractions)})"


def _unit_key(row: Row) -> tuple:
  return (row.file, row.chains)


def row_split(row: Row, assignment: dict) -> str:
  return assignment[_unit_key(row)]


def residue_index(protein) -> dict[tuple[str, int, str], int]:
  """(chain, residue number, insertion code) -> residue index of a Protein."""
  return {(str(c), int(n), str(i).strip()): k for k, (c, n, i) in enumerate(
      zip(protein.chain_id, protein.residue_number, protein.insertion_code))}


def check_residues(table: Table, rows: Sequence[Row], protein, on_bad_row: str = "error"
                   ) -> tuple[np.ndarray, np.ndarray, list[str]]:
  """Matches the residue rows of one structure to its residues.

  -> (labels [L] float32, mask [L] bool (True: labelled), skipped ["line N: cause"]).
  A chain or residue that is not in the structure raises DataError naming the CSV line
  (under on_bad_row="skip": listed in `skipped`).
  """
  index = residue_index(protein)
  chains = list(dict.fromkeys(str(c) for c in protein.chain_id))
  labels = np.zeros(len(protein), np.float32)
  mask = np.zeros(len(protein), bool)
  skipped = []
  for row in rows:
    key = (row.chain, row.residue_number, row.insertion_code)
    if key in index:
      labels[index[key]] = row.label
      mask[index[key]] = True
      continue
    if row.chain not in chains:
      cause = (f"chain {row.chain!r} is not in {row.file} (chains "
               f"{', '.join(repr(c) for c in chains)})")
    else:
      numbers = protein.residue_number[protein.chain_id == row.chain]
      cause = (f"residue {row.chain} {row.residue_number}{row.insertion_code} is not in "
               f"{row.file} (chain {row.chain} has residues {int(numbers.min())}.."
               f"{int(numbers.max())}"
               + (f"; {protein.n_dropped} residue(s) without CA were dropped"
                  if protein.n_dropped else "") + ")")
    if on_bad_row == "skip":
      skipped.append(f"line {row.line}: {cause}")
    else:
      raise DataError(f"{table.path}: line {row.line}: {cause}")
  return labels, mask, skipped
