"""Property: a mutated real PDB / mmCIF file gives a Protein with exactly the residues the
file holds, or a StructureError; never another exception, never a silent merge.

The expected residue count comes from `_expected`, a small reference reader of the rules in
`jaxgeo.structure`'s docstring written independently of it (fixed columns / whitespace
tokens, no mdtraj). Where the reference cannot tell (alternate locations, a line only
mdtraj's fallback parses) the test asks only for a Protein or a StructureError.
"""
import dataclasses
import gzip
import math

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, Phase, event, given, settings, strategies as st  # noqa: E402

from jaxgeo import residues, structure  # noqa: E402
from jaxgeo.errors import StructureError  # noqa: E402

N_RESIDUES = 60
SETTINGS = settings(max_examples=300, deadline=None, derandomize=True, print_blob=False,
                    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
NON_FINITE = ["nan", "NaN", "inf", "-inf", "1e+30", "99999.99", "-1000.00", "1e400"]
PDB_FIELDS = [(6, 11), (12, 16), (17, 20), (21, 22), (22, 26), (26, 27), (30, 38), (38, 46),
              (46, 54), (54, 60), (60, 66), (76, 78)]
STRAY = st.text(st.sampled_from(list("0123456789ABZaz .-+*#'\"_\t") + ["é", "\ufffd", "Ω"]),
                min_size=1, max_size=3)


# ---------------------------------------------------------------------------------------
# The reference: what a file holds.


@dataclasses.dataclass
class Atom:
  segment: int
  chain: str
  resnum: int
  icode: str
  resname: str
  name: str
  altloc: str
  xyz: tuple
  hetero: bool
  element: str


class Refused(Exception):
  """The file must be refused."""


class Unknown(Exception):
  """The reference does not say (the reader may load or refuse)."""


def _hybrid36(text):
  text = text.strip()
  try:
    return int(text)
  except ValueError:
    pass
  for digits, offset in (("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", 10),
                         ("0123456789abcdefghijklmnopqrstuvwxyz", 36)):
    if len(text) == 4 and text[0].isalpha() and all(c in digits for c in text):
      return int(text, 36) - offset * 36**3 + 10**4
  raise Refused("residue number")


def _coordinates(values, low, high):
  try:
    xyz = tuple(float(v) for v in values)
  except ValueError:
    raise Refused("coordinate") from None
  if not all(math.isfinite(v) and low <= v <= high for v in xyz):
    raise Refused("coordinate range")
  return xyz


def _pdb_atoms(text):
  atoms, segment = [], 0
  for line in text.splitlines():
    if line.startswith(("ENDMDL", "END")) and not line.startswith("ENDROOT") and atoms:
      break
    if line.startswith("TER"):
      segment += 1
    if not line.startswith(("ATOM  ", "HETATM")):
      continue
    if len(line) < 54:
      raise Refused("short line")
    resname = line[17:20].strip() + (line[20] if line[20] != " " else "")
    occupancy = line[54:60].strip()
    try:
      float(occupancy or 0)
    except ValueError:
      raise Unknown("mdtraj's fallback reads this line") from None
    resnum = _hybrid36(line[22:26])
    if not line[22:26].strip().lstrip("-").isdigit():
      raise Unknown("mdtraj's fallback reads this line")
    xyz = _coordinates([line[30:38], line[38:46], line[46:54]], -999.999, 9999.999)
    element = line[76:78].strip() if len(line) >= 78 else ""
    if not element.isalpha():
      element = ""
    atoms.append(Atom(segment, line[21].strip(), resnum, line[26].strip(), resname,
                      line[12:16].strip(), line[16].strip(), xyz, line.startswith("HETATM"),
                      element or _name_element(line[12:16])))
  return atoms


def _name_element(name_with_spaces):
  name = name_with_spaces.strip()
  if len(name) == 4 and name[0] == "H":
    return "H"
  return name_with_spaces[:2].strip().lstrip("0123456789")


def _cif_atoms(text):
  """The atom_site loop as whitespace tokens (the test files have no quoted values)."""
  lines = text.splitlines()
  start = lines.index("loop_") + 1
  columns = []
  while lines[start].startswith("_atom_site."):
    columns.append(lines[start].strip()[len("_atom_site."):])
    start += 1
  tokens = []
  for line in lines[start:]:
    if line.startswith("#"):
      break
    tokens += line.split()
  if any(t[:1] in "'\"_;#$" or t.startswith(("loop_", "data_", "save_", "global_", "stop_"))
         for t in tokens):
    raise Unknown("CIF syntax in a value")
  if len(tokens) % len(columns):
    raise Refused("token count")
  rows = [dict(zip(columns, tokens[i:i + len(columns)]))
          for i in range(0, len(tokens), len(columns))]
  blank = lambda v: "" if v in ("?", ".") else v
  atoms, segment, label = [], 0, None
  models = [row["pdbx_PDB_model_num"] for row in rows]
  first = [m for m in models if m == models[0]]
  after = models[len(first):len(first) + 1]
  if models[:len(first)] != first or not all(m.isdigit() for m in after):
    raise Refused("rows of the first model after another model, or a model number not a number")
  for row in rows[:len(first)]:
    if label is not None and row["label_asym_id"] != label:
      segment += 1
    label = row["label_asym_id"]
    try:
      resnum = int(row["auth_seq_id"])
    except ValueError:
      raise Refused("residue number") from None
    xyz = _coordinates([row["Cartn_x"], row["Cartn_y"], row["Cartn_z"]], -1e5, 1e5)
    try:
      float(blank(row["occupancy"]) or 0)
    except ValueError:
      raise Refused("occupancy") from None
    atoms.append(Atom(segment, blank(row["auth_asym_id"]) or blank(row["label_asym_id"]), resnum,
                      blank(row["pdbx_PDB_ins_code"]), row["auth_comp_id"], row["auth_atom_id"],
                      blank(row["label_alt_id"]), xyz, row["group_PDB"] == "HETATM",
                      blank(row["type_symbol"])))
  return atoms


def _expected(atoms):
  """Residue count: runs of atoms with one (segment, chain, number, insertion code) and one
  name; duplicated atoms dropped; runs with a CA that are residues."""
  if any(a.altloc for a in atoms):
    raise Unknown("alternate locations")
  runs = []
  for a in atoms:
    if runs and (runs[-1][0].segment, runs[-1][0].chain, runs[-1][0].resnum, runs[-1][0].icode,
                 runs[-1][0].resname) == (a.segment, a.chain, a.resnum, a.icode, a.resname):
      runs[-1].append(a)
    else:
      runs.append([a])
  count, cas = 0, set()
  for run in runs:
    name = run[0].resname.strip().upper()
    if name in residues.WATER_NAMES:
      continue
    hetero = all(a.hetero for a in run)
    if not (residues.is_known_residue(name) or (not hetero and name not in residues.NUCLEIC_NAMES)):
      continue
    heavy = {}
    for a in run:
      element = a.element.upper()
      if element in ("H", "D") or (not element and a.name.lstrip("0123456789")[:1] in "HD"):
        continue
      if a.name in heavy and heavy[a.name] != a.xyz:
        raise Refused("an atom repeated with other coordinates")
      heavy[a.name] = a.xyz
    if "CA" not in heavy:
      continue
    if heavy["CA"] in cas:
      raise Refused("two residues at one place")
    cas.add(heavy["CA"])
    count += 1
  if not count:
    raise Refused("no residues")
  return count


# ---------------------------------------------------------------------------------------
# Real files, cut to their first residues.


def _first_residues_pdb(text):
  kept, numbers = [], []
  for line in text.splitlines():
    if line.startswith("ATOM  "):
      key = line[21:27]
      if key not in numbers:
        numbers.append(key)
      if len(numbers) > N_RESIDUES:
        continue
    if line.startswith("HETATM") and sum(l.startswith("HETATM") for l in kept) >= 30:
      continue
    if line.startswith(("ATOM  ", "HETATM", "TER")):
      kept.append(line)
  return kept + ["END"]


def _first_residues_cif(text):
  lines = [l.rstrip() for l in text.splitlines()]
  start = lines.index("_atom_site.group_PDB") - 1
  header = ["data_fuzz", "#", "loop_"]
  i = start + 1
  while lines[i].startswith("_atom_site."):
    header.append(lines[i].strip())
    i += 1
  columns = [h[len("_atom_site."):] for h in header[3:]]
  rows, keys = [], []
  for line in lines[i:]:
    if line.startswith("#"):
      break
    row = dict(zip(columns, line.split()))
    if row["group_PDB"] == "ATOM":
      key = (row["auth_asym_id"], row["auth_seq_id"], row["pdbx_PDB_ins_code"])
      if key not in keys:
        keys.append(key)
      if len(keys) > N_RESIDUES:
        continue
    if row["group_PDB"] == "HETATM" and sum(r.startswith("HETATM") for r in rows) >= 30:
      continue
    rows.append(line)
  return header, columns, rows


@pytest.fixture(scope="module")
def pdb_texts(shared_data):
  fixture = shared_data / "atom3d_fixture" / "pdb" / "103l.pdb"
  db55 = shared_data / "db5.5" / "structures" / "1A2K_l_b.pdb.gz"
  return [_first_residues_pdb(fixture.read_text()),
          _first_residues_pdb(gzip.decompress(db55.read_bytes()).decode())]


@pytest.fixture(scope="module")
def cif_text(shared_data):
  return _first_residues_cif((shared_data / "atom3d_fixture" / "mmcif" / "103l.cif").read_text())


# ---------------------------------------------------------------------------------------
# Mutations.

PDB_MUTATIONS = st.lists(st.tuples(
    st.sampled_from(["cut", "swap", "non_finite", "duplicate_line", "duplicate_residue",
                     "renumber", "shift_numbers", "stray", "delete", "ter", "blank_chains"]),
    st.integers(0, 10**6), st.integers(0, 10**6), st.sampled_from(NON_FINITE), STRAY),
    min_size=1, max_size=4)


def _residue_block(lines, i):
  key = lines[i][17:27]
  start = i
  while start > 0 and lines[start - 1][17:27] == key:
    start -= 1
  stop = i
  while stop + 1 < len(lines) and lines[stop + 1][17:27] == key:
    stop += 1
  return start, stop + 1


def _put(line, start, stop, value):
  line = line.ljust(stop)
  return line[:start] + value.rjust(stop - start)[: stop - start] + line[stop:]


def mutate_pdb(lines, mutations):
  lines = list(lines)
  for kind, a, b, number, stray in mutations:
    atom_rows = [k for k, l in enumerate(lines) if l.startswith(("ATOM  ", "HETATM"))]
    if not atom_rows:
      break
    i = atom_rows[a % len(atom_rows)]
    j = atom_rows[b % len(atom_rows)]
    line = lines[i]
    if kind == "cut":
      lines[i] = line[: 20 + b % 60]
    elif kind == "swap":
      (s1, e1), (s2, e2) = PDB_FIELDS[a % len(PDB_FIELDS)], PDB_FIELDS[b % len(PDB_FIELDS)]
      first, second = line.ljust(80)[s1:e1].strip(), line.ljust(80)[s2:e2].strip()
      lines[i] = _put(_put(line, s1, e1, second), s2, e2, first)
    elif kind == "non_finite":
      start = 30 + 8 * (b % 3)
      lines[i] = _put(line, start, start + 8, number)
    elif kind == "duplicate_line":
      lines.insert(i + 1, line)
    elif kind == "duplicate_residue":
      start, stop = _residue_block(lines, i)
      lines[j + 1:j + 1] = lines[start:stop]
    elif kind == "renumber":
      start, stop = _residue_block(lines, i)
      lines[start:stop] = [_put(l, 22, 26, lines[j][22:26]) for l in lines[start:stop]]
    elif kind == "shift_numbers":
      shift = 1 + b % 15
      for k in atom_rows:
        if k >= i and lines[k][22:26].strip().lstrip("-").isdigit():
          lines[k] = _put(lines[k], 22, 26, str(int(lines[k][22:26]) - shift))
    elif kind == "stray":
      at = b % (len(line) + 1)
      lines[i] = line[:at] + stray + line[at:]
    elif kind == "delete":
      del lines[i]
    elif kind == "ter":
      lines.insert(i, "TER")
    elif kind == "blank_chains":
      lines = [_put(l, 21, 22, " ") if l.startswith(("ATOM  ", "HETATM")) else l for l in lines]
  return lines


CIF_MUTATIONS = st.lists(st.tuples(
    st.sampled_from(["non_finite", "duplicate_row", "duplicate_residue", "renumber", "stray",
                     "drop_token", "swap", "blank_chain"]),
    st.integers(0, 10**6), st.integers(0, 10**6), st.sampled_from(NON_FINITE + ["?", "."]),
    st.text(st.sampled_from(list("0123456789ABZaz.-+?")), min_size=1, max_size=3)),
    min_size=1, max_size=4)


def mutate_cif(columns, rows, mutations):
  rows = [r.split() for r in rows]
  col = columns.index
  for kind, a, b, number, stray in mutations:
    i, j = a % len(rows), b % len(rows)
    row = rows[i]
    if kind == "non_finite":
      row[col(("Cartn_x", "Cartn_y", "Cartn_z")[b % 3])] = number
    elif kind == "duplicate_row":
      rows.insert(i + 1, list(row))
    elif kind in ("duplicate_residue", "renumber"):
      key = lambda r: ((r[col("auth_asym_id")], r[col("auth_seq_id")])
                       if len(r) == len(columns) else None)
      block = [k for k, r in enumerate(rows) if key(r) == key(row)]
      if kind == "duplicate_residue":
        rows[j + 1:j + 1] = [list(rows[k]) for k in block]
      elif len(rows[j]) == len(columns):
        for k in block:
          if len(rows[k]) == len(columns):
            rows[k][col("auth_seq_id")] = rows[j][col("auth_seq_id")]
    elif kind == "stray":
      k = b % len(row)
      row[k] = row[k][: a % (len(row[k]) + 1)] + stray + row[k][a % (len(row[k]) + 1):]
    elif kind == "drop_token":
      del row[b % len(row)]
    elif kind == "swap":
      k, m = a % len(row), b % len(row)
      row[k], row[m] = row[m], row[k]
    elif kind == "blank_chain":
      for r in rows:
        if len(r) == len(columns):
          r[col("auth_asym_id")] = "?"
  return [" ".join(r) for r in rows if r]


# ---------------------------------------------------------------------------------------
# The property.


def _check(path, text, reference):
  path.write_text(text, encoding="utf-8")
  try:
    expected = reference()
  except Refused:
    expected = "refused"
  except Unknown:
    expected = None
  reference = "unknown" if expected is None else "refuse" if expected == "refused" else "load"
  try:
    protein = structure.load_protein(path)
  except StructureError as e:
    assert path.name in str(e) and "\n" not in str(e)
    assert expected in ("refused", None), f"refused a file with {expected} residues: {e}"
    return f"reference: {reference}; reader: refused"
  assert expected != "refused", f"loaded {len(protein)} residues from a file to refuse"
  if expected is not None:
    assert len(protein) == expected, f"{len(protein)} residues, the file has {expected}"
  assert all(map(math.isfinite, protein.atom_positions.ravel().tolist()))
  return f"reference: {reference}; reader: loaded"


def test_references_agree_with_the_reader_on_unmutated_files(pdb_texts, cif_text, tmp_path):
  for k, lines in enumerate(pdb_texts):
    text = "\n".join(lines) + "\n"
    outcome = _check(tmp_path / f"{k}.pdb", text, lambda: _expected(_pdb_atoms(text)))
    assert outcome == "reference: load; reader: loaded"
    assert _expected(_pdb_atoms(text)) == N_RESIDUES
  header, columns, rows = cif_text
  text = "\n".join(header + rows + ["#"]) + "\n"
  outcome = _check(tmp_path / "x.cif", text, lambda: _expected(_cif_atoms(text)))
  assert outcome == "reference: load; reader: loaded"
  assert _expected(_cif_atoms(text)) == N_RESIDUES


@SETTINGS
@given(which=st.integers(0, 1), mutations=PDB_MUTATIONS)
def test_mutated_pdb_files_load_exactly_or_are_refused(pdb_texts, tmp_path_factory, which,
                                                        mutations):
  lines = mutate_pdb(pdb_texts[which], mutations)
  text = "\n".join(lines) + "\n"
  path = tmp_path_factory.mktemp("pdb") / "mutated.pdb"
  event(_check(path, text, lambda: _expected(_pdb_atoms(text))))


@SETTINGS
@given(mutations=CIF_MUTATIONS)
def test_mutated_mmcif_files_load_exactly_or_are_refused(cif_text, tmp_path_factory, mutations):
  header, columns, rows = cif_text
  text = "\n".join(header + mutate_cif(columns, rows, mutations) + ["#"]) + "\n"
  path = tmp_path_factory.mktemp("cif") / "mutated.cif"
  event(_check(path, text, lambda: _expected(_cif_atoms(text))))
