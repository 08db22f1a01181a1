"""The official list of EPCIs and their member communes, read from the shipped extract.

The extract (``data/decoupage-administratif.json.gz`` in this package) is built by
``refresh.py`` from the npm package ``@etalab/decoupage-administratif`` and committed, so
onboarding works offline and every run of the platform sees the same reference.
Only communes that belong to an EPCI à fiscalité propre are in it: those are the communes
that can become tenants.
"""

from __future__ import annotations

import functools
import gzip
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from .codes import (
    fold,
    insee_problem,
    normalise_insee,
    normalise_siren,
    siren_problem,
)

EXTRACT_FILENAME: Final = "decoupage-administratif.json.gz"
SOURCE_FILENAME: Final = "SOURCE.json"
FORMAT_VERSION: Final = 1
ENV_VAR: Final = "SOCLE_REFERENCE_DATA"

EPCI_KIND_LABELS: Final[Mapping[str, str]] = {
    "CC": "communauté de communes",
    "CA": "communauté d'agglomération",
    "CU": "communauté urbaine",
    "METRO": "métropole",
    "MET69": "Métropole de Lyon",
}


class ReferenceDataError(RuntimeError):
    """The reference extract is missing or not in a format this code understands."""


class UnknownReference(LookupError):
    """A code that is not in the reference: callers turn it into a 404 / a form error."""


class UnknownEpci(UnknownReference):
    """No EPCI à fiscalité propre has this SIREN in the reference."""

    def __init__(self, siren: str, reason: str) -> None:
        super().__init__(reason)
        self.siren = siren


class UnknownCommune(UnknownReference):
    """No member commune has this INSEE code (or SIREN) in the reference."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code


@dataclass(frozen=True, slots=True)
class MemberCommune:
    """A commune that belongs to an EPCI, hence a possible tenant."""

    insee: str
    siren: str
    name: str
    population: int | None
    """Population municipale (INSEE légale, see ``ReferenceSource.population``)."""
    departement: str
    region: str
    zone: str
    """``metro`` or ``drom``, as in the INSEE COG."""
    epci_siren: str


@dataclass(frozen=True, slots=True)
class Epci:
    """An EPCI à fiscalité propre (CC, CA, CU, métropole) and the INSEE codes of its members."""

    siren: str
    name: str
    kind: str
    """DGCL legal nature: CC, CA, CU, METRO or MET69."""
    financing: str
    """Fiscal regime: FPU (fiscalité professionnelle unique) or FA (additionnelle)."""
    member_insee: tuple[str, ...]
    population: int
    """Sum of the members' population municipale: the allocation-key total."""
    departements: tuple[str, ...]
    dgcl_population_municipale: int | None
    """DGCL's own figure; may lag the INSEE millésime the communes carry."""
    dgcl_population_totale: int | None

    @property
    def kind_label(self) -> str:
        return EPCI_KIND_LABELS.get(self.kind, self.kind)

    @property
    def member_count(self) -> int:
        return len(self.member_insee)


