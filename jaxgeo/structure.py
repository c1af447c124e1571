"""Protein structures: PDB / mmCIF (optionally gzipped) files -> `Protein`.

mdtraj's record parsers read the files (`mdtraj.formats.pdb.pdbstructure.Atom` for PDB
lines a fixed-column parse rejects, `PdbxReader` for mmCIF); residues are assembled here so
that insertion codes, alternate locations and modified residues are handled the same way for
both formats:

- Only the first model is read.
- Residues are runs of consecutive atom records with the same (chain, number, insertion
  code). A key seen again after other residues, after a TER record (mmCIF: after a change of
  `label_asym_id`), or with another residue name and no alternate-location indicator is a
  new residue: a homodimer written twice with the same numbering keeps both copies, a file
  that reuses residue numbers keeps every residue.
- Blank chain ids: where TER records split blank-chain protein residues into several chains,
  they are named, in file order, by the first unused ids of "A".."Z", "0".."9", "a".."z",
  then "10", "11", ... (ids used by other chains in the file are skipped); blank-chain
  ligands take the id of the chain before them. A single blank chain keeps the id "".
- Duplicated atom lines (same residue, atom name, alternate location and coordinates): the
  first is kept, the others are counted (`Protein.n_duplicate_atoms`) and one warning per
  file is logged.
- Truly ambiguous files are refused with a StructureError naming the file and line: an
  atom of a residue repeated with other coordinates (a reused number or an unlabelled
  alternate location), a residue name change that carries an alternate-location indicator
  where the residue has none, two residues whose CAs coincide (a duplicated residue).
- Coordinates must be finite and, in PDB files, within what the columns hold
  (-999.999..9999.999); other sources (mmCIF, tables) within +-1e5 A. Anything else is a
  StructureError naming the file, line (mmCIF: atom_site row) and atom.
- Alternate locations: for each atom the location with the highest occupancy is kept, ties
  broken by the alphabetically first indicator, so the choice is deterministic. Where the
  alternatives are different residues (microheterogeneity), the residue of the best CA wins.
- Residues: the 20 standard ones, modified residues mapped to their parent
  (`residues.MODIFIED_TO_PARENT`, e.g. MSE -> M) and any other ATOM-record residue with a CA
  as unknown (X). Residues without a CA are dropped and counted (`Protein.n_dropped`).
- Non-water HETATM groups that are not residues are kept apart as `Ligand`s with elements
  (atom names may repeat within a ligand).
- Hydrogens are ignored.
- Residue numbers beyond 9999 in hybrid-36 ("A000" = 10000) are decoded; other
  non-decimal numbers are a StructureError.
"""
from __future__ import annotations

import dataclasses
import gzip
import io
import itertools
import logging
import os
import warnings
from collections.abc import Iterable, Sequence

import numpy as np

from jaxgeo import residues
from jaxgeo.errors import StructureError

# Virtual CB from the backbone (ideal geometry; the constants of ProteinMPNN / trRosetta).
_CB_A, _CB_B, _CB_C = -0.58273431, 0.56802827, -0.54067466

# What PDB's 8-column coordinate fields hold (%8.3f), and a bound for other sources.
_PDB_MIN, _PDB_MAX = -999.999, 9999.999
_MAX_ABS_COORDINATE = 1e5
# Ids given, in this order, to blank-id chains that TER records separate.
_CHAIN_ID_POOL = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefghijklmnopqrstuvwxyz"

_log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, eq=False)
class Ligand:
  """A non-water HETATM group (small molecule, ion, cofactor).

  Attributes:
    name: residue name in the file, e.g. "HEM".
    chain_id: chain identifier.
    residue_number: residue number in the file.
    atom_names: [A] atom names.
    element: [A] element symbols (e.g. "C", "Fe").
    positions: [A, 3] float32 coordinates in Angstrom.
  """
  name: str
  chain_id: str
  residue_number: int
  atom_names: np.ndarray
  element: np.ndarray
  positions: np.ndarray


