"""Reading structures: formats agree, modified residues, alternate locations, bad input."""
import gzip

import numpy as np
import pytest

from jaxgeo import residues, structure, testing
from jaxgeo.errors import JaxgeoError, StructureError

ATOM = ("ATOM  {serial:5d} {name:<4s}{alt:1s}{res:>3s} {chain:1s}{num:4d}{icode:1s}   "
        "{x:8.3f}{y:8.3f}{z:8.3f}{occ:6.2f}{b:6.2f}          {el:>2s}")


def atom_line(serial, name, res, chain, num, xyz, alt=" ", icode=" ", occ=1.0, record="ATOM",
              el=None):
  line = ATOM.format(serial=serial, name=(" " + name) if len(name) < 4 else name, alt=alt,
                     res=res, chain=chain, num=num, icode=icode, x=xyz[0], y=xyz[1], z=xyz[2],
                     occ=occ, b=10.0, el=el or name[0])
  return record.ljust(6) + line[6:]


@pytest.fixture
def small_protein():
  return testing.random_protein(30, np.random.default_rng(1), chains=2)


def test_write_read_round_trip(tmp_path, small_protein):
  for name in ("p.pdb", "p.pdb.gz"):
    structure.write_pdb(small_protein, tmp_path / name)
    back = structure.load_protein(tmp_path / name)
    assert back.sequence == small_protein.sequence
    assert back.chains == ("A", "B")
    np.testing.assert_array_equal(back.atom_mask, small_protein.atom_mask)
    np.testing.assert_allclose(back.atom_positions, small_protein.atom_positions, atol=1e-3)
    np.testing.assert_allclose(back.cb, small_protein.cb, atol=5e-3)
    np.testing.assert_array_equal(back.residue_number, small_protein.residue_number)


def test_chain_selection(tmp_path, small_protein):
  structure.write_pdb(small_protein, tmp_path / "p.pdb")
  b = structure.load_protein(tmp_path / "p.pdb", chains="B")
  assert b.chains == ("B",) and len(b) == 15
  both = structure.load_protein(tmp_path / "p.pdb", chains="A,B")
  assert len(both) == 30
  with pytest.raises(StructureError, match=r"p\.pdb.*'Z' not found.*'A', 'B'"):
    structure.load_protein(tmp_path / "p.pdb", chains="Z")


def test_glycine_gets_virtual_cb(tmp_path):
  bb = testing.ideal_backbone(np.full(5, -1.0), np.full(5, -0.8))
  p = testing.make_protein("AGAGA", bb)
  structure.write_pdb(p, tmp_path / "g.pdb")
  back = structure.load_protein(tmp_path / "g.pdb")
  cb_slot = residues.ATOM_ORDER["CB"]
  assert not back.atom_mask[1, cb_slot]
  expected = structure.virtual_cb(bb[1, 0], bb[1, 1], bb[1, 2])
  np.testing.assert_allclose(back.cb[1], expected, atol=1e-3)
  # The virtual CB of a real residue sits where the real one is (ideal geometry).
  np.testing.assert_allclose(back.cb[0], back.atom_positions[0, cb_slot], atol=1e-3)
  assert abs(np.linalg.norm(back.cb[1] - back.ca[1]) - 1.52) < 0.03


def _residue_lines(res, chain, num, origin, serial, icode=" ", record="ATOM", alt=" ", occ=1.0):
  offsets = {"N": (0, 0, 0), "CA": (1.46, 0, 0), "C": (2.0, 1.4, 0), "O": (1.5, 2.5, 0)}
  return [atom_line(serial + i, name, res, chain, num, np.add(origin, off), icode=icode,
                    record=record, alt=alt, occ=occ)
          for i, (name, off) in enumerate(offsets.items())]


