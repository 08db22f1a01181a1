"""Building the reference extract from a hand-made package (no network, no npm)."""

from __future__ import annotations

import gzip
import io
import json
import shutil
import tarfile
from pathlib import Path
from typing import Any

import pytest

from socle_reference import ReferenceCatalogue
from socle_reference import refresh as refresh_module
from socle_reference.catalogue import EXTRACT_FILENAME, SOURCE_FILENAME
from socle_reference.extract import (
    build_extract,
    diff_extracts,
    extract_bytes,
)
from socle_reference.refresh import (
    LICENSE_FILENAME,
    RefreshError,
    refresh,
    sri_sha512,
)

SOURCE = {"package": "@etalab/decoupage-administratif", "version": "0.0.1-test"}


def commune(code: str, nom: str, siren: str | None, population: int | None, **extra: Any) -> dict[str, Any]:
    departement = code[:2]
    row: dict[str, Any] = {
        "code": code,
        "nom": nom,
        "zone": "metro",
        "departement": departement,
        "region": "94" if departement in ("2A", "2B") else "76",
        "type": "commune-actuelle",
    }
    if siren is not None:
        row["siren"] = siren
    if population is not None:
        row["population"] = population
    row.update(extra)
    return row


def member(code: str, nom: str, siren: str) -> dict[str, Any]:
    return {
        "code": code,
        "siren": siren,
        "nom": nom,
        "populationTotale": 1,
        "populationMunicipale": 1,
    }


def package_files(*, broken: bool = True) -> dict[str, Any]:
    """A tiny decoupage-administratif: two good EPCIs and, if ``broken``, bad records."""
    test_cc: dict[str, Any] = {
        "code": "200000024",
        "nom": "CC Cœur de Test",
        "type": "CC",
        "modeFinancement": "FPU",
        "populationTotale": 1600,
        "populationMunicipale": 1500,
        "membres": [
            member("30902", "Bourg-Dessus", "219900024"),
            member("30901", "Fontaine Hérault", "219900016"),  # DGCL spelling
        ],
    }
    corse: dict[str, Any] = {
        "code": "200000016",
        "nom": "CA de Corse Test",
        "type": "CA",
        "modeFinancement": "FA",
        "populationTotale": 310,
        "populationMunicipale": 300,
        "membres": [member("2A901", "Aiacciu-Test", "212000012")],
    }
    communes: list[dict[str, Any]] = [
        commune("30901", "Fontaine-Hérault", "219900016", 1000),
        commune("30902", "Bourg-Dessus", "219900024", 500),
        commune("30905", "Île-Seule", "219900040", 42),  # in no EPCI
        commune("2A901", "Aiacciu-Test", "212000012", 300),
        {
            "code": "30903",
            "nom": "Ancienne",
            "type": "commune-deleguee",
            "departement": "30",
            "region": "76",
            "zone": "metro",
            "chefLieu": "30901",
        },
        {
            "code": "13201",
            "nom": "Marseille 1er",
            "type": "arrondissement-municipal",
            "departement": "13",
            "region": "93",
            "zone": "metro",
            "commune": "13055",
            "population": 37599,
        },
    ]
    epcis = [test_cc, corse]
    if broken:
        test_cc["membres"] += [
            member("3090", "Trop-Court", "219900057"),  # bad INSEE code
            member("30903", "Ancienne", "219900065"),  # a commune déléguée, not a member
        ]
        communes[1].pop("population")  # Bourg-Dessus: no population in source
        corse["membres"].append(member("2B902", "Luhn-Faux", "212000013"))
        communes.append(commune("2B902", "Luhn-Faux", "212000013", 70))
        communes.append(commune("30904", "Orpheline", "219900032", 10))
        epcis.append(
            {
                "code": "200000017",  # Luhn key should be 6
                "nom": "CA Invalide",
                "type": "CA",
                "modeFinancement": "FPU",
                "populationTotale": 10,
                "populationMunicipale": 10,
                "membres": [member("30904", "Orpheline", "219900032")],
            }
        )
    return {
        "package.json": {
            "name": "@etalab/decoupage-administratif",
            "version": "0.0.1-test",
            "license": "MIT",
        },
        "data/epci.json": epcis,
        "data/communes.json": communes,
        "data/departements.json": [
            {"code": "2A", "region": "94", "nom": "Corse-du-Sud"},
            {"code": "30", "region": "76", "nom": "Gard"},
        ],
        "data/regions.json": [{"code": "76", "nom": "Occitanie"}, {"code": "94", "nom": "Corse"}],
        "LICENSE": "MIT License\n\nCopyright (c) test\n",
    }


