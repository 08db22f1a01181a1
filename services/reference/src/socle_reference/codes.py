"""Official identifiers of French local authorities: SIREN and INSEE commune code.

Checked here once, so the reference extract, tenant declarations and ProConnect claims
(whose ``siret`` starts with the organisation's SIREN) all agree on what "valid" means.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

_SIREN_RE: Final = re.compile(r"[0-9]{9}")
_SIRET_RE: Final = re.compile(r"[0-9]{14}")
# Départements 01..95 with Corsica as 2A/2B (no "20" since 1976), then 97x/98x overseas;
# 00, 96 and 99 (born abroad) are never commune codes.
_INSEE_RE: Final = re.compile(r"(?:0[1-9]|1[0-9]|2[1-9AB]|[3-8][0-9]|9[0-578])[0-9]{3}")


def luhn_ok(digits: str) -> bool:
    """Luhn checksum, the control key of SIREN and SIRET numbers."""
    if not digits.isdigit():
        return False
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def normalise_siren(value: str) -> str:
    """Strip the spaces people type in SIRENs "243 000 296"."""
    return "".join(value.split())


def is_valid_siren(value: str) -> bool:
    """Nine digits with a valid Luhn key."""
    return bool(_SIREN_RE.fullmatch(value)) and luhn_ok(value)


def siren_problem(value: str) -> str | None:
    """Why ``value`` is not a SIREN, or ``None`` if it is one."""
    if not _SIREN_RE.fullmatch(value):
        return f"le SIREN {value!r} doit compter exactement 9 chiffres"
    if not luhn_ok(value):
        return f"le SIREN {value!r} a une clé de contrôle (Luhn) fausse"
    return None


def siren_of_siret(siret: str) -> str:
    """The SIREN of an establishment: ProConnect tokens carry a SIRET, tenants a SIREN."""
    siret = normalise_siren(siret)
    if not _SIRET_RE.fullmatch(siret):
        raise ValueError(f"le SIRET {siret!r} doit compter exactement 14 chiffres")
    return siret[:9]


def normalise_insee(value: str) -> str:
    """INSEE codes are case-sensitive only by accident: "2a004" means "2A004"."""
    return value.strip().upper()


def is_valid_insee(value: str) -> bool:
    """Five characters: département (incl. 2A/2B) then commune number."""
    return bool(_INSEE_RE.fullmatch(value))


def insee_problem(value: str) -> str | None:
    """Why ``value`` is not an INSEE commune code, or ``None`` if it is one."""
    if _INSEE_RE.fullmatch(value):
        return None
    return (
        f"le code INSEE {value!r} doit compter 5 caractères : le département (01-95, 2A/2B pour "
        "la Corse, 97/98 outre-mer) puis le numéro de la commune"
    )


def departement_of_insee(insee: str) -> str:
    """Département code a commune code starts with (3 characters overseas)."""
    return insee[:3] if insee.startswith("97") else insee[:2]


_LIGATURES: Final = str.maketrans({"œ": "oe", "Œ": "oe", "æ": "ae", "Æ": "ae"})
_NON_WORD: Final = re.compile(r"[^0-9a-z]+")


def fold(text: str) -> str:
    """Case-, accent- and punctuation-insensitive form of a French name, for search.

    "Cœur-de-l'Hérault" and "coeur de l herault" fold to the same string.
    """
    text = text.translate(_LIGATURES)
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return _NON_WORD.sub(" ", stripped.casefold()).strip()
