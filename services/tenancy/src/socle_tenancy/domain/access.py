"""Who may do what in the tenancy service: the role sets its routes declare, and the EPCI check.

The deployment belongs to one EPCI, so the realm role ``epci-admin`` administers it; an
EPCI admin whose token names an organization must name this EPCI's (``epci-<SIREN>``): that
depends on the EPCI a request names, so handlers check it with ``require_epci_admin``. The
roles themselves are declared on each route (``socle_core.access``). Another tenant's
resource does not exist for the caller: 404, never 403 (docs/conventions.md, "404 before 403").
"""

from __future__ import annotations

from socle_core import access
from socle_core.auth import Principal
from socle_core.errors import NotFound
from socle_core.roles import Role

#: Administer the EPCI's registry: onboarding, suspension, offboarding, quotas.
ADMINS = (Role.OPERATOR, Role.EPCI_ADMIN)
#: Read the whole registry (metadata).
REGISTRY_READERS = (*ADMINS, Role.AUDITOR)
#: Run the isolation report, verify the audit chains.
AUDITORS = (Role.AUDITOR, Role.OPERATOR)


def epci_admin(why: str) -> access.Access:
    """A route for the operator and the EPCI's admin (each handler checks which EPCI)."""
    return access.platform(*ADMINS, why=why)


def require_epci_admin(principal: Principal, epci_siren: str) -> None:
    """An operator, or the admin of this EPCI (the route has admitted only these two roles)."""
    if principal.has_any_role(Role.OPERATOR):
        return
    if principal.organization is not None and principal.organization != f"epci-{epci_siren}":
        raise NotFound(f"aucun EPCI de SIREN {epci_siren} n'est administré par ce compte")