@dataclasses.dataclass(frozen=True, eq=False)
class Protein:
  """Per-residue arrays of one or more protein chains (L residues).

  Attributes:
    aatype: [L] int32, 0..19 standard residues (`residues.RESTYPES` order), 20 unknown.
    sequence: one-letter sequence, length L ("X" for unknown).
    chain_id: [L] chain identifiers (str).
    residue_number: [L] int32 residue numbers as in the file.
    insertion_code: [L] insertion codes ("" when none).
    backbone: [L, 4, 3] float32 N, CA, C, O coordinates in Angstrom (0 where missing).
    backbone_mask: [L, 4] bool.
    cb: [L, 3] float32, the real CB where present, else a virtual CB from N, CA, C
      (CA itself when N or C is missing too).
    atom_positions: [L, 37, 3] float32 heavy atoms in atom37 order (`residues.ATOM_TYPES`).
    atom_mask: [L, 37] bool.
    ligands: non-water HETATM groups.
    source: file name it was read from.
    n_dropped: residues without a CA that were dropped while reading.
    n_duplicate_atoms: duplicated atom lines that were ignored while reading.
  """
  aatype: np.ndarray
  sequence: str
  chain_id: np.ndarray
  residue_number: np.ndarray
  insertion_code: np.ndarray
  backbone: np.ndarray
  backbone_mask: np.ndarray
  cb: np.ndarray
  atom_positions: np.ndarray
  atom_mask: np.ndarray
  ligands: tuple[Ligand, ...] = ()
  source: str = ""
  n_dropped: int = 0
  n_duplicate_atoms: int = 0

  def __len__(self) -> int:
    return int(self.aatype.shape[0])

  @property
  def ca(self) -> np.ndarray:
    """[L, 3] CA coordinates."""
    return self.backbone[:, 1]

  @property
  def chains(self) -> tuple[str, ...]:
    """Chain identifiers in order of first appearance."""
    return tuple(dict.fromkeys(self.chain_id.tolist()))

  def chain_sequences(self) -> dict[str, str]:
    """One-letter sequence of each chain, in chain order."""
    return {c: "".join(np.array(list(self.sequence))[self.chain_id == c]) for c in self.chains}

  def take(self, index: np.ndarray) -> "Protein":
    """The residues at `index` ([K] int or [L] bool), ligands kept."""
    index = np.asarray(index)
    if index.dtype == bool:
      index = np.flatnonzero(index)
    seq = np.array(list(self.sequence), dtype="<U1")[index] if len(self) else np.array([], "<U1")
    return dataclasses.replace(
        self, aatype=self.aatype[index], sequence="".join(seq.tolist()),
        chain_id=self.chain_id[index], residue_number=self.residue_number[index],
        insertion_code=self.insertion_code[index], backbone=self.backbone[index],
        backbone_mask=self.backbone_mask[index], cb=self.cb[index],
        atom_positions=self.atom_positions[index], atom_mask=self.atom_mask[index])

  def select_chains(self, chains: str | Sequence[str]) -> "Protein":
    """The residues (and ligands) of the given chains, in file order.

    Raises StructureError naming the file and the available chains for an unknown id.
    """
    wanted = _as_chain_list(chains, self.chains)
    unknown = [c for c in wanted if c not in self.chains]
    if unknown:
      raise StructureError(
          f"{self.source}: chain(s) {', '.join(map(repr, unknown))} not found; "
          f"the file has protein chains {', '.join(map(repr, self.chains))}")
    selected = self.take(np.isin(self.chain_id, wanted))
    ligands = tuple(lig for lig in self.ligands if lig.chain_id in wanted)
    return dataclasses.replace(selected, ligands=ligands)


def _as_chain_list(chains: str | Sequence[str], available: Sequence[str]) -> list[str]:
  """"A,B" and ["A", "B"] are chains A and B; so is "AB" unless a chain is named "AB"."""
  if isinstance(chains, str):
    if "," in chains:
      return [c.strip() for c in chains.split(",") if c.strip()]
    return [chains] if chains in available or len(chains) <= 1 else list(chains)
  return list(chains)