def test_modified_residues_insertion_codes_and_ligands(tmp_path):
  lines = []
  lines += _residue_lines("ALA", "A", 1, (0, 0, 0), 1)
  lines += _residue_lines("MSE", "A", 2, (3.8, 0, 0), 5, record="HETATM")
  lines.append(atom_line(9, "SE", "MSE", "A", 2, (5, 1, 1), record="HETATM", el="SE"))
  lines += _residue_lines("GLY", "A", 2, (7.6, 0, 0), 10, icode="A")
  lines += _residue_lines("XYZ", "A", 3, (11.4, 0, 0), 14)          # unknown residue, has CA
  lines.append(atom_line(18, "N", "SER", "A", 4, (15, 0, 0)))      # no CA: dropped
  lines.append(atom_line(19, "O", "HOH", "A", 100, (30, 0, 0), record="HETATM"))
  lines.append(atom_line(20, "C1", "LIG", "A", 101, (20, 0, 0), record="HETATM"))
  lines.append(atom_line(21, "N1", "LIG", "A", 101, (21, 0, 0), record="HETATM"))
  lines.append(atom_line(22, "ZN", "ZN", "A", 102, (22, 0, 0), record="HETATM", el="ZN"))
  (tmp_path / "m.pdb").write_text("\n".join(lines) + "\nEND\n")
  p = structure.load_protein(tmp_path / "m.pdb")
  assert p.sequence == "AMGX"
  assert p.aatype.tolist() == [0, residues.RESTYPES.index("M"), 7, residues.UNKNOWN]
  assert p.insertion_code.tolist() == ["", "", "A", ""]
  assert p.residue_number.tolist() == [1, 2, 2, 3]
  assert p.n_dropped == 1
  # Selenium of MSE sits in MET's SD slot.
  assert p.atom_mask[1, residues.ATOM_ORDER["SD"]]
  assert [lig.name for lig in p.ligands] == ["LIG", "ZN"]
  assert p.ligands[0].element.tolist() == ["C", "N"]
  assert p.ligands[1].element.tolist() == ["Zn"]


def test_alternate_locations_are_deterministic(tmp_path):
  lines = _residue_lines("ALA", "A", 1, (0, 0, 0), 1)
  # Residue 2's CA in two locations: B has the higher occupancy and wins.
  lines += [atom_line(5, "N", "SER", "A", 2, (3.0, 0, 0)),
            atom_line(6, "CA", "SER", "A", 2, (4.0, 0, 0), alt="A", occ=0.4),
            atom_line(7, "CA", "SER", "A", 2, (4.5, 0, 0), alt="B", occ=0.6),
            atom_line(8, "C", "SER", "A", 2, (5.0, 1, 0), alt="A", occ=0.5),
            atom_line(9, "C", "SER", "A", 2, (5.5, 1, 0), alt="B", occ=0.5)]
  (tmp_path / "alt.pdb").write_text("\n".join(lines) + "\n")
  p = structure.load_protein(tmp_path / "alt.pdb")
  np.testing.assert_allclose(p.ca[1], [4.5, 0, 0])
  # Equal occupancy: the alphabetically first indicator.
  np.testing.assert_allclose(p.backbone[1, 2], [5.0, 1, 0])


