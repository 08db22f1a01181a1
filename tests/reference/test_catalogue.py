"""The shipped reference extract, the catalogue over it, and the tenant declarations."""

from __future__ import annotations

import copy
import gzip
import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from socle_reference import (
    ReferenceCatalogue,
    ReferenceDataError,
    UnknownCommune,
    UnknownEpci,
    check_declaration,
    default_catalogue,
    resolve_extract,
)
from socle_reference.catalogue import DATA_DIR, ENV_VAR, EXTRACT_FILENAME
from socle_reference.codes import (
    fold,
    is_valid_insee,
    is_valid_siren,
    luhn_ok,
    siren_of_siret,
)

REPO = Path(__file__).resolve().parents[2]
REFERENCE_DIR = DATA_DIR
SCHEMA_PATH = REPO / "tenants" / "schema" / "tenant-declaration.schema.json"
DEMO_DIR = REPO / "tenants" / "demo"
DEMO_PATH = DEMO_DIR / "cc-pays-de-sommieres.json"

DEMO_SIREN = "243000296"  # CC du Pays de Sommières (Gard), 18 communes
DEMO_COMMUNES = {
    "30321": "Sommières",
    "30062": "Calvisson",
    "30091": "Congénies",
    "30352": "Villevieille",
}


@pytest.fixture(scope="module")
def catalogue() -> ReferenceCatalogue:
    return default_catalogue()


@pytest.fixture(scope="module")
def validator() -> Draft202012Validator:
    schema = json.loads(SCHEMA_PATH.read_text("utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


@pytest.fixture
def demo() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DEMO_PATH.read_text("utf-8"))
    return data


def errors_of(validator: Draft202012Validator, document: Any) -> list[ValidationError]:
    return sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))


# -- identifiers ---------------------------------------------------------------------


def test_siren_luhn() -> None:
    assert is_valid_siren("243000296")
    assert is_valid_siren("732829320")  # a company SIREN: the rule is not EPCI-specific
    assert not is_valid_siren("243000297")
    assert not is_valid_siren("24300029")
    assert not is_valid_siren("24300029a")
    assert luhn_ok("97080195700014")  # a SIRET also carries a Luhn key
    assert siren_of_siret("213 003 213 00018") == "213003213"
    with pytest.raises(ValueError, match="14 chiffres"):
        siren_of_siret("213003213")


@pytest.mark.parametrize("code", ["01001", "30321", "2A004", "2B033", "97411", "97601"])
def test_valid_insee_codes(code: str) -> None:
    assert is_valid_insee(code)


@pytest.mark.parametrize("code", ["3032", "303210", "20001", "2C001", "00001", "99101", "30 21"])
def test_invalid_insee_codes(code: str) -> None:
    assert not is_valid_insee(code)


def test_fold_ignores_case_accents_ligatures_and_punctuation() -> None:
    assert fold("Cœur-de-l'Hérault") == fold("COEUR DE L HERAULT") == "coeur de l herault"


# -- the shipped data ----------------------------------------------------------------


def test_shipped_extract_loads_and_matches_its_source(catalogue: ReferenceCatalogue) -> None:
    source = json.loads((REFERENCE_DIR / "SOURCE.json").read_text("utf-8"))
    extract = REFERENCE_DIR / EXTRACT_FILENAME
    assert Path(catalogue.origin) == extract.resolve()
    assert hashlib.sha256(extract.read_bytes()).hexdigest() == source["extract"]["sha256"]
    assert extract.stat().st_size < 5_000_000
    assert catalogue.epci_count == source["extract"]["epcis"] > 1200
    assert catalogue.commune_count == source["extract"]["communes"] > 34000
    assert catalogue.source.package == source["package"] == "@etalab/decoupage-administratif"
    assert catalogue.source.version == source["version"]
    assert catalogue.source.integrity == source["integrity"]
    assert catalogue.source.population.figure == "population_municipale"
    assert catalogue.source.population.millesime == 2023
    assert (REFERENCE_DIR / "LICENSE-decoupage-administratif").read_text().startswith("MIT")


def test_every_shipped_code_is_valid(catalogue: ReferenceCatalogue) -> None:
    for epci in catalogue.epcis():
        assert is_valid_siren(epci.siren), epci
        for commune in catalogue.members(epci.siren):
            assert is_valid_siren(commune.siren), commune
            assert is_valid_insee(commune.insee), commune
            assert commune.epci_siren == epci.siren