def concatenate(proteins: Sequence[Protein], source: str | None = None) -> Protein:
  """Joins proteins residue-wise (e.g. receptor + ligand of a complex)."""
  if not proteins:
    raise ValueError("concatenate needs at least one Protein")
  cat = lambda name: np.concatenate([getattr(p, name) for p in proteins], axis=0)
  return Protein(
      aatype=cat("aatype"), sequence="".join(p.sequence for p in proteins),
      chain_id=cat("chain_id"), residue_number=cat("residue_number"),
      insertion_code=cat("insertion_code"), backbone=cat("backbone"),
      backbone_mask=cat("backbone_mask"), cb=cat("cb"), atom_positions=cat("atom_positions"),
      atom_mask=cat("atom_mask"), ligands=tuple(l for p in proteins for l in p.ligands),
      source=source if source is not None else "+".join(p.source for p in proteins),
      n_dropped=sum(p.n_dropped for p in proteins),
      n_duplicate_atoms=sum(p.n_duplicate_atoms for p in proteins))


def virtual_cb(n: np.ndarray, ca: np.ndarray, c: np.ndarray) -> np.ndarray:
  """Ideal CB position from backbone atoms, each [..., 3] -> [..., 3]."""
  b = ca - n
  c_ = c - ca
  a = np.cross(b, c_)
  return _CB_A * a + _CB_B * b + _CB_C * c_ + ca


# ---------------------------------------------------------------------------------------
# Reading files.


@dataclasses.dataclass
class AtomRecord:
  """One atom as read from a file (PDB line, mmCIF row, ATOM3D table row).

  `line` is where the atom is in its source (PDB line or mmCIF atom_site row, 1-based; 0
  when unknown: the record's index names it then); `segment` counts the TER records before
  it (mmCIF: changes of label_asym_id); a residue never spans two segments.
  """
  hetero: bool
  name: str
  altloc: str
  resname: str
  chain: str
  resnum: int
  icode: str
  position: tuple[float, float, float]
  occupancy: float
  element: str
  line: int = 0
  segment: int = 0


def _read_text(path: str) -> str:
  from jaxgeo.io import read_bytes_maybe_gzip
  raw = read_bytes_maybe_gzip(path, StructureError)
  if not raw.strip():
    raise StructureError(f"{path}: empty file")
  if b"\x00" in raw[:4096]:
    raise StructureError(f"{path}: not a text structure file (binary content)")
  return raw.decode("utf-8", errors="replace")


def _structure_format(path: str, text: str) -> str:
  name = path.lower().removesuffix(".gz")
  if name.endswith((".cif", ".mmcif")):
    return "cif"
  if name.endswith((".pdb", ".ent")):
    return "pdb"
  # Guess from content for other extensions (e.g. "*.pdb.2.gz" of DB5.5).
  head = text.lstrip()[:5].lower()
  return "cif" if head.startswith("data_") else "pdb"


def _pdb_records(path: str, text: str) -> list[AtomRecord]:
  with warnings.catch_warnings():
    # mdtraj warns once per atom whose charge columns hold junk (common in docking decoys).
    warnings.filterwarnings("ignore", message="Could not parse charge")
    return _parse_pdb_lines(path, text)


def _guess_element(atom_name_with_spaces: str) -> str:
  """Element from a PDB atom name when the element columns are blank (mdtraj's rule)."""
  name = atom_name_with_spaces.strip()
  if len(name) == 4 and name[0] == "H":
    return "H"
  return atom_name_with_spaces[0:2].strip().lstrip("0123456789")[:2]


def _residue_number(field: str) -> int:
  """PDB columns 23-26: a decimal number, or hybrid-36 beyond 9999 ("A000" = 10000,
  "a000" follows "ZZZZ"). Raises ValueError for anything else."""
  text = field.strip()
  try:
    return int(text)
  except ValueError:
    pass
  digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
  if len(text) == 4 and text[0].isalpha() and text.isascii():
    for alphabet, offset in ((digits, 10), (digits.lower(), 36)):
      if all(ch in alphabet for ch in text):
        return int(text, 36) - offset * 36**3 + 10**4
  raise ValueError(f"residue number {field!r} is neither decimal nor hybrid-36")