def write_package(root: Path, *, broken: bool = True) -> Path:
    package_dir = root / "package"
    for name, content in package_files(broken=broken).items():
        path = package_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        text = content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)
        path.write_text(text, encoding="utf-8")
    return package_dir


def write_tarball(root: Path, *, broken: bool = True) -> Path:
    package_dir = write_package(root / "src", broken=broken)
    tgz = root / "etalab-decoupage-administratif-0.0.1-test.tgz"
    with tarfile.open(tgz, "w:gz") as archive:
        archive.add(package_dir, arcname="package")
        evil = b"should never be written"
        info = tarfile.TarInfo("../escaped.txt")
        info.size = len(evil)
        archive.addfile(info, io.BytesIO(evil))
    return tgz


# -- the pure builder ----------------------------------------------------------------


def test_build_extract_keeps_valid_members_only(tmp_path: Path) -> None:
    result = build_extract(write_package(tmp_path), SOURCE)
    extract = result.extract
    assert extract["format"] == 1
    assert extract["source"] == SOURCE
    assert extract["epcis"] == [
        {
            "siren": "200000016",
            "name": "CA de Corse Test",
            "kind": "CA",
            "financing": "FA",
            "dgcl_population_municipale": 300,
            "dgcl_population_totale": 310,
            "members": ["2A901"],
        },
        {
            "siren": "200000024",
            "name": "CC Cœur de Test",
            "kind": "CC",
            "financing": "FPU",
            "dgcl_population_municipale": 1500,
            "dgcl_population_totale": 1600,
            "members": ["30901", "30902"],
        },
    ]
    assert extract["communes"] == [
        {
            "insee": "2A901",
            "siren": "212000012",
            "name": "Aiacciu-Test",
            "population": 300,
            "departement": "2A",
            "region": "94",
            "zone": "metro",
            "epci": "200000016",
        },
        {
            "insee": "30901",
            "siren": "219900016",
            "name": "Fontaine-Hérault",
            "population": 1000,
            "departement": "30",
            "region": "76",
            "zone": "metro",
            "epci": "200000024",
        },
        {
            "insee": "30902",
            "siren": "219900024",
            "name": "Bourg-Dessus",
            "population": None,
            "departement": "30",
            "region": "76",
            "zone": "metro",
            "epci": "200000024",
        },
    ]
    assert extract["departements"]["2A"] == {"name": "Corse-du-Sud", "region": "94"}
    assert extract["regions"] == {"76": "Occitanie", "94": "Corse"}


def test_build_extract_reports_every_invalid_record(tmp_path: Path) -> None:
    result = build_extract(write_package(tmp_path), SOURCE)
    found = {(i.severity, i.code): i for i in result.issues}
    assert set(found) == {
        ("error", "invalid-epci-siren"),
        ("error", "invalid-insee"),
        ("error", "member-not-in-cog"),
        ("error", "invalid-commune-siren"),
        ("warning", "missing-population"),
        ("info", "name-differs"),
        ("info", "outside-epci"),
    }
    bad_epci = found[("error", "invalid-epci-siren")]
    assert "200000017" in bad_epci.message
    assert "Luhn" in bad_epci.message
    assert "CA Invalide" in bad_epci.subject
    assert "212000013" in found[("error", "invalid-commune-siren")].message
    assert "2B902" in found[("error", "invalid-commune-siren")].subject
    assert "'3090'" in found[("error", "invalid-insee")].message
    assert "30903" in found[("error", "member-not-in-cog")].subject
    # Communes left out because of an error are not also reported as "outside any EPCI".
    assert found[("info", "outside-epci")].subject == "1 communes"
    assert "30905" in found[("info", "outside-epci")].message
    assert len(result.errors) == 4
    assert len(result.warnings) == 1


def test_clean_package_has_no_errors_and_loads_as_a_catalogue(tmp_path: Path) -> None:
    result = build_extract(write_package(tmp_path, broken=False), SOURCE)
    assert result.errors == []
    path = tmp_path / EXTRACT_FILENAME
    path.write_bytes(extract_bytes(result.extract))
    catalogue = ReferenceCatalogue.load(path)
    epci = catalogue.epci("200000024")
    assert epci.population == 1500
    assert [m.name for m in catalogue.members("200000024")] == ["Bourg-Dessus", "Fontaine-Hérault"]
    assert [e.siren for e in catalogue.search_epci("coeur de test")] == ["200000024"]
    assert catalogue.commune("2a901").epci_siren == "200000016"