def test_demo_epci_has_its_real_members(catalogue: ReferenceCatalogue) -> None:
    epci = catalogue.epci(DEMO_SIREN)
    assert epci.name == "CC du Pays de Sommières"
    assert epci.kind == "CC"
    assert epci.kind_label == "communauté de communes"
    assert epci.departements == ("30",)
    assert is_valid_siren(epci.siren)
    members = catalogue.members(DEMO_SIREN)
    assert len(members) == epci.member_count == 18
    by_code = {m.insee: m for m in members}
    for insee, name in DEMO_COMMUNES.items():
        assert by_code[insee].name == name
    sommieres = by_code["30321"]
    assert sommieres.siren == "213003213"
    assert is_valid_siren(sommieres.siren)
    assert sommieres.population is not None
    assert sommieres.population > 0
    assert (sommieres.departement, sommieres.region) == ("30", "76")
    assert catalogue.departement_name("30") == "Gard"
    assert catalogue.region_name("76") == "Occitanie"
    assert epci.population == sum(m.population or 0 for m in members) > 20000
    assert [m.name for m in members] == sorted((m.name for m in members), key=fold)


def test_siren_with_spaces_and_commune_lookups(catalogue: ReferenceCatalogue) -> None:
    assert catalogue.epci("243 000 296").siren == DEMO_SIREN
    assert catalogue.commune("30321").epci_siren == DEMO_SIREN
    assert catalogue.commune("2a004").name == "Ajaccio"
    assert catalogue.commune_by_siren("213003213").insee == "30321"


def test_unknown_epci_says_which_siren_and_why(catalogue: ReferenceCatalogue) -> None:
    with pytest.raises(UnknownEpci, match=r"243000297.*Luhn") as luhn:
        catalogue.epci("243000297")
    assert luhn.value.siren == "243000297"
    with pytest.raises(UnknownEpci, match="9 chiffres"):
        catalogue.epci("2430")
    with pytest.raises(UnknownEpci, match="213003213 est celui de la commune Sommières"):
        catalogue.epci("213003213")
    # Luhn-valid but nobody's: 732829320 is a company.
    with pytest.raises(UnknownEpci, match=r"aucun EPCI .* SIREN 732829320"):
        catalogue.members("732829320")


def test_unknown_commune(catalogue: ReferenceCatalogue) -> None:
    with pytest.raises(UnknownCommune, match="3032"):
        catalogue.commune("3032")
    # Ouessant is a real commune but in no EPCI: it cannot be a tenant.
    with pytest.raises(UnknownCommune, match="29155 n'est celui d'aucune commune membre d'un EPCI"):
        catalogue.commune("29155")


@pytest.mark.parametrize(
    "query",
    [
        "sommieres",
        "SOMMIÈRES",
        "Pays de Sommières",
        "pays de somm",
        "communaute de communes du pays de sommieres",
        "CC du Pays de Sommières",
    ],
)
def test_search_is_case_and_accent_insensitive(catalogue: ReferenceCatalogue, query: str) -> None:
    assert catalogue.search_epci(query, limit=5)[0].siren == DEMO_SIREN


def test_search_by_member_commune_siren_and_limits(catalogue: ReferenceCatalogue) -> None:
    assert [e.siren for e in catalogue.search_epci("congenies")] == [DEMO_SIREN]
    assert catalogue.search_epci("243000")[0].siren.startswith("243000")
    assert catalogue.search_epci("coeur") == catalogue.search_epci("cœur")
    assert len(catalogue.search_epci("saint", limit=3)) == 3
    assert catalogue.search_epci("   ") == []
    assert catalogue.search_epci("sommieres", limit=0) == []


def test_extract_location_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert resolve_extract() == DATA_DIR / EXTRACT_FILENAME  # the package's own data, wherever it is installed
    shutil.copy(REFERENCE_DIR / EXTRACT_FILENAME, tmp_path / EXTRACT_FILENAME)
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    assert resolve_extract() == tmp_path / EXTRACT_FILENAME
    assert ReferenceCatalogue.load().epci(DEMO_SIREN).member_count == 18
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "missing.json.gz"))
    with pytest.raises(ReferenceDataError, match="not found"):
        ReferenceCatalogue.load()


def test_wrong_format_is_refused(tmp_path: Path) -> None:
    path = tmp_path / EXTRACT_FILENAME
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        json.dump({"format": 99, "epcis": [], "communes": []}, handle)
    with pytest.raises(ReferenceDataError, match="format 99"):
        ReferenceCatalogue.load(path)


# -- declarations --------------------------------------------------------------------


def test_demo_declarations_are_valid(validator: Draft202012Validator, catalogue: ReferenceCatalogue) -> None:
    paths = sorted(DEMO_DIR.glob("*.json"))
    assert DEMO_PATH in paths
    for path in paths:
        declaration = json.loads(path.read_text("utf-8"))
        assert errors_of(validator, declaration) == [], path
        assert check_declaration(declaration, catalogue) == [], path