def _fast_record(line: str, line_number: int = 0, segment: int = 0) -> AtomRecord:
  """Fixed-column parse of a standard ATOM/HETATM line (raises ValueError otherwise)."""
  resname = line[17:20].strip()
  if line[20] != " ":
    resname += line[20]
  occupancy = line[54:60].strip()
  element = line[76:78].strip() if len(line) >= 78 else ""
  if not element or not element.isalpha():
    element = _guess_element(line[12:16])
  return AtomRecord(
      hetero=line[:6] == "HETATM", name=line[12:16].strip(), altloc=line[16].strip(),
      resname=resname, chain=line[21].strip(), resnum=int(line[22:26]),
      icode=line[26].strip(),
      position=(float(line[30:38]), float(line[38:46]), float(line[46:54])),
      occupancy=float(occupancy) if occupancy else 1.0, element=element.capitalize(),
      line=line_number, segment=segment)


def _mdtraj_record(line: str, line_number: int = 0, segment: int = 0) -> AtomRecord:
  """mdtraj's parser, for the lines the fixed-column parse rejects (hybrid-36 numbering,
  junk occupancy, odd spacing). Residue numbers are decoded here (`_residue_number`):
  without its whole-file context mdtraj reads a non-decimal number as 0."""
  from mdtraj.formats.pdb.pdbstructure import Atom
  resnum = _residue_number(line[22:26])
  atom = Atom(line)
  (altloc, loc), = atom.locations.items()
  element = atom.element.symbol if atom.element is not None else atom.element_symbol
  return AtomRecord(
      hetero=atom.record_name == "HETATM", name=atom.name_with_spaces.strip(),
      altloc=altloc.strip(), resname=atom.residue_name, chain=atom.chain_id.strip(),
      resnum=resnum, icode=atom.insertion_code.strip(),
      position=tuple(float(v) for v in loc.position), occupancy=float(loc.occupancy),
      element=(element or "").capitalize(), line=line_number, segment=segment)


def _residue_label(record: AtomRecord) -> str:
  """e.g. "ALA A19", "GLY 7A" (blank chain, insertion code A)."""
  return f"{record.resname} {record.chain}{record.resnum}{record.icode}"


def _coordinate_error(path: str, where: str, record: AtomRecord, low: float,
                      high: float) -> StructureError:
  bad = next(v for v in record.position if not low <= v <= high)
  cause = "not a finite number" if not np.isfinite(bad) else f"outside {low:.3f}..{high:.3f}"
  return StructureError(
      f"{path}: {where}: atom {record.name!r} of residue {_residue_label(record)}: "
      f"coordinate {bad!r} is {cause}")


def _parse_pdb_lines(path: str, text: str) -> list[AtomRecord]:
  records = []
  segment = 0
  for line_number, line in enumerate(text.splitlines(), start=1):
    if line.startswith(("ENDMDL", "END")) and not line.startswith("ENDROOT") and records:
      break  # first model only
    if line.startswith("TER"):
      segment += 1
      continue
    if not line.startswith(("ATOM  ", "HETATM")):
      continue
    if len(line) < 54:
      raise StructureError(
          f"{path}: truncated atom record at line {line_number}: {line.rstrip()!r}")
    try:
      record = _fast_record(line, line_number, segment)
    except ValueError:
      try:
        record = _mdtraj_record(line, line_number, segment)
      except (ValueError, IndexError, KeyError) as e:
        raise StructureError(
            f"{path}: malformed atom record at line {line_number} ({e})") from None
    x, y, z = record.position
    if not (_PDB_MIN <= x <= _PDB_MAX and _PDB_MIN <= y <= _PDB_MAX
            and _PDB_MIN <= z <= _PDB_MAX):
      raise _coordinate_error(path, f"line {line_number}", record, _PDB_MIN, _PDB_MAX)
    records.append(record)
  return records


