"""Who may do what in the tenancy service: one typed helper per kind of check.

The deployment belongs to one EPCI, so the realm role ``epci-admin`` administers it; an
EPCI admin whose token names an organization must name this EPCI's (``epci-<SIREN>``).
Another tenant's resource does not exist for the caller: 404, never 403 (docs/conventions.md,
"404 before 403").
"""

from __future__ import annotations

from socle_core.auth import Principal
from socle_core.errors import NotFound

ADMIN_ROLES = ("operator", "epci-admin")
REGISTRY_READER_ROLES = (*ADMIN_ROLES, "auditor")


def require_epci_admin(principal: Principal, epci_siren: str) -> None:
    """Onboarding, suspension: an operator, or the admin of this EPCI."""
    principal.require_role(*ADMIN_ROLES)
    if principal.has_any_role("operator"):
        return
    if principal.organization is not None and principal.organization != f"epci-{epci_siren}":
        raise NotFound(f"aucun EPCI de SIREN {epci_siren} n'est administré par ce compte")


def require_registry_reader(principal: Principal) -> None:
    """The whole registry: platform roles only (a tenant reads its own row, ``tenants.services.readable_tenant``)."""
    principal.require_role(*REGISTRY_READER_ROLES)
