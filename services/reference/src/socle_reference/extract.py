"""Build the compact reference extract from an unpacked ``@etalab/decoupage-administratif``.

Pure functions (no network, no npm): ``refresh.py`` downloads the package and calls them,
tests call them on a hand-made package. Bad identifiers in the source are reported as
issues and the offending records left out, so the catalogue can promise that every
SIREN and INSEE code it returns is well-formed.
"""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .catalogue import FORMAT_VERSION
from .codes import departement_of_insee, insee_problem, siren_problem

Severity = Literal["error", "warning", "info"]

DATA_FILES = ("epci.json", "communes.json", "departements.json", "regions.json")
MEMBER_COMMUNE_TYPE = "commune-actuelle"
"""COG type of a real commune; délégées, associées, arrondissements cannot join an EPCI."""


@dataclass(frozen=True, slots=True)
class Issue:
    """A problem found in the source data; errors mean the record was left out."""

    severity: Severity
    code: str
    subject: str
    message: str

    def __str__(self) -> str:
        return f"[{self.severity}] {self.code} {self.subject}: {self.message}"


@dataclass(slots=True)
class BuildResult:
    extract: dict[str, Any]
    issues: list[Issue] = field(default_factory=list)

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "error"]

    @property
    def warnings(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "warning"]

    @property
    def epci_count(self) -> int:
        return len(self.extract["epcis"])

    @property
    def commune_count(self) -> int:
        return len(self.extract["communes"])


@dataclass(frozen=True, slots=True)
class PackageData:
    """The JSON files of the package, as parsed, plus its package.json."""

    manifest: Mapping[str, Any]
    epcis: Sequence[Mapping[str, Any]]
    communes: Sequence[Mapping[str, Any]]
    departements: Sequence[Mapping[str, Any]] = ()
    regions: Sequence[Mapping[str, Any]] = ()


def read_package(package_dir: Path) -> PackageData:
    """Read ``package.json`` and ``data/*.json``; départements and régions are optional."""

    def load(path: Path) -> Any:
        with path.open(encoding="utf-8") as handle:
            return json.load(handle)

    data_dir = package_dir / "data"
    for required in ("epci.json", "communes.json"):
        if not (data_dir / required).is_file():
            raise FileNotFoundError(f"{data_dir / required} is missing: not the expected package")
    manifest_path = package_dir / "package.json"
    return PackageData(
        manifest=load(manifest_path) if manifest_path.is_file() else {},
        epcis=load(data_dir / "epci.json"),
        communes=load(data_dir / "communes.json"),
        departements=load(data_dir / "departements.json") if (data_dir / "departements.json").is_file() else (),
        regions=load(data_dir / "regions.json") if (data_dir / "regions.json").is_file() else (),
    )