def _cif_records(path: str, text: str) -> list[AtomRecord]:
  from mdtraj.formats.pdbx.PdbxReader import PdbxReader
  data = []
  try:
    PdbxReader(io.StringIO(text)).read(data)
  except Exception as e:  # PdbxReader raises its own error types and plain ones.
    raise StructureError(f"{path}: malformed mmCIF ({type(e).__name__}: {e})") from None
  if not data or data[0].getObj("atom_site") is None:
    raise StructureError(f"{path}: no atom_site table: not an mmCIF structure file")
  table = data[0].getObj("atom_site")
  columns = table.getAttributeList()

  def column(*names, required=True):
    for name in names:
      if name in columns:
        return columns.index(name)
    if required:
      raise StructureError(f"{path}: atom_site lacks column {names[0]!r}")
    return None

  c_group = column("group_PDB")
  c_name = column("auth_atom_id", "label_atom_id")
  c_alt = column("label_alt_id", required=False)
  c_res = column("auth_comp_id", "label_comp_id")
  c_chain = column("auth_asym_id", "label_asym_id")
  c_label_chain = column("label_asym_id", required=False)
  c_num = column("auth_seq_id", "label_seq_id")
  c_icode = column("pdbx_PDB_ins_code", required=False)
  c_x, c_y, c_z = column("Cartn_x"), column("Cartn_y"), column("Cartn_z")
  c_occ = column("occupancy", required=False)
  c_el = column("type_symbol", required=False)
  c_model = column("pdbx_PDB_model_num", required=False)
  blank = lambda v: "" if v in ("?", ".") else v

  records = []
  first_model = None
  segment, label_chain = 0, None
  n_rows = table.getRowCount()
  if n_rows and len(table.getRow(n_rows - 1)) != len(columns):  # values missing: all shifted
    raise StructureError(f"{path}: truncated atom_site row {n_rows}")
  for i in range(n_rows):
    row = table.getRow(i)
    if len(row) != len(columns):
      raise StructureError(f"{path}: truncated atom_site row {i + 1}")
    if c_model is not None:
      if first_model is None:
        first_model = row[c_model]
      elif row[c_model] != first_model:
        later = (table.getRow(k)[c_model] for k in range(i, n_rows))
        if not row[c_model].isdigit() or first_model in later:
          raise StructureError(
              f"{path}: malformed atom_site row {i + 1} (model number {row[c_model]!r} "
              f"inside model {first_model!r})")
        break
    if c_label_chain is not None:  # a new entity instance: as a TER record in PDB files
      if label_chain is not None and row[c_label_chain] != label_chain:
        segment += 1
      label_chain = row[c_label_chain]
    chain = blank(row[c_chain])
    if not chain and c_label_chain is not None:
      chain = blank(row[c_label_chain])
    try:
      record = AtomRecord(
          hetero=row[c_group] == "HETATM", name=row[c_name].strip('"'),
          altloc=blank(row[c_alt]) if c_alt is not None else "", resname=row[c_res],
          chain=chain, resnum=int(row[c_num]),
          icode=blank(row[c_icode]) if c_icode is not None else "",
          position=(float(row[c_x]), float(row[c_y]), float(row[c_z])),
          occupancy=float(row[c_occ]) if c_occ is not None and blank(row[c_occ]) else 1.0,
          element=blank(row[c_el]) if c_el is not None else "", line=i + 1, segment=segment)
    except ValueError as e:
      raise StructureError(f"{path}: malformed atom_site row {i + 1} ({e})") from None
    if not all(-_MAX_ABS_COORDINATE <= v <= _MAX_ABS_COORDINATE for v in record.position):
      raise _coordinate_error(path, f"atom_site row {i + 1}", record, -_MAX_ABS_COORDINATE,
                              _MAX_ABS_COORDINATE)
    records.append(record)
  return records


def _best_altloc(records: Sequence[AtomRecord]) -> AtomRecord:
  if len(records) == 1:
    return records[0]
  return min(records, key=lambda r: (-r.occupancy, r.altloc))


def _is_hydrogen(record: AtomRecord) -> bool:
  element = record.element.strip().upper()
  if element:
    return element in ("H", "D")
  return record.name.lstrip("0123456789").startswith(("H", "D"))


