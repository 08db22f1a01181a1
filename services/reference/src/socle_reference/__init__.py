"""Official reference of EPCIs and member communes (``@etalab/decoupage-administratif``).

Pure standard library and a package of its own, so any service (tenancy, billing, console)
reads the same official figures without importing another service.
"""

from .catalogue import (
    Epci,
    MemberCommune,
    PopulationReference,
    ReferenceCatalogue,
    ReferenceDataError,
    ReferenceSource,
    UnknownCommune,
    UnknownEpci,
    UnknownReference,
    default_catalogue,
    resolve_extract,
)
from .codes import is_valid_insee, is_valid_siren, siren_of_siret
from .declaration import DeclarationIssue, check_declaration

__all__ = [
    "DeclarationIssue",
    "Epci",
    "MemberCommune",
    "PopulationReference",
    "ReferenceCatalogue",
    "ReferenceDataError",
    "ReferenceSource",
    "UnknownCommune",
    "UnknownEpci",
    "UnknownReference",
    "check_declaration",
    "default_catalogue",
    "is_valid_insee",
    "is_valid_siren",
    "resolve_extract",
    "siren_of_siret",
]
