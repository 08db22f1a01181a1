"""The tenant an event concerns, read from Keycloak at import time (ADR 0007, "Feeding from Keycloak").

- a person's own act (a login, a token, a logout): only the tenant they acted in, the
  organization the scope they asked for names (``organization:<alias>``, the console's
  commune choice), else their one organization; an agent of several communes who named none
  acted in no single one, so the event goes to the platform's chain, never to every commune
  they belong to (their addresses, sessions and failures are no other commune's business);
- a change made to a person through the admin API (a role, a membership): the tenants of the
  organizations they belong to now, since it applies in each of them;
- a client (a service account): its ``socle.tenant_id`` attribute, else the tenant of its
  hardcoded ``organization`` claim; a revoked (deleted) service account by the organization
  alias in its client id ``sa-<alias>-<12 hex>`` (an admin event names a client by internal
  id: once deleted, it is found through the client id of an earlier event of the same run);
- an organization: its ``tenant_id`` attribute.

Anything else (the platform's own clients, a person in no organization, an unknown username,
a deleted user or organization) goes to the platform's chain. Each run caches its answers.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from socle_identity.domain.audit_feed.translation import Subject
from socle_identity.keycloak import KeycloakAdminClient
from socle_identity.keycloak.organizations import TENANT_ATTRIBUTE

#: Client attribute set on every service account (keycloak/service_accounts.py).
CLIENT_TENANT_ATTRIBUTE = "socle.tenant_id"
_SERVICE_ACCOUNT_CLIENT = re.compile(r"^sa-(?P<alias>.+)-[0-9a-f]{12}$")


def _uuid(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def organization_tenant(rep: dict[str, Any]) -> uuid.UUID | None:
    values = (rep.get("attributes") or {}).get(TENANT_ATTRIBUTE) or []
    return _uuid(values[0]) if values else None


def client_tenant(rep: dict[str, Any]) -> uuid.UUID | None:
    """The tenant a client acts for: its attribute, else its hardcoded single-organization claim."""
    values = (rep.get("attributes") or {}).get(CLIENT_TENANT_ATTRIBUTE)
    if values:
        return _uuid(values[0] if isinstance(values, list) else values)
    for mapper in rep.get("protocolMappers") or []:
        config = mapper.get("config") or {}
        if mapper.get("protocolMapper") != "oidc-hardcoded-claim-mapper" or config.get("claim.name") != "organization":
            continue
        try:
            claim = json.loads(config.get("claim.value") or "")
        except ValueError:
            return None
        if isinstance(claim, dict) and len(claim) == 1:
            tenants = (next(iter(claim.values())) or {}).get(TENANT_ATTRIBUTE) or []
            return _uuid(tenants[0]) if len(tenants) == 1 else None
    return None


class TenantResolver:
    """Looks tenants up through the admin API, each user, client and organization once per run."""

    def __init__(self, keycloak: KeycloakAdminClient) -> None:
        self.keycloak = keycloak
        self._users: dict[str, dict[str, uuid.UUID]] = {}
        self._clients: dict[str, uuid.UUID | None] = {}
        self._client_uuids: dict[str, uuid.UUID | None] = {}
        self._organizations: dict[str, uuid.UUID | None] = {}
        self._aliases: dict[str, uuid.UUID | None] = {}

    async def tenants_of(self, subject: Subject) -> list[uuid.UUID]:
        """The tenants whose chains get the event, in id order; empty means the platform's chain."""
        found: set[uuid.UUID] = set()
        if subject.kind == "user" and subject.id:
            memberships = await self._user(subject.id)
            chosen = {memberships[a] for a in subject.organizations if a in memberships}
            if subject.acting:
                found = chosen or (set(memberships.values()) if len(memberships) == 1 else set())
            else:
                found = chosen or set(memberships.values())
        elif subject.kind == "client" and subject.id:
            tenant = await self._client(subject.id)
            found = {tenant} if tenant else set()
        elif subject.kind == "client_uuid" and subject.id:
            tenant = await self._client_by_uuid(subject.id, subject.client_id)
            found = {tenant} if tenant else set()
        elif subject.kind == "organization" and subject.id:
            tenant = await self._organization(subject.id)
            found = {tenant} if tenant else set()
        return sorted(found)

    async def _user(self, user_id: str) -> dict[str, uuid.UUID]:
        """The user's organizations: alias → tenant."""
        if user_id not in self._users:
            response = await self.keycloak.request(
                "GET",
                f"/organizations/members/{user_id}/organizations",
                params={"briefRepresentation": "false"},
                expected=(400, 404),
            )
            reps = response.json() if response.status_code == 200 else []
            self._users[user_id] = {
                str(rep["alias"]): tenant for rep in reps if (tenant := organization_tenant(rep)) is not None
            }
        return self._users[user_id]

    async def _client(self, client_id: str) -> uuid.UUID | None:
        if client_id not in self._clients:
            reps = (await self.keycloak.request("GET", "/clients", params={"clientId": client_id})).json()
            match = [rep for rep in reps if rep.get("clientId") == client_id]
            if match:
                self._clients[client_id] = client_tenant(match[0])
            elif revoked := _SERVICE_ACCOUNT_CLIENT.match(client_id):
                self._clients[client_id] = await self._alias(revoked["alias"])
            else:
                self._clients[client_id] = None
        return self._clients[client_id]

    async def _client_by_uuid(self, internal_id: str, client_id: str | None) -> uuid.UUID | None:
        """A client by internal id; once deleted, by the client id an earlier event of the run named."""
        if self._client_uuids.get(internal_id) is None:
            response = await self.keycloak.request("GET", f"/clients/{internal_id}", expected=(404,))
            if response.status_code == 200:
                self._client_uuids[internal_id] = client_tenant(response.json())
            elif client_id:
                self._client_uuids[internal_id] = await self._client(client_id)
            else:
                self._client_uuids.setdefault(internal_id, None)
        return self._client_uuids[internal_id]

    async def _organization(self, organization_id: str) -> uuid.UUID | None:
        if organization_id not in self._organizations:
            response = await self.keycloak.request("GET", f"/organizations/{organization_id}", expected=(404,))
            tenant = organization_tenant(response.json()) if response.status_code == 200 else None
            self._organizations[organization_id] = tenant
        return self._organizations[organization_id]

    async def _alias(self, alias: str) -> uuid.UUID | None:
        if alias not in self._aliases:
            reps = (
                await self.keycloak.request(
                    "GET",
                    "/organizations",
                    params={"search": alias, "exact": "true", "briefRepresentation": "false"},
                )
            ).json()
            match = [rep for rep in reps if rep.get("alias") == alias]
            self._aliases[alias] = organization_tenant(match[0]) if match else None
        return self._aliases[alias]
