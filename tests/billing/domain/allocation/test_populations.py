"""Billing reads a commune's INSEE population from the reference package, without tenancy."""

from __future__ import annotations

import subprocess
import sys

import pytest

from socle_billing.domain.allocation.populations import commune_population
from socle_core.errors import InvalidInput, NotFound

SOMMIERES = "30321"


def test_a_communes_population_of_the_references_millesime() -> None:
    population = commune_population(SOMMIERES, 2023)
    assert (population.insee, population.name, population.population) == (SOMMIERES, "Sommières", 5073)
    assert (population.year, population.figure) == (2023, "population_municipale")
    assert "insee.fr" in str(population.source_url)


def test_another_year_is_refused_not_answered_with_the_wrong_figures() -> None:
    with pytest.raises(InvalidInput) as refused:
        commune_population(SOMMIERES, 2019)
    assert (
        refused.value.detail == "le référentiel ne contient que les populations du millésime 2023, pas celles de 2019"
    )
    assert [e["field"] for e in refused.value.errors] == ["query.year"]


def test_an_unknown_commune_is_not_found() -> None:
    with pytest.raises(NotFound, match="99999"):
        commune_population("99999", 2023)


def test_billing_reads_populations_without_importing_tenancy() -> None:
    code = (
        "import sys; from socle_billing.domain.allocation.populations import commune_population; "
        f"commune_population({SOMMIERES!r}, 2023); "
        "print(sorted(m for m in sys.modules if m.startswith('socle_tenancy')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert result.stdout.strip() == "[]"