def test_extract_bytes_are_deterministic(tmp_path: Path) -> None:
    extract = build_extract(write_package(tmp_path), SOURCE).extract
    assert extract_bytes(extract) == extract_bytes(json.loads(json.dumps(extract)))
    assert json.loads(gzip.decompress(extract_bytes(extract))) == extract


def test_diff_between_extracts(tmp_path: Path) -> None:
    old = build_extract(write_package(tmp_path, broken=False), SOURCE).extract
    new = json.loads(json.dumps(old))
    new["epcis"][1]["name"] = "CC Nouveau Nom"
    new["epcis"][1]["members"] = ["30901"]
    new["communes"] = [c for c in new["communes"] if c["insee"] != "30902"]
    new["communes"][0]["population"] = 310
    diff = diff_extracts(old, new)
    assert diff.epcis_renamed == [("200000024", "CC Cœur de Test", "CC Nouveau Nom")]
    assert diff.membership_changed == [("200000024", [], ["30902"])]
    assert diff.communes_removed == [("30902", "Bourg-Dessus")]
    assert diff.population_changed == 1
    assert (diff.population_before, diff.population_after) == (1800, 1310)
    text = "\n".join(diff.lines())
    assert "EPCIs renamed: 1" in text
    assert "communes removed: 1" in text
    assert diff_extracts(old, old).empty


# -- the command, offline (--tarball) --------------------------------------------------


def test_refresh_refuses_to_write_invalid_records(tmp_path: Path) -> None:
    out = io.StringIO()
    output_dir = tmp_path / "reference"
    code = refresh(
        version="latest",
        output_dir=output_dir,
        dry_run=False,
        allow_issues=False,
        tarball=write_tarball(tmp_path),
        out=out,
    )
    assert code == 2
    assert not output_dir.exists()
    report = out.getvalue()
    assert "EPCIs: 2   member communes: 3" in report
    assert "invalid-epci-siren" in report
    assert "4 invalid records: nothing written" in report


def test_refresh_writes_extract_source_and_licence(tmp_path: Path) -> None:
    tgz = write_tarball(tmp_path, broken=False)
    output_dir = tmp_path / "reference"
    out = io.StringIO()
    code = refresh(
        version="latest",
        output_dir=output_dir,
        dry_run=False,
        allow_issues=False,
        tarball=tgz,
        out=out,
    )
    assert code == 0, out.getvalue()
    source = json.loads((output_dir / SOURCE_FILENAME).read_text("utf-8"))
    assert source["version"] == "0.0.1-test"
    assert source["integrity"] == sri_sha512(tgz)
    assert source["licence"] == "MIT"
    assert source["extract"]["epcis"] == 2
    assert source["extract"]["communes"] == 3
    # Unknown version: the population millésime is recorded as unknown, and said so.
    assert source["population"]["millesime"] is None
    assert "population millésime of 0.0.1-test is not known" in out.getvalue()
    assert (output_dir / LICENSE_FILENAME).read_text().startswith("MIT License")
    assert ReferenceCatalogue.load(output_dir).epci("200000024").member_count == 2
    assert not (tmp_path / "escaped.txt").exists()

    # A second run compares with what is on disk; --dry-run leaves it untouched.
    before = (output_dir / EXTRACT_FILENAME).read_bytes()
    out = io.StringIO()
    assert (
        refresh(
            version="latest",
            output_dir=output_dir,
            dry_run=True,
            allow_issues=False,
            tarball=tgz,
            out=out,
        )
        == 0
    )
    assert "no change in EPCIs" in out.getvalue()
    assert (output_dir / EXTRACT_FILENAME).read_bytes() == before


def test_main_with_allow_issues(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    output_dir = tmp_path / "reference"
    argv = [
        "--tarball",
        str(write_tarball(tmp_path)),
        "--output-dir",
        str(output_dir),
        "--allow-issues",
    ]
    assert refresh_module.main(argv) == 0
    assert "wrote" in capsys.readouterr().out
    assert ReferenceCatalogue.load(output_dir).commune_count == 3


def test_missing_npm_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    with pytest.raises(RefreshError, match="npm is not on PATH"):
        refresh_module.npm_pack("6.0.0", tmp_path)
    assert refresh_module.main(["--output-dir", str(tmp_path), "--dry-run"]) == 1
    assert "npm is not on PATH" in capsys.readouterr().err