def _split_residues(path: str, records: Sequence[AtomRecord], unit: str
                    ) -> tuple[list[list[AtomRecord]], list[AtomRecord]]:
  """Atom records in file order -> residue groups (see the module docstring), and the
  duplicated atom records that were left out.

  Raises StructureError for an alternate location that makes a residue name change
  ambiguous.
  """
  groups: list[list[AtomRecord]] = []
  duplicates: list[AtomRecord] = []
  key = group = names = seen = None
  has_altloc = False
  for record in records:
    this = (record.segment, record.chain, record.resnum, record.icode)
    if this == key and record.resname not in names:
      if not record.altloc:
        key = None  # another residue under the same number
      elif has_altloc:
        names.add(record.resname)  # microheterogeneity: alternative residues
      else:
        raise StructureError(
            f"{path}: {unit} {record.line}: residue {_residue_label(record)} "
            f"follows {sorted(names)[0]} under the same number with alternate location "
            f"{record.altloc!r} where that residue has none: ambiguous (microheterogeneity "
            "or a reused residue number)")
    if this != key:
      key, group, names, seen, has_altloc = this, [], {record.resname}, {}, False
      groups.append(group)
    atom = (record.name, record.altloc)
    first = seen.get(atom)
    if first is None:
      seen[atom] = record
    elif first.position == record.position:
      duplicates.append(record)
      continue
    group.append(record)
    has_altloc = has_altloc or bool(record.altloc)
  return groups, duplicates


def _repeated_atom_error(path: str, unit: str, first: AtomRecord,
                         again: AtomRecord) -> StructureError:
  return StructureError(
      f"{path}: {unit} {again.line}: atom {again.name!r} of residue {_residue_label(again)} "
      f"appears again with other coordinates (first at {unit} {first.line}): ambiguous "
      "(a reused residue number or an unlabelled alternate location)")


def _check_coordinates(path: str, unit: str, records: Sequence[AtomRecord],
                       arrays: Sequence[np.ndarray]) -> None:
  """Raises StructureError naming the first record whose coordinates are not finite or
  beyond +-_MAX_ABS_COORDINATE, when any of the kept `arrays` holds such a value (the
  parsers check every record; this covers other readers, e.g. ATOM3D tables)."""
  bound = _MAX_ABS_COORDINATE
  if all(np.all(np.abs(a) <= bound) for a in arrays):  # NaN fails the comparison too
    return
  for record in records:
    if not all(-bound <= v <= bound for v in record.position):
      raise _coordinate_error(path, f"{unit} {record.line}", record, -bound, bound)
  raise StructureError(f"{path}: coordinates beyond +-{bound:g} A")


def _blank_chain_names(residue_chains: Sequence[str], residue_segments: Sequence[int],
                       records: Iterable[AtomRecord]) -> dict[int, str]:
  """segment -> chain id for blank-id protein chains that TER records separate ({} when
  there is at most one such chain); ids used by the records' chains are skipped."""
  segments = list(dict.fromkeys(s for c, s in zip(residue_chains, residue_segments) if not c))
  if len(segments) < 2:
    return {}
  used = {r.chain for r in records}
  pool = itertools.chain(_CHAIN_ID_POOL, (str(i) for i in itertools.count(10)))
  free = (c for c in pool if c not in used)
  return {segment: next(free) for segment in segments}