def test_bad_inputs_raise_one_error_type_naming_the_file(tmp_path, small_protein):
  cases = {}
  cases["empty.pdb"] = b""
  cases["text.pdb"] = b"hello, this is not a structure\n"
  good = structure.to_pdb_string(small_protein)
  cases["truncated.pdb"] = good[: len(good) // 2].rsplit("\n", 1)[0][:40].encode() + b"\n"
  cases["cut_line.pdb"] = (good[:200].rsplit("\n", 1)[0] + "\n" + good.splitlines()[3][:45]).encode()
  cases["truncated.pdb.gz"] = gzip.compress(good.encode())[:100]
  cases["no_protein.pdb"] = (atom_line(1, "O", "HOH", "A", 1, (0, 0, 0), record="HETATM") +
                             "\n").encode()
  cases["only_ligand.pdb"] = (atom_line(1, "C1", "LIG", "A", 1, (0, 0, 0), record="HETATM") +
                              "\n").encode()
  cases["bad.cif"] = b"data_x\nloop_\n_atom_site.group_PDB\n_atom_site.id\nATOM\n"
  cases["binary.pdb"] = bytes(range(256)) * 4
  for name, data in cases.items():
    (tmp_path / name).write_bytes(data)
    with pytest.raises(StructureError) as info:
      structure.load_protein(tmp_path / name)
    assert name in str(info.value), (name, str(info.value))
  with pytest.raises(StructureError, match="no such file"):
    structure.load_protein(tmp_path / "missing.pdb")
  assert issubclass(StructureError, JaxgeoError)


def test_pdb_and_mmcif_give_the_same_protein(shared_data):
  fixture = shared_data / "atom3d_fixture"
  for pdb in sorted((fixture / "pdb").glob("*.pdb")):
    entry = pdb.stem
    a = structure.load_protein(pdb)
    b = structure.load_protein(fixture / "mmcif" / f"{entry}.cif")
    c = structure.load_protein(fixture / "pdbgz" / f"{entry}.pdb.gz")
    for other in (b, c):
      assert a.sequence == other.sequence, entry
      np.testing.assert_array_equal(a.chain_id, other.chain_id)
      np.testing.assert_array_equal(a.residue_number, other.residue_number)
      np.testing.assert_array_equal(a.insertion_code, other.insertion_code)
      np.testing.assert_array_equal(a.atom_mask, other.atom_mask)
      np.testing.assert_allclose(a.atom_positions, other.atom_positions, atol=1e-3)
      assert [l.name for l in a.ligands] == [l.name for l in other.ligands]


def test_db55_complex(shared_data):
  folder = shared_data / "db5.5" / "structures"
  receptor = structure.load_protein(folder / "1A2K_r_b.pdb.gz")
  ligand = structure.load_protein(folder / "1A2K_l_b.pdb.gz")
  assert len(receptor) > 100 and len(ligand) > 100
  assert set(receptor.sequence) <= set(residues.RESTYPES + "X")
  # Bound partners touch: some CA pair closer than 8 A.
  d = np.linalg.norm(receptor.ca[:, None] - ligand.ca[None], axis=-1)
  assert d.min() < 8.0
  # Consecutive residues of a chain are ~3.8 A apart except at breaks.
  gaps = np.linalg.norm(np.diff(receptor.ca, axis=0), axis=-1)
  assert np.median(gaps) == pytest.approx(3.8, abs=0.05)


def test_fast_pdb_parse_agrees_with_mdtraj(shared_data):
  import dataclasses
  text = gzip.decompress((shared_data / "db5.5/structures/1A2K_r_b.pdb.gz").read_bytes()).decode()
  text += (shared_data / "atom3d_fixture/pdb/117e.pdb").read_text()
  lines = [l for l in text.splitlines() if l.startswith(("ATOM  ", "HETATM"))]
  assert len(lines) > 3000
  for line in lines:
    fast = dataclasses.asdict(structure._fast_record(line))
    slow = dataclasses.asdict(structure._mdtraj_record(line))
    np.testing.assert_allclose(fast.pop("position"), slow.pop("position"), atol=1e-6)
    assert fast == slow, line


# ---------------------------------------------------------------------------------------
# Nothing silently wrong: residues are never merged away, coordinates are finite.


def _atom_lines(text):
  return [l for l in text.splitlines() if l.startswith(("ATOM  ", "HETATM"))]


def _set_columns(line, start, stop, value):
  return line[:start] + value.rjust(stop - start)[: stop - start] + line[stop:]


def _two_residues(chain="A"):
  """ALA 1 (lines 1-4: N, CA, C, O) and GLY 2 (lines 5-8)."""
  return (_residue_lines("ALA", chain, 1, (0, 0, 0), 1)
          + _residue_lines("GLY", chain, 2, (3.8, 0, 0), 5))


def _write(tmp_path, name, lines):
  (tmp_path / name).write_text("\n".join(lines) + "\nEND\n")
  return tmp_path / name


def test_homodimer_with_blank_chains_and_ter_keeps_both_copies(tmp_path):
  # One chain written twice, same numbering, blank chain ids, TER between the copies.
  one = testing.random_protein(12, np.random.default_rng(2), chains=1)
  copy = _atom_lines(structure.to_pdb_string(one))
  shifted = [_set_columns(l, 30, 38, f"{float(l[30:38]) + 40.0:8.3f}") for l in copy]
  blank = lambda lines: [_set_columns(l, 21, 22, " ") for l in lines]
  path = _write(tmp_path, "dimer.pdb", blank(copy) + ["TER"] + blank(shifted))
  p = structure.load_protein(path)
  assert len(p) == 2 * len(one)
  # TER-separated blank chains get distinct ids, in file order.
  assert p.chains == ("A", "B") and p.chain_sequences() == {"A": one.sequence, "B": one.sequence}
  np.testing.assert_array_equal(p.residue_number, np.tile(one.residue_number, 2))
  # Without the TER it is one blank chain, still with every residue.
  path = _write(tmp_path, "no_ter.pdb", blank(copy) + blank(shifted))
  p = structure.load_protein(path)
  assert len(p) == 2 * len(one) and p.chains == ("",)


def test_blank_chain_names_skip_ids_in_use_and_ligands_follow(tmp_path):
  one = testing.random_protein(6, np.random.default_rng(3), chains=1)
  lines = _atom_lines(structure.to_pdb_string(one))
  blank = [_set_columns(l, 21, 22, " ") for l in lines]
  far = lambda ls, dx: [_set_columns(l, 30, 38, f"{float(l[30:38]) + dx:8.3f}") for l in ls]
  ligand = atom_line(900, "C1", "LIG", " ", 1, (50, 50, 50), record="HETATM")
  path = _write(tmp_path, "mixed.pdb", far(lines, 0) + ["TER"] + far(blank, 30) + ["TER"]
                + far(blank, 60) + ["TER", ligand])
  p = structure.load_protein(path)
  assert p.chains == ("A", "B", "C")  # A is taken by the named chain
  assert [l.chain_id for l in p.ligands] == ["C"]


def test_reused_residue_numbers_are_new_residues(tmp_path):
  base = testing.random_protein(30, np.random.default_rng(4), chains=1)
  lines = _atom_lines(structure.to_pdb_string(base))
  # Residues 21-30 renumbered 11-20 (they follow 11-20 with other residues between).
  renumbered = [_set_columns(l, 22, 26, str(int(l[22:26]) - 10)) if int(l[22:26]) > 20 else l
                for l in lines]
  p = structure.load_protein(_write(tmp_path, "renumbered.pdb", renumbered))
  assert len(p) == 30 and p.sequence == base.sequence
  assert p.residue_number.tolist() == list(range(1, 21)) + list(range(11, 21))
  np.testing.assert_allclose(p.ca, base.ca, atol=1e-3)
  # Adjacent residues under one number but with other names are two residues too.
  seq = base.sequence
  i = next(i for i in range(1, 30) if seq[i] != seq[i - 1])
  same = [_set_columns(l, 22, 26, str(i)) if int(l[22:26]) == i + 1 else l for l in lines]
  p = structure.load_protein(_write(tmp_path, "same_number.pdb", same))
  assert len(p) == 30 and p.sequence == seq


def test_residue_reuse_on_real_files(shared_data, tmp_path):
  fixture = shared_data / "atom3d_fixture"
  # 117e is a homodimer (chains A 1-282, B 1001-1282): blank the ids, number both 1-282.
  lines = (fixture / "pdb" / "117e.pdb").read_text().splitlines()
  def blank(l):
    if l.startswith(("ATOM  ", "HETATM", "TER")) and len(l) > 26:
      l = _set_columns(l, 21, 22, " ")
      if l[22:26].strip().isdigit() and int(l[22:26]) > 1000:
        l = _set_columns(l, 22, 26, str(int(l[22:26]) - 1000))
    return l
  p = structure.load_protein(_write(tmp_path, "117e_blank.pdb", [blank(l) for l in lines]))
  assert len(p) == 564 and p.chains == ("A", "B")
  original = structure.load_protein(fixture / "pdb" / "117e.pdb")
  np.testing.assert_allclose(p.atom_positions, original.atom_positions)
  # 103l with residues 20-29 renumbered 10-19 keeps its 159 residues.
  lines = (fixture / "pdb" / "103l.pdb").read_text().splitlines()
  renumber = lambda l: (_set_columns(l, 22, 26, str(int(l[22:26]) - 10))
                        if l.startswith("ATOM  ") and 20 <= int(l[22:26]) <= 29 else l)
  p = structure.load_protein(_write(tmp_path, "103l_renumbered.pdb", map(renumber, lines)))
  assert len(p) == 159
  # The same in mmCIF (auth_seq_id is the 17th atom_site column of this file).
  rows = (fixture / "mmcif" / "103l.cif").read_text().splitlines()
  def renumber_cif(l):
    f = l.split()
    if l.startswith("ATOM ") and 20 <= int(f[16]) <= 29:
      f[16] = str(int(f[16]) - 10)
      return " ".join(f)
    return l
  (tmp_path / "103l.cif").write_text("\n".join(map(renumber_cif, rows)) + "\n")
  q = structure.load_protein(tmp_path / "103l.cif")
  assert len(q) == 159
  np.testing.assert_allclose(p.atom_positions, q.atom_positions, atol=1e-3)


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "1e+30", "99999.99", "-1000.00"])
@pytest.mark.parametrize("axis", [0, 1, 2])
def test_non_finite_or_out_of_range_pdb_coordinates_are_refused(tmp_path, value, axis):
  lines = _two_residues()
  start = 30 + 8 * axis
  lines[5] = _set_columns(lines[5], start, start + 8, value)  # CA of GLY 2, line 6
  with pytest.raises(StructureError,
                     match=r"bad\.pdb: line 6: atom 'CA' of residue GLY A2: coordinate"):
    structure.load_protein(_write(tmp_path, "bad.pdb", lines))


