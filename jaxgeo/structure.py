"""Protein structures: PDB / mmCIF (optionally gzipped) files -> `Protein`.

mdtraj's record parsers read the files (`mdtraj.formats.pdb.pdbstructure.Atom` for PDB
lines, `PdbxReader` for mmCIF); residues are assembled here so that insertion codes,
alternate locations and modified residues are handled the same way for both formats:

- Only the first model is read.
- Alternate locations: for each atom the location with the highest occupancy is kept, ties
  broken by the alphabetically first indicator, so the choice is deterministic. Where the
  alternatives are different residues (microheterogeneity), the residue of the best CA wins.
- Residues: the 20 standard ones, modified residues mapped to their parent
  (`residues.MODIFIED_TO_PARENT`, e.g. MSE -> M) and any other ATOM-record residue with a CA
  as unknown (X). Residues without a CA are dropped and counted (`Protein.n_dropped`).
- Non-water HETATM groups that are not residues are kept apart as `Ligand`s with elements.
- Hydrogens are ignored.
"""
from __future__ import annotations

import dataclasses
import gzip
import io
import os
import warnings
from collections.abc import Iterable, Sequence

import numpy as np

from jaxgeo import residues
from jaxgeo.errors import StructureError

# Virtual CB from the backbone (ideal geometry; the constants of ProteinMPNN / trRosetta).
_CB_A, _CB_B, _CB_C = -0.58273431, 0.56802827, -0.54067466


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
      n_dropped=sum(p.n_dropped for p in proteins))


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
  """One atom as read from a file (PDB line, mmCIF row, ATOM3D table row)."""
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


def _fast_record(line: str) -> AtomRecord:
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
      occupancy=float(occupancy) if occupancy else 1.0, element=element.capitalize())


def _mdtraj_record(line: str) -> AtomRecord:
  """mdtraj's parser, for the lines the fixed-column parse rejects (hybrid-36 or hex
  numbering, odd spacing)."""
  from mdtraj.formats.pdb.pdbstructure import Atom
  atom = Atom(line)
  (altloc, loc), = atom.locations.items()
  element = atom.element.symbol if atom.element is not None else atom.element_symbol
  return AtomRecord(
      hetero=atom.record_name == "HETATM", name=atom.name_with_spaces.strip(),
      altloc=altloc.strip(), resname=atom.residue_name, chain=atom.chain_id.strip(),
      resnum=int(atom.residue_number), icode=atom.insertion_code.strip(),
      position=tuple(float(v) for v in loc.position), occupancy=float(loc.occupancy),
      element=(element or "").capitalize())


def _parse_pdb_lines(path: str, text: str) -> list[AtomRecord]:
  records = []
  for line_number, line in enumerate(text.splitlines(), start=1):
    if line.startswith(("ENDMDL", "END")) and not line.startswith("ENDROOT") and records:
      break  # first model only
    if not line.startswith(("ATOM  ", "HETATM")):
      continue
    if len(line) < 54:
      raise StructureError(
          f"{path}: truncated atom record at line {line_number}: {line.rstrip()!r}")
    try:
      records.append(_fast_record(line))
    except ValueError:
      try:
        records.append(_mdtraj_record(line))
      except (ValueError, IndexError, KeyError) as e:
        raise StructureError(
            f"{path}: malformed atom record at line {line_number} ({e})") from None
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
  c_num = column("auth_seq_id", "label_seq_id")
  c_icode = column("pdbx_PDB_ins_code", required=False)
  c_x, c_y, c_z = column("Cartn_x"), column("Cartn_y"), column("Cartn_z")
  c_occ = column("occupancy", required=False)
  c_el = column("type_symbol", required=False)
  c_model = column("pdbx_PDB_model_num", required=False)
  blank = lambda v: "" if v in ("?", ".") else v

  records = []
  first_model = None
  for i in range(table.getRowCount()):
    row = table.getRow(i)
    if len(row) != len(columns):
      raise StructureError(f"{path}: truncated atom_site row {i + 1}")
    if c_model is not None:
      if first_model is None:
        first_model = row[c_model]
      elif row[c_model] != first_model:
        break
    try:
      records.append(AtomRecord(
          hetero=row[c_group] == "HETATM", name=row[c_name].strip('"'),
          altloc=blank(row[c_alt]) if c_alt is not None else "", resname=row[c_res],
          chain=blank(row[c_chain]), resnum=int(row[c_num]),
          icode=blank(row[c_icode]) if c_icode is not None else "",
          position=(float(row[c_x]), float(row[c_y]), float(row[c_z])),
          occupancy=float(row[c_occ]) if c_occ is not None and blank(row[c_occ]) else 1.0,
          element=blank(row[c_el]) if c_el is not None else ""))
    except ValueError as e:
      raise StructureError(f"{path}: malformed atom_site row {i + 1} ({e})") from None
  return records