def protein_from_records(path: str, records: list[AtomRecord],
                         unit: str = "atom record") -> Protein:
  """Groups atom records into residues and ligands (see the module docstring).

  This is load_protein's assembly step, public so that other readers (ATOM3D tables) build
  Proteins the same way. `path` names the source in error messages, `unit` what
  `AtomRecord.line` counts ("line", "atom_site row"; records whose line is 0 are numbered
  1.. in order).
  """
  if records and not records[0].line:
    records = [dataclasses.replace(r, line=i + 1) for i, r in enumerate(records)]
  groups, duplicates = _split_residues(path, records, unit)

  aatypes, letters, chain_ids, numbers, icodes, segments = [], [], [], [], [], []
  positions, masks, ligands, ligand_segments, ca_lines = [], [], [], [], {}
  n_dropped = 0
  for group in groups:
    chain, resnum, icode = group[0].chain, group[0].resnum, group[0].icode
    names = {r.resname for r in group}
    if len(names) > 1:  # microheterogeneity: keep the residue of the best CA (or atom)
      cas = [r for r in group if r.name == "CA"] or group
      keep = _best_altloc(cas).resname
      group = [r for r in group if r.resname == keep]
    resname = group[0].resname.strip().upper()
    if resname in residues.WATER_NAMES:
      continue
    hetero = all(r.hetero for r in group)
    heavy = [r for r in group if not _is_hydrogen(r)]
    is_residue = residues.is_known_residue(resname) or (
        not hetero and resname not in residues.NUCLEIC_NAMES)
    if not is_residue:
      if hetero and heavy:
        # Ligand atom names may repeat: the n-th atom of a name in one alternate location
        # is the same atom as the n-th of that name in another.
        atoms: dict[tuple[str, int], list[AtomRecord]] = {}
        counts: dict[tuple[str, str], int] = {}
        for r in heavy:
          n = counts.get((r.name, r.altloc), 0)
          counts[(r.name, r.altloc)] = n + 1
          atoms.setdefault((r.name, n), []).append(r)
        chosen = [_best_altloc(a) for a in atoms.values()]
        ligands.append(Ligand(
            name=resname, chain_id=chain, residue_number=resnum,
            atom_names=np.array([r.name for r in chosen]),
            element=np.array([r.element or r.name[:1] for r in chosen]),
            positions=np.array([r.position for r in chosen], dtype=np.float32)))
        ligand_segments.append(group[0].segment)
      continue
    atoms = {}
    for r in heavy:
      alternatives = atoms.setdefault(r.name, [])
      for other in alternatives:
        if other.altloc == r.altloc:
          raise _repeated_atom_error(path, unit, other, r)
      alternatives.append(r)
    if "CA" not in atoms:
      n_dropped += 1
      continue
    aatype, letter = residues.residue_to_aatype(resname)
    pos = np.zeros((residues.NUM_ATOM_TYPES, 3), dtype=np.float32)
    mask = np.zeros((residues.NUM_ATOM_TYPES,), dtype=bool)
    for name, alternatives in atoms.items():
      name = residues.ATOM_NAME_ALIASES.get(name, name)
      slot = residues.ATOM_ORDER.get(name)
      if slot is None or (aatype == residues.UNKNOWN and name not in ("N", "CA", "C", "O", "CB")):
        continue
      pos[slot] = _best_altloc(alternatives).position
      mask[slot] = True
    ca = _best_altloc(atoms["CA"])  # a residue is a node at its CA: two at one place is a copy
    if ca.position in ca_lines:
      first = ca_lines[ca.position]
      raise StructureError(
          f"{path}: {unit} {ca.line}: the CA of residue {_residue_label(ca)} is where the CA "
          f"of residue {_residue_label(first)} ({unit} {first.line}) is: a duplicated residue")
    ca_lines[ca.position] = ca
    aatypes.append(aatype)
    letters.append(letter)
    chain_ids.append(chain)
    numbers.append(resnum)
    icodes.append(icode)
    segments.append(group[0].segment)
    positions.append(pos)
    masks.append(mask)

  if not aatypes:
    detail = f" ({n_dropped} residue(s) without CA)" if n_dropped else ""
    raise StructureError(f"{path}: no protein residues{detail}")

  renamed = _blank_chain_names(chain_ids, segments, records)
  if renamed:
    chain_ids = [renamed[s] if not c else c for c, s in zip(chain_ids, segments)]
    order = sorted(renamed)
    for i, (ligand, s) in enumerate(zip(ligands, ligand_segments)):
      if not ligand.chain_id:
        before = [t for t in order if t <= s]
        ligands[i] = dataclasses.replace(
            ligand, chain_id=renamed[before[-1] if before else order[0]])
  if duplicates:
    first = duplicates[0]
    _log.warning(
        "%s: %d duplicated atom line(s) ignored, the first of each kept (first at %s %d: "
        "atom %r of residue %s)", path, len(duplicates), unit, first.line, first.name,
        _residue_label(first))

  atom_positions = np.stack(positions)
  atom_mask = np.stack(masks)
  _check_coordinates(path, unit, records, [atom_positions] + [l.positions for l in ligands])
  backbone = atom_positions[:, residues.BACKBONE_INDICES]
  backbone_mask = atom_mask[:, residues.BACKBONE_INDICES]
  n, ca, c = backbone[:, 0], backbone[:, 1], backbone[:, 2]
  cb_slot = residues.ATOM_ORDER["CB"]
  has_frame = backbone_mask[:, 0] & backbone_mask[:, 2]
  cb = np.where(has_frame[:, None], virtual_cb(n, ca, c), ca)
  cb = np.where(atom_mask[:, cb_slot, None], atom_positions[:, cb_slot], cb).astype(np.float32)
  return Protein(
      aatype=np.array(aatypes, dtype=np.int32), sequence="".join(letters),
      chain_id=np.array(chain_ids, dtype=object).astype(str),
      residue_number=np.array(numbers, dtype=np.int32),
      insertion_code=np.array(icodes, dtype=object).astype(str), backbone=backbone,
      backbone_mask=backbone_mask, cb=cb, atom_positions=atom_positions, atom_mask=atom_mask,
      ligands=tuple(ligands), source=os.path.basename(path), n_dropped=n_dropped,
      n_duplicate_atoms=len(duplicates))