def test_demo_communes_are_real_members_of_the_declared_epci(
    demo: dict[str, Any], catalogue: ReferenceCatalogue
) -> None:
    epci = catalogue.epci(demo["epci"]["siren"])
    assert epci.siren == DEMO_SIREN
    declared = [c["insee"] for c in demo["communes"]]
    assert 3 <= len(declared) <= 4
    assert set(declared) == set(DEMO_COMMUNES)
    for insee in declared:
        commune = catalogue.commune(insee)
        assert commune.epci_siren == epci.siren
        assert insee in epci.member_insee


def test_unknown_key_is_rejected_with_its_path(validator: Draft202012Validator, demo: dict[str, Any]) -> None:
    broken = copy.deepcopy(demo)
    broken["communes"][1]["max_devices"] = 10  # belongs under "quotas"
    broken["owner"] = "someone"
    errors = errors_of(validator, broken)
    assert [(list(e.absolute_path), e.validator) for e in errors] == [
        ([], "additionalProperties"),
        (["communes", 1], "additionalProperties"),
    ]
    assert "'owner' was unexpected" in errors[0].message
    assert "'max_devices' was unexpected" in errors[1].message
    assert errors[1].json_path == "$.communes[1]"


def test_bad_insee_code_is_rejected_with_its_path(validator: Draft202012Validator, demo: dict[str, Any]) -> None:
    broken = copy.deepcopy(demo)
    broken["communes"][0]["insee"] = "3032"
    broken["communes"][2]["insee"] = 30091  # a number loses the leading zero of 01001
    errors = errors_of(validator, broken)
    assert [e.json_path for e in errors] == ["$.communes[0].insee", "$.communes[2].insee"]
    assert "does not match" in errors[0].message
    assert "is not of type 'string'" in errors[1].message


@pytest.mark.parametrize(
    ("mutate", "path", "validator_kind"),
    [
        (lambda d: d["allocation_key"].pop("weights"), "$.allocation_key", "required"),
        (
            lambda d: d["allocation_key"].update(method="population"),
            "$.allocation_key.method",
            "const",
        ),
        (
            lambda d: d.update(allocation_key={"method": "fixed"}),
            "$.allocation_key.method",
            "enum",
        ),
        (
            lambda d: d["communes"][0].update(email_domains=["Mairie-Sommieres.FR"]),
            "$.communes[0].email_domains[0]",
            "pattern",
        ),
        (
            lambda d: d["communes"][1].update(quotas={"max_devices": -1}),
            "$.communes[1].quotas.max_devices",
            "minimum",
        ),
        (lambda d: d["epci"].update(siren="243 000 296"), "$.epci.siren", "pattern"),
        (lambda d: d["epci"]["tenant"].pop("first_admin_email"), "$.epci.tenant", "required"),
        (lambda d: d.update(communes=[]), "$.communes", "minItems"),
        (
            lambda d: d["epci"]["tenant"].update(competences=["weather"]),
            "$.epci.tenant.competences[0]",
            "enum",
        ),
    ],
)
def test_other_shape_errors(
    validator: Draft202012Validator,
    demo: dict[str, Any],
    mutate: Any,
    path: str,
    validator_kind: str,
) -> None:
    mutate(demo)
    errors = errors_of(validator, demo)
    assert [(e.json_path, str(e.validator)) for e in errors] == [(path, validator_kind)]


def test_reference_check_catches_what_the_schema_cannot(demo: dict[str, Any], catalogue: ReferenceCatalogue) -> None:
    demo["communes"].append({"insee": "2A004"})  # Ajaccio: real, but not in this EPCI
    demo["communes"].append({"insee": "30321"})  # Sommières twice
    demo["communes"][1]["email_domains"] = ["mairie-sommieres.fr"]  # claimed by Sommières
    demo["communes"][2]["first_admin_email"] = "someone@example.org"
    issues = {i.pointer: i.message for i in check_declaration(demo, catalogue)}
    assert set(issues) == {
        "/communes/4/insee",
        "/communes/5/insee",
        "/communes/1/email_domains/0",
        "/communes/1/first_admin_email",
        "/communes/2/first_admin_email",
    }
    assert "membre de l'EPCI 242010056" in issues["/communes/4/insee"]
    assert "déjà déclarée en /communes/0" in issues["/communes/5/insee"]
    assert "déjà revendiqué en /communes/0/email_domains/0" in issues["/communes/1/email_domains/0"]


def test_reference_check_allows_an_epci_agent_as_commune_admin(
    demo: dict[str, Any], catalogue: ReferenceCatalogue
) -> None:
    demo["communes"][3]["first_admin_email"] = "mutualisation@cc-paysdesommieres.fr"
    assert check_declaration(demo, catalogue) == []


def test_reference_check_unknown_epci(demo: dict[str, Any], catalogue: ReferenceCatalogue) -> None:
    demo["epci"]["siren"] = "243000297"
    issues = check_declaration(demo, catalogue)
    assert [(i.pointer, "Luhn" in i.message) for i in issues] == [("/epci/siren", True)]
