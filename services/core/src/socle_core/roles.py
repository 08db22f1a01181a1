"""The realm roles of Socle, once (``infra/keycloak/socle-realm.json``, docs/roles.md).

Every route's access rule (``socle_core.access``) names its roles with this enum, so a role
cannot be misspelt in one service and a search finds every route a role may call.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    OPERATOR = "operator"
    EPCI_ADMIN = "epci-admin"
    COMMUNE_ADMIN = "commune-admin"
    COMMUNE_AGENT = "commune-agent"
    AUDITOR = "auditor"
    PARTNER = "partner"
    DEVICE = "device"


#: Roles a commune's members hold inside their commune (not platform-wide).
COMMUNE_ROLES = (Role.COMMUNE_ADMIN, Role.COMMUNE_AGENT)
#: Roles whose holders act platform-wide, never as a commune's member.
PLATFORM_ROLES = (Role.OPERATOR, Role.AUDITOR, Role.PARTNER, Role.DEVICE)