@pytest.mark.parametrize("value", ["nan", "inf", "-Infinity", "1e30"])
def test_non_finite_or_huge_mmcif_coordinates_are_refused(tmp_path, small_protein, value):
  header = ["data_x", "loop_"] + [f"_atom_site.{c}" for c in (
      "group_PDB", "id", "type_symbol", "label_atom_id", "label_comp_id", "label_asym_id",
      "label_seq_id", "Cartn_x", "Cartn_y", "Cartn_z", "auth_asym_id", "auth_seq_id")]
  rows = [f"ATOM {i + 1} C {name} ALA A 1 {x} 0.0 0.0 A 1"
          for i, (name, x) in enumerate([("N", "0.0"), ("CA", value), ("C", "2.0")])]
  (tmp_path / "bad.cif").write_text("\n".join(header + rows) + "\n#\n")
  with pytest.raises(StructureError,
                     match=r"bad\.cif: atom_site row 2: atom 'CA' of residue ALA A1: coordinate"):
    structure.load_protein(tmp_path / "bad.cif")


def test_non_finite_records_from_other_readers_are_refused():
  def record(name, x, line=0):
    return structure.AtomRecord(hetero=False, name=name, altloc="", resname="ALA", chain="A",
                                resnum=1, icode="", position=(x, 0.0, 0.0), occupancy=1.0,
                                element=name[0], line=line)
  good = structure.protein_from_records("table", [record("N", 0.0), record("CA", 1.5)])
  assert len(good) == 1
  with pytest.raises(StructureError, match=r"table: atom record 2: atom 'CA' .*nan"):
    structure.protein_from_records("table", [record("N", 0.0), record("CA", float("nan"))])