def build_extract(package_dir: Path, source: Mapping[str, Any]) -> BuildResult:
    """Build the extract from an unpacked package directory (``package/``)."""
    return build_extract_from(read_package(package_dir), source)


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def build_extract_from(package: PackageData, source: Mapping[str, Any]) -> BuildResult:
    """Join EPCI memberships (DGCL) with the communes of the COG (INSEE), validating codes."""
    issues: list[Issue] = []
    cog: dict[str, Mapping[str, Any]] = {}
    for row in package.communes:
        if row.get("type") == MEMBER_COMMUNE_TYPE:
            cog[str(row.get("code", ""))] = row

    epcis: list[dict[str, Any]] = []
    communes: list[dict[str, Any]] = []
    assigned: dict[str, str] = {}
    rejected: set[str] = set()
    renamed = 0
    for row in sorted(package.epcis, key=lambda r: str(r.get("code", ""))):
        siren = str(row.get("code", ""))
        name = str(row.get("nom", ""))
        members = row.get("membres") or []
        problem = siren_problem(siren)
        if problem is not None:
            issues.append(
                Issue(
                    "error",
                    "invalid-epci-siren",
                    f"EPCI {name!r}",
                    f"{problem}; EPCI and its {len(members)} members left out",
                )
            )
            rejected.update(str(m.get("code", "")) for m in members)
            continue
        if any(e["siren"] == siren for e in epcis):
            issues.append(Issue("error", "duplicate-epci", siren, f"{name!r} listed twice"))
            continue

        member_codes: list[str] = []
        for member in members:
            insee = str(member.get("code", ""))
            subject = f"commune {insee} {member.get('nom', '')!r} of EPCI {siren}"
            problem = insee_problem(insee)
            if problem is not None:
                issues.append(Issue("error", "invalid-insee", subject, f"{problem}; left out"))
                rejected.add(insee)
                continue
            cog_row = cog.get(insee)
            if cog_row is None:
                issues.append(
                    Issue(
                        "error",
                        "member-not-in-cog",
                        subject,
                        f"not a {MEMBER_COMMUNE_TYPE} in communes.json; left out",
                    )
                )
                continue
            if insee in assigned:
                issues.append(
                    Issue(
                        "error",
                        "duplicate-membership",
                        subject,
                        f"already a member of EPCI {assigned[insee]}; kept there only",
                    )
                )
                continue
            commune_siren = str(cog_row.get("siren") or member.get("siren") or "")
            dgcl_siren = member.get("siren")
            if dgcl_siren and cog_row.get("siren") and dgcl_siren != cog_row["siren"]:
                issues.append(
                    Issue(
                        "warning",
                        "siren-mismatch",
                        subject,
                        f"communes.json says {cog_row['siren']}, epci.json says {dgcl_siren}; kept communes.json",
                    )
                )
            problem = siren_problem(commune_siren)
            if problem is not None:
                issues.append(Issue("error", "invalid-commune-siren", subject, f"{problem}; left out"))
                rejected.add(insee)
                continue
            population = _int_or_none(cog_row.get("population"))
            if population is None:
                issues.append(Issue("warning", "missing-population", subject, "no population in source"))
            departement = str(cog_row.get("departement", ""))
            if departement != departement_of_insee(insee):
                issues.append(
                    Issue(
                        "warning",
                        "departement-mismatch",
                        subject,
                        f"département {departement!r} does not match the INSEE code",
                    )
                )
            commune_name = str(cog_row.get("nom", member.get("nom", "")))
            if member.get("nom") and member["nom"] != commune_name:
                renamed += 1
            assigned[insee] = siren
            member_codes.append(insee)
            communes.append(
                {
                    "insee": insee,
                    "siren": commune_siren,
                    "name": commune_name,
                    "population": population,
                    "departement": departement,
                    "region": str(cog_row.get("region", "")),
                    "zone": str(cog_row.get("zone", "metro")),
                    "epci": siren,
                }
            )
        if not member_codes:
            issues.append(Issue("warning", "epci-without-members", siren, f"{name!r}"))
        epcis.append(
            {
                "siren": siren,
                "name": name,
                "kind": str(row.get("type", "")),
                "financing": str(row.get("modeFinancement", "")),
                "dgcl_population_municipale": _int_or_none(row.get("populationMunicipale")),
                "dgcl_population_totale": _int_or_none(row.get("populationTotale")),
                "members": sorted(member_codes),
            }
        )

    if renamed:
        issues.append(
            Issue(
                "info",
                "name-differs",
                f"{renamed} communes",
                "DGCL spelling differs from the INSEE COG; the COG name is kept",
            )
        )
    outside = sorted(code for code in cog if code not in assigned and code not in rejected)
    if outside:
        shown = ", ".join(outside[:8]) + (", ..." if len(outside) > 8 else "")
        issues.append(
            Issue(
                "info",
                "outside-epci",
                f"{len(outside)} communes",
                f"in no EPCI à fiscalité propre (islands, COM), not onboardable: {shown}",
            )
        )

    extract: dict[str, Any] = {
        "format": FORMAT_VERSION,
        "source": dict(source),
        "regions": {str(r["code"]): str(r["nom"]) for r in sorted(package.regions, key=lambda r: r["code"])},
        "departements": {
            str(d["code"]): {"name": str(d["nom"]), "region": str(d.get("region", ""))}
            for d in sorted(package.departements, key=lambda d: d["code"])
        },
        "epcis": epcis,
        "communes": sorted(communes, key=lambda c: c["insee"]),
    }
    return BuildResult(extract=extract, issues=issues)


# -- serialisation -------------------------------------------------------------------


def extract_bytes(extract: Mapping[str, Any]) -> bytes:
    """Deterministic gzip of the extract: same data, same bytes, clean git diffs."""
    payload = json.dumps(extract, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0, compresslevel=9) as gz:
        gz.write(payload)
    return buffer.getvalue()


def read_extract(path: Path) -> dict[str, Any] | None:
    """The extract currently on disk, or ``None`` if there is none (first build)."""
    if not path.is_file():
        return None
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        data: dict[str, Any] = json.load(handle)
    return data


# -- what changed --------------------------------------------------------------------


