"""Commune populations, the usual allocation key, read from the official reference (``socle_reference``).

Billing reads them from the reference package, never through tenancy: a statement cites the
INSEE figure and millésime it used, and a year the reference does not hold is refused rather
than answered with another year's figures.
"""

from __future__ import annotations

from dataclasses import dataclass

from socle_core.errors import InvalidInput, NotFound
from socle_reference import ReferenceCatalogue, UnknownCommune, default_catalogue


@dataclass(frozen=True, slots=True)
class CommunePopulation:
    """One commune's population of one millésime, with what a statement must cite."""

    insee: str
    name: str
    population: int
    year: int
    figure: str
    source_url: str | None


def commune_population(insee: str, year: int, catalogue: ReferenceCatalogue | None = None) -> CommunePopulation:
    """The INSEE population (millésime ``year``) of the commune with this INSEE code."""
    catalogue = catalogue or default_catalogue()
    reference = catalogue.source.population
    if reference.millesime != year:
        held = reference.millesime if reference.millesime is not None else "inconnu"
        detail = f"le référentiel ne contient que les populations du millésime {held}, pas celles de {year}"
        raise InvalidInput(detail, errors=[{"location": "query", "field": "query.year", "detail": detail}])
    try:
        commune = catalogue.commune(insee)
    except UnknownCommune as exc:
        raise NotFound(f"aucune commune membre d'un EPCI n'a le code INSEE {insee}", insee=insee) from exc
    if commune.population is None:
        raise NotFound(f"le référentiel n'a pas de population pour la commune {commune.insee}", insee=commune.insee)
    return CommunePopulation(
        insee=commune.insee,
        name=commune.name,
        population=commune.population,
        year=year,
        figure=reference.figure,
        source_url=reference.source_url,
    )