def test_duplicate_atom_lines_are_counted_and_warned_once(tmp_path, caplog):
  lines = _two_residues()
  clean = structure.load_protein(_write(tmp_path, "clean.pdb", lines))
  assert clean.n_duplicate_atoms == 0
  # Line 2 (CA of ALA 1) twice more, line 7 (C of GLY 2) once more; the first of each is kept.
  moved = _set_columns(lines[1], 54, 60, "  0.50")  # occupancy differs: still a duplicate
  doubled = lines[:2] + [lines[1], moved] + lines[2:7] + [lines[6]] + lines[7:]
  with caplog.at_level("WARNING", logger="jaxgeo.structure"):
    p = structure.load_protein(_write(tmp_path, "dup.pdb", doubled))
  assert p.n_duplicate_atoms == 3 and len(p) == 2
  np.testing.assert_array_equal(p.atom_positions, clean.atom_positions)
  warnings_ = [r for r in caplog.records if r.name == "jaxgeo.structure"]
  assert len(warnings_) == 1
  assert "dup.pdb: 3 duplicated atom line(s)" in warnings_[0].getMessage()
  assert "line 3" in warnings_[0].getMessage()
  # Counts add up when proteins are joined.
  assert structure.concatenate([p, p]).n_duplicate_atoms == 6