@dataclass(slots=True)
class ExtractDiff:
    """Differences between two extracts, for the refresh summary and the change review."""

    epcis_added: list[tuple[str, str]] = field(default_factory=list)
    epcis_removed: list[tuple[str, str]] = field(default_factory=list)
    epcis_renamed: list[tuple[str, str, str]] = field(default_factory=list)
    membership_changed: list[tuple[str, list[str], list[str]]] = field(default_factory=list)
    communes_added: list[tuple[str, str]] = field(default_factory=list)
    communes_removed: list[tuple[str, str]] = field(default_factory=list)
    communes_renamed: list[tuple[str, str, str]] = field(default_factory=list)
    siren_changed: list[tuple[str, str, str]] = field(default_factory=list)
    population_changed: int = 0
    population_before: int = 0
    population_after: int = 0

    @property
    def empty(self) -> bool:
        return not (
            self.epcis_added
            or self.epcis_removed
            or self.epcis_renamed
            or self.membership_changed
            or self.communes_added
            or self.communes_removed
            or self.communes_renamed
            or self.siren_changed
            or self.population_changed
        )

    def lines(self, examples: int = 5) -> list[str]:
        """Human summary, a few examples per kind of change."""

        def show(label: str, items: Sequence[tuple[Any, ...]]) -> list[str]:
            if not items:
                return []
            out = [f"{label}: {len(items)}"]
            out += ["    " + " | ".join(str(part) for part in item) for item in items[:examples]]
            if len(items) > examples:
                out.append(f"    ... and {len(items) - examples} more")
            return out

        if self.empty:
            return ["no change in EPCIs, members, names, SIRENs or populations"]
        out: list[str] = []
        out += show("EPCIs added", self.epcis_added)
        out += show("EPCIs removed", self.epcis_removed)
        out += show("EPCIs renamed", self.epcis_renamed)
        out += show(
            "EPCIs whose members changed",
            [(s, f"+{','.join(a) or '-'}", f"-{','.join(r) or '-'}") for s, a, r in self.membership_changed],
        )
        out += show("communes added", self.communes_added)
        out += show("communes removed", self.communes_removed)
        out += show("communes renamed", self.communes_renamed)
        out += show("commune SIRENs changed", self.siren_changed)
        if self.population_changed:
            out.append(
                f"communes whose population changed: {self.population_changed} "
                f"(total {self.population_before:,} -> {self.population_after:,})"
            )
        return out


def diff_extracts(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> ExtractDiff:
    """Compare by SIREN (EPCIs) and INSEE code (communes)."""
    diff = ExtractDiff()
    old_epcis = {e["siren"]: e for e in (old or {}).get("epcis", [])}
    new_epcis = {e["siren"]: e for e in new["epcis"]}
    old_communes = {c["insee"]: c for c in (old or {}).get("communes", [])}
    new_communes = {c["insee"]: c for c in new["communes"]}

    for siren in sorted(new_epcis.keys() - old_epcis.keys()):
        diff.epcis_added.append((siren, new_epcis[siren]["name"]))
    for siren in sorted(old_epcis.keys() - new_epcis.keys()):
        diff.epcis_removed.append((siren, old_epcis[siren]["name"]))
    for siren in sorted(old_epcis.keys() & new_epcis.keys()):
        before, after = old_epcis[siren], new_epcis[siren]
        if before["name"] != after["name"]:
            diff.epcis_renamed.append((siren, before["name"], after["name"]))
        added = sorted(set(after["members"]) - set(before["members"]))
        removed = sorted(set(before["members"]) - set(after["members"]))
        if added or removed:
            diff.membership_changed.append((siren, added, removed))

    for insee in sorted(new_communes.keys() - old_communes.keys()):
        diff.communes_added.append((insee, new_communes[insee]["name"]))
    for insee in sorted(old_communes.keys() - new_communes.keys()):
        diff.communes_removed.append((insee, old_communes[insee]["name"]))
    for insee in sorted(old_communes.keys() & new_communes.keys()):
        before, after = old_communes[insee], new_communes[insee]
        if before["name"] != after["name"]:
            diff.communes_renamed.append((insee, before["name"], after["name"]))
        if before["siren"] != after["siren"]:
            diff.siren_changed.append((insee, before["siren"], after["siren"]))
        if before.get("population") != after.get("population"):
            diff.population_changed += 1
    diff.population_before = sum(c.get("population") or 0 for c in old_communes.values())
    diff.population_after = sum(c.get("population") or 0 for c in new_communes.values())
    return diff