def load_protein(path: str | os.PathLike, chains: str | Sequence[str] | None = None) -> Protein:
  """Reads a PDB or mmCIF file (optionally gzipped) into a Protein.

  Args:
    path: `.pdb`, `.ent`, `.cif`, `.mmcif`, each optionally `.gz`; other names are sniffed.
    chains: chain id(s) to keep ("A", "AB", "A,B" or ["A", "B"]); None keeps all.

  Raises:
    StructureError: the file is missing, empty, truncated, not a structure, has no protein
      residues, non-finite or out-of-range coordinates, an ambiguous residue (see the module
      docstring), or lacks a requested chain. The message names the file and the cause.
  """
  path = os.fspath(path)
  text = _read_text(path)
  fmt = _structure_format(path, text)
  if fmt == "cif":
    records, unit = _cif_records(path, text), "atom_site row"
  else:
    records, unit = _pdb_records(path, text), "line"
  if not records:
    raise StructureError(f"{path}: no ATOM/HETATM records: not a PDB or mmCIF structure")
  protein = protein_from_records(path, records, unit)
  if chains is not None:
    protein = protein.select_chains(chains)
  return protein


# ---------------------------------------------------------------------------------------
# Writing files.


def _element_of(atom_name: str) -> str:
  return atom_name[:1]


def to_pdb_string(protein: Protein) -> str:
  """PDB text of a Protein: its atom37 heavy atoms as ATOM records, ligands as HETATM."""
  from jaxgeo.residues import ATOM_TYPES, RESTYPE_1TO3
  lines, serial = [], 1
  previous_chain = None
  for i in range(len(protein)):
    chain = protein.chain_id[i]
    if previous_chain is not None and chain != previous_chain:
      lines.append("TER")
    previous_chain = chain
    resname = RESTYPE_1TO3.get(protein.sequence[i], "UNK")
    for slot in np.flatnonzero(protein.atom_mask[i]):
      name = ATOM_TYPES[slot]
      x, y, z = protein.atom_positions[i, slot]
      lines.append(
          f"ATOM  {serial % 100000:5d} {name if len(name) == 4 else ' ' + name:<4s} "
          f"{resname:>3s} {chain[:1]:1s}{protein.residue_number[i]:4d}"
          f"{(protein.insertion_code[i] or ' ')[:1]:1s}   {x:8.3f}{y:8.3f}{z:8.3f}"
          f"{1.0:6.2f}{0.0:6.2f}          {_element_of(name):>2s}")
      serial += 1
  if len(protein):
    lines.append("TER")
  for ligand in protein.ligands:
    for name, element, (x, y, z) in zip(ligand.atom_names, ligand.element, ligand.positions):
      lines.append(
          f"HETATM{serial % 100000:5d} {name if len(name) == 4 else ' ' + name:<4s} "
          f"{ligand.name[:3]:>3s} {ligand.chain_id[:1]:1s}{ligand.residue_number:4d}    "
          f"{x:8.3f}{y:8.3f}{z:8.3f}{1.0:6.2f}{0.0:6.2f}          {element[:2]:>2s}")
      serial += 1
  lines.append("END")
  return "\n".join(lines) + "\n"


def write_pdb(protein: Protein, path: str | os.PathLike) -> None:
  """Writes a Protein as PDB (gzipped when the name ends in .gz), atomically."""
  from jaxgeo.io import atomic_write_bytes
  data = to_pdb_string(protein).encode()
  if os.fspath(path).endswith(".gz"):
    data = gzip.compress(data, mtime=0)
  atomic_write_bytes(path, data)