def test_ambiguous_files_are_refused_naming_the_line(tmp_path):
  res1 = _residue_lines("ALA", "A", 1, (0, 0, 0), 1)
  res2 = _residue_lines("GLY", "A", 2, (3.8, 0, 0), 5)
  # ALA 1 written again right after itself, 3.8 A away: a reused number or lost altlocs.
  again = _residue_lines("ALA", "A", 1, (7.6, 0, 0), 9)
  with pytest.raises(StructureError,
                     match=r"again\.pdb: line 5: atom 'N' of residue ALA A1 appears again"):
    structure.load_protein(_write(tmp_path, "again.pdb", res1 + again))
  # A copy of residue 1 after residue 2: a second residue where the first one is.
  with pytest.raises(StructureError,
                     match=r"copy\.pdb: line 10: the CA of residue ALA A1 .*line 2.*duplicated"):
    structure.load_protein(_write(tmp_path, "copy.pdb", res1 + res2 + res1))
  # A name change under one number with an altloc where the residue has none.
  alt = _residue_lines("SER", "A", 2, (3.8, 0, 0), 9, alt="B", occ=0.5)
  with pytest.raises(StructureError, match=r"alt\.pdb: line 9: residue SER A2 follows GLY"):
    structure.load_protein(_write(tmp_path, "alt.pdb", res1 + res2 + alt))


def test_microheterogeneity_is_still_one_residue(tmp_path):
  lines = _residue_lines("ALA", "A", 1, (0, 0, 0), 1)
  lines += _residue_lines("GLY", "A", 2, (3.8, 0, 0), 5, alt="A", occ=0.4)
  lines += _residue_lines("SER", "A", 2, (3.9, 0, 0), 9, alt="B", occ=0.6)
  p = structure.load_protein(_write(tmp_path, "micro.pdb", lines))
  assert p.sequence == "AS" and p.n_duplicate_atoms == 0
  np.testing.assert_allclose(p.ca[1], [3.9 + 1.46, 0, 0], atol=1e-3)


def test_ligand_atoms_with_repeated_names_are_all_kept(tmp_path):
  lines = _residue_lines("ALA", "A", 1, (0, 0, 0), 1)
  lines += [atom_line(5 + i, "C", "LIG", "A", 101, (10 + i, 0, 0), record="HETATM")
            for i in range(3)]
  p = structure.load_protein(_write(tmp_path, "lig.pdb", lines))
  assert len(p.ligands) == 1 and len(p.ligands[0].atom_names) == 3


def test_ligand_sharing_a_residue_key_with_a_residue_is_kept_apart(tmp_path):
  # As in DB5.5's 2PCC_l_u: blank chain, HEM 1 after the protein's residue 1.
  lines = _two_residues(" ")
  lines.append(atom_line(9, "FE", "HEM", " ", 1, (20, 0, 0), record="HETATM", el="FE"))
  p = structure.load_protein(_write(tmp_path, "hem.pdb", lines))
  assert p.sequence == "AG" and [l.name for l in p.ligands] == ["HEM"]


def test_residue_numbers_beyond_9999(tmp_path):
  lines = _two_residues()
  lines[:4] = [_set_columns(l, 22, 26, "A000") for l in lines[:4]]  # hybrid-36: 10000
  lines[4:] = [_set_columns(l, 22, 26, "A001") for l in lines[4:]]
  p = structure.load_protein(_write(tmp_path, "h36.pdb", lines))
  assert p.residue_number.tolist() == [10000, 10001]
  # Other non-decimal numbers were read as 0 (merging residues); now they are refused.
  lines[4:] = [_set_columns(l, 22, 26, "1x") for l in lines[4:]]
  with pytest.raises(StructureError, match=r"junk\.pdb: malformed atom record at line 5"):
    structure.load_protein(_write(tmp_path, "junk.pdb", lines))
