"""Reading structures: formats agree, modified residues, alternate locations, bad input."""
import gzip
import pathlib

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