def _best_altloc(records: Iterable[AtomRecord]) -> AtomRecord:
  return min(records, key=lambda r: (-r.occupancy, r.altloc))


def _is_hydrogen(record: AtomRecord) -> bool:
  element = record.element.strip().upper()
  if element:
    return element in ("H", "D")
  return record.name.lstrip("0123456789").startswith(("H", "D"))


def protein_from_records(path: str, records: list[AtomRecord]) -> Protein:
  """Groups atom records into residues and ligands (see the module docstring).

  This is load_protein's assembly step, public so that other readers (ATOM3D tables) build
  Proteins the same way. `path` names the source in error messages.
  """
  groups: dict[tuple[str, int, str], list[AtomRecord]] = {}
  for record in records:
    groups.setdefault((record.chain, record.resnum, record.icode), []).append(record)

  aatypes, letters, chain_ids, numbers, icodes = [], [], [], [], []
  positions, masks, ligands = [], [], []
  n_dropped = 0
  for (chain, resnum, icode), group in groups.items():
    names = {r.resname for r in group}
    if len(names) > 1:  # microheterogeneity: keep the residue of the best CA (or atom)
      cas = [r for r in group if r.name == "CA"] or group
      keep = _best_altloc(cas).resname
      group = [r for r in group if r.resname == keep]
    resname = group[0].resname.strip().upper()
    if resname in residues.WATER_NAMES:
      continue
    hetero = all(r.hetero for r in group)
    atoms: dict[str, list[AtomRecord]] = {}
    for r in group:
      if not _is_hydrogen(r):
        atoms.setdefault(r.name, []).append(r)
    is_residue = residues.is_known_residue(resname) or (
        not hetero and resname not in residues.NUCLEIC_NAMES)
    if not is_residue:
      if hetero and atoms:
        chosen = [_best_altloc(a) for a in atoms.values()]
        ligands.append(Ligand(
            name=resname, chain_id=chain, residue_number=resnum,
            atom_names=np.array([r.name for r in chosen]),
            element=np.array([r.element or r.name[:1] for r in chosen]),
            positions=np.array([r.position for r in chosen], dtype=np.float32)))
      continue
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
    aatypes.append(aatype)
    letters.append(letter)
    chain_ids.append(chain)
    numbers.append(resnum)
    icodes.append(icode)
    positions.append(pos)
    masks.append(mask)

  if not aatypes:
    detail = f" ({n_dropped} residue(s) without CA)" if n_dropped else ""
    raise StructureError(f"{path}: no protein residues{detail}")

  atom_positions = np.stack(positions)
  atom_mask = np.stack(masks)
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
      ligands=tuple(ligands), source=os.path.basename(path), n_dropped=n_dropped)


def load_protein(path: str | os.PathLike, chains: str | Sequence[str] | None = None) -> Protein:
  """Reads a PDB or mmCIF file (optionally gzipped) into a Protein.

  Args:
    path: `.pdb`, `.ent`, `.cif`, `.mmcif`, each optionally `.gz`; other names are sniffed.
    chains: chain id(s) to keep ("A", "AB", "A,B" or ["A", "B"]); None keeps all.

  Raises:
    StructureError: the file is missing, empty, truncated, not a structure, has no protein
      residues, or lacks a requested chain. The message names the file and the cause.
  """
  path = os.fspath(path)
  text = _read_text(path)
  fmt = _structure_format(path, text)
  records = _cif_records(path, text) if fmt == "cif" else _pdb_records(path, text)
  if not records:
    raise StructureError(f"{path}: no ATOM/HETATM records: not a PDB or mmCIF structure")
  protein = protein_from_records(path, records)
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