@dataclass(frozen=True, slots=True)
class PopulationReference:
    """Which population figure the communes carry, so allocation statements can cite it."""

    figure: str
    """Which INSEE figure, e.g. ``population_municipale``."""
    label: str
    millesime: int | None
    in_force_from: str | None
    source_url: str | None
    notes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ReferenceSource:
    """Provenance of the extract: package, version, integrity, licences, population."""

    package: str
    version: str
    integrity: str | None
    fetched_at: str | None
    licence: str
    data_licence: str | None
    population: PopulationReference
    raw: Mapping[str, Any] = field(compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class _SearchEntry:
    epci: Epci
    name: str
    name_words: tuple[str, ...]
    words: frozenset[str]
    member_words: frozenset[str]


def _words_match(query_words: list[str], words: frozenset[str] | tuple[str, ...]) -> bool:
    """Every query word is the start of some word: "somm" finds "Sommières"."""
    return all(any(w.startswith(q) for w in words) for q in query_words)


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class ReferenceCatalogue:
    """Read-only, in-memory index of EPCIs and member communes."""

    def __init__(self, data: Mapping[str, Any], *, origin: str = "<memory>") -> None:
        if data.get("format") != FORMAT_VERSION:
            raise ReferenceDataError(
                f"{origin}: reference extract format {data.get('format')!r} is not "
                f"{FORMAT_VERSION}; rebuild it with "
                "`python -m socle_reference.refresh`"
            )
        self.origin = origin
        self.source = _parse_source(data.get("source", {}))
        self._regions: dict[str, str] = dict(data.get("regions", {}))
        self._departements: dict[str, dict[str, str]] = {
            code: dict(info) for code, info in data.get("departements", {}).items()
        }
        self._communes: dict[str, MemberCommune] = {}
        self._communes_by_siren: dict[str, MemberCommune] = {}
        for row in data["communes"]:
            commune = MemberCommune(
                insee=row["insee"],
                siren=row["siren"],
                name=row["name"],
                population=_int_or_none(row.get("population")),
                departement=row["departement"],
                region=row["region"],
                zone=row.get("zone", "metro"),
                epci_siren=row["epci"],
            )
            self._communes[commune.insee] = commune
            self._communes_by_siren[commune.siren] = commune
        self._epcis: dict[str, Epci] = {}
        for row in data["epcis"]:
            members = tuple(row["members"])
            departements: dict[str, int] = {}
            population = 0
            for insee in members:
                commune = self._communes[insee]
                departements[commune.departement] = departements.get(commune.departement, 0) + 1
                population += commune.population or 0
            epci = Epci(
                siren=row["siren"],
                name=row["name"],
                kind=row["kind"],
                financing=row.get("financing", ""),
                member_insee=members,
                population=population,
                # The département with most members first: it is the one people name.
                departements=tuple(sorted(departements, key=lambda d: (-departements[d], d))),
                dgcl_population_municipale=_int_or_none(row.get("dgcl_population_municipale")),
                dgcl_population_totale=_int_or_none(row.get("dgcl_population_totale")),
            )
            self._epcis[epci.siren] = epci
        self._search = [self._search_entry(epci) for epci in self._epcis.values()]

    # -- loading ---------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None) -> ReferenceCatalogue:
        """Load an extract; without ``path``, find the shipped one (see ``resolve_extract``)."""
        resolved = resolve_extract(path)
        try:
            with gzip.open(resolved, "rt", encoding="utf-8") as handle:
                data = json.load(handle)
        except FileNotFoundError as exc:
            raise ReferenceDataError(f"reference extract not found: {resolved}") from exc
        except (OSError, ValueError) as exc:
            raise ReferenceDataError(f"reference extract unreadable: {resolved}: {exc}") from exc
        return cls(data, origin=str(resolved))

    # -- lookups ---------------------------------------------------------------------

    def epci(self, siren: str) -> Epci:
        """The EPCI with this SIREN, or ``UnknownEpci`` saying why not."""
        code = normalise_siren(siren)
        found = self._epcis.get(code)
        if found is not None:
            return found
        problem = siren_problem(code)
        if problem is not None:
            raise UnknownEpci(code, f"EPCI inconnu : {problem}")
        commune = self._communes_by_siren.get(code)
        if commune is not None:
            raise UnknownEpci(
                code,
                f"EPCI inconnu : le SIREN {code} est celui de la commune {commune.name} "
                f"(INSEE {commune.insee}), membre de l'EPCI {commune.epci_siren}",
            )
        raise UnknownEpci(
            code,
            f"EPCI inconnu : aucun EPCI à fiscalité propre n'a le SIREN {code} dans le référentiel "
            f"({self.source.package} {self.source.version})",
        )

    def members(self, siren: str) -> list[MemberCommune]:
        """Member communes of an EPCI, by name, as a picker shows them."""
        epci = self.epci(siren)
        communes = [self._communes[insee] for insee in epci.member_insee]
        return sorted(communes, key=lambda c: (fold(c.name), c.insee))

    def commune(self, insee: str) -> MemberCommune:
        """The member commune with this INSEE code, or ``UnknownCommune``."""
        code = normalise_insee(insee)
        found = self._communes.get(code)
        if found is not None:
            return found
        problem = insee_problem(code)
        if problem is not None:
            raise UnknownCommune(code, f"commune inconnue : {problem}")
        raise UnknownCommune(
            code,
            f"commune inconnue : le code INSEE {code} n'est celui d'aucune commune membre d'un EPCI "
            f"dans le référentiel ({self.source.package} {self.source.version})",
        )

    def commune_by_siren(self, siren: str) -> MemberCommune:
        """Map an organisation SIREN (e.g. from a ProConnect ``siret``) to its commune."""
        code = normalise_siren(siren)
        found = self._communes_by_siren.get(code)
        if found is None:
            raise UnknownCommune(code, f"aucune commune membre n'a le SIREN {code} dans le référentiel")
        return found

    def departement_name(self, code: str) -> str | None:
        info = self._departements.get(code)
        return info.get("name") if info else None

    def region_name(self, code: str) -> str | None:
        return self._regions.get(code)

    def epcis(self) -> Iterator[Epci]:
        return iter(self._epcis.values())

    @property
    def epci_count(self) -> int:
        return len(self._epcis)

    @property
    def commune_count(self) -> int:
        return len(self._communes)

    # -- search ----------------------------------------------------------------------

    def _search_entry(self, epci: Epci) -> _SearchEntry:
        name = fold(epci.name)
        name_words = tuple(name.split())
        extra = fold(epci.kind_label).split()
        member_words: set[str] = set()
        for insee in epci.member_insee:
            member_words.update(fold(self._communes[insee].name).split())
        return _SearchEntry(
            epci=epci,
            name=name,
            name_words=name_words,
            words=frozenset((*name_words, *extra)),
            member_words=frozenset(member_words),
        )

    def search_epci(self, text: str, limit: int = 20) -> list[Epci]:
        """EPCIs for a picker: by name (case/accent-insensitive), SIREN, or member commune.

        Name matches rank first (exact, then prefix, then word matches); EPCIs found only
        through one of their communes' names come after, so "Sommières" finds the CC.
        """
        if limit < 1:
            return []
        query = fold(text)
        if not query:
            return []
        digits = query.replace(" ", "")
        if digits.isdigit():
            hits = [e for e in self._epcis.values() if e.siren.startswith(digits)]
            return sorted(hits, key=lambda e: e.siren)[:limit]
        query_words = query.split()
        ranked: list[tuple[int, str, str, Epci]] = []
        for entry in self._search:
            if entry.name == query:
                rank = 0
            elif entry.name.startswith(query):
                rank = 1
            elif _words_match(query_words, entry.name_words):
                rank = 2
            elif _words_match(query_words, entry.words):
                rank = 3
            elif _words_match(query_words, entry.words | entry.member_words):
                rank = 4
            else:
                continue
            ranked.append((rank, entry.name, entry.epci.siren, entry.epci))
        ranked.sort(key=lambda item: item[:3])
        return [item[3] for item in ranked[:limit]]


def _parse_source(raw: Mapping[str, Any]) -> ReferenceSource:
    population = raw.get("population", {})
    return ReferenceSource(
        package=raw.get("package", "@etalab/decoupage-administratif"),
        version=raw.get("version", "unknown"),
        integrity=raw.get("integrity"),
        fetched_at=raw.get("fetched_at"),
        licence=raw.get("licence", "MIT"),
        data_licence=raw.get("data_licence"),
        population=PopulationReference(
            figure=population.get("figure", "population_municipale"),
            label=population.get("label", "Population municipale"),
            millesime=_int_or_none(population.get("millesime")),
            in_force_from=population.get("in_force_from"),
            source_url=population.get("source_url"),
            notes=tuple(population.get("notes", ())),
        ),
        raw=dict(raw),
    )


# -- locating the extract ------------------------------------------------------------


def _as_extract(path: Path) -> Path:
    return path / EXTRACT_FILENAME if path.is_dir() else path


#: The shipped extract, its ``SOURCE.json`` and licence: package data, so a wheel needs no configuration.
DATA_DIR: Final = Path(__file__).resolve().parent / "data"


def resolve_extract(path: str | os.PathLike[str] | None = None) -> Path:
    """Where the extract is: explicit path, ``$SOCLE_REFERENCE_DATA``, else the packaged copy.

    ``path`` and the variable may name the ``.json.gz`` file or the directory holding it.
    """
    if path is not None:
        return _as_extract(Path(path))
    from_env = os.environ.get(ENV_VAR)
    if from_env:
        return _as_extract(Path(from_env))
    packaged = DATA_DIR / EXTRACT_FILENAME
    if packaged.is_file():
        return packaged
    raise ReferenceDataError(
        f"reference extract {EXTRACT_FILENAME} not found: set {ENV_VAR}, or rebuild it with "
        "`python -m socle_reference.refresh`"
    )


def reference_dir() -> Path:
    """The directory the refresh command writes to: ``$SOCLE_REFERENCE_DATA``, else the package's ``data/``."""
    from_env = os.environ.get(ENV_VAR)
    if from_env:
        target = Path(from_env)
        return target if target.is_dir() or not target.suffix else target.parent
    return DATA_DIR


@functools.cache
def default_catalogue() -> ReferenceCatalogue:
    """The shipped catalogue, loaded once per process (about 35,000 communes)."""
    return ReferenceCatalogue.load()
