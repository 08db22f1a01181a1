"""Keycloak organizations, one per tenant (ADR 0004): alias = stable tenant key, attribute tenant_id."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from socle_core.keycloak_admin import KeycloakAdminClient, KeycloakConflict, KeycloakNotFound, location_id

TENANT_ATTRIBUTE = "tenant_id"
_PAGE = 100


@dataclass(frozen=True)
class Organization:
    id: str
    alias: str
    name: str
    tenant_id: UUID | None
    enabled: bool
    domains: tuple[str, ...]

    @classmethod
    def from_representation(cls, rep: dict[str, Any]) -> Organization:
        raw = (rep.get("attributes") or {}).get(TENANT_ATTRIBUTE) or []
        return cls(
            id=str(rep["id"]),
            alias=str(rep["alias"]),
            name=str(rep["name"]),
            tenant_id=UUID(raw[0]) if raw else None,
            enabled=bool(rep.get("enabled", True)),
            domains=tuple(sorted(str(d["name"]) for d in rep.get("domains") or [])),
        )


class Organizations:
    """Provisioning of tenant organizations; every write is idempotent."""

    def __init__(self, client: KeycloakAdminClient) -> None:
        self.client = client

    async def get(self, alias: str) -> Organization | None:
        """The organization with this alias, or None (aliases are unique and immutable)."""
        first = 0
        while True:
            page = (
                await self.client.request(
                    "GET", "/organizations", params={"first": first, "max": _PAGE, "briefRepresentation": "false"}
                )
            ).json()
            for rep in page:
                if rep.get("alias") == alias:
                    return Organization.from_representation(rep)
            if len(page) < _PAGE:
                return None
            first += _PAGE

    async def require(self, alias: str) -> Organization:
        organization = await self.get(alias)
        if organization is None:
            raise KeycloakNotFound(404, f"aucune organisation d'alias {alias!r}", method="GET", path="/organizations")
        return organization

    async def ensure(self, alias: str, *, name: str, tenant_id: UUID, domains: tuple[str, ...] = ()) -> Organization:
        """Create the tenant's organization, or bring an existing one to the wanted name and domains.

        An alias already bound to another tenant is a conflict, never silently rebound.
        """
        wanted_domains = tuple(sorted({d.lower() for d in domains}))
        existing = await self.get(alias)
        if existing is None:
            body = {
                "alias": alias,
                "name": name,
                "enabled": True,
                "attributes": {TENANT_ATTRIBUTE: [str(tenant_id)]},
                "domains": [{"name": d, "verified": False} for d in wanted_domains],
            }
            try:
                await self.client.request("POST", "/organizations", json=body)
            except KeycloakConflict:
                existing = await self.get(alias)  # created concurrently: fall through to the checks
                if existing is None:
                    raise
            else:
                return await self.require(alias)
        if existing.tenant_id != tenant_id:
            raise KeycloakConflict(
                409,
                f"l'organisation {alias!r} appartient à la collectivité {existing.tenant_id}, pas à {tenant_id}",
                method="POST",
                path="/organizations",
            )
        if existing.name != name or existing.domains != wanted_domains:
            await self._update(existing.id, name=name, domains=[{"name": d, "verified": False} for d in wanted_domains])
            return await self.require(alias)
        return existing

    async def _update(self, org_id: str, **changes: Any) -> None:
        rep = (await self.client.request("GET", f"/organizations/{org_id}")).json()
        rep.update(changes)
        await self.client.request("PUT", f"/organizations/{org_id}", json=rep)

    async def suspend(self, alias: str) -> Organization:
        """Suspend a tenant: its organization is disabled and its members cannot log in.

        Keycloak only drops a disabled organization from tokens; its members could still log
        in. So every member who belongs to no other enabled organization is also disabled and
        their sessions are ended; the group ``suspended-<alias>`` records exactly whom we
        disabled, so that ``resume`` re-enables them and nobody else. A member shared with
        another commune keeps logging in there, without this tenant in their tokens.
        """
        organization = await self.require(alias)
        if organization.enabled:
            await self._update(organization.id, enabled=False)
        group_id = await self._suspension_group(alias, create=True)
        assert group_id is not None
        for member in await self.members(alias):
            if await self._other_enabled_organization(member["id"], organization.id):
                continue
            await self.client.request("PUT", f"/users/{member['id']}/groups/{group_id}")
            user = (await self.client.request("GET", f"/users/{member['id']}")).json()
            if user.get("enabled", True):
                user["enabled"] = False
                await self.client.request("PUT", f"/users/{member['id']}", json=user)
            await self.client.request("POST", f"/users/{member['id']}/logout")
        return await self.require(alias)

    async def resume(self, alias: str) -> Organization:
        """Lift a suspension: the organization and the members ``suspend`` disabled are enabled again."""
        organization = await self.require(alias)
        group_id = await self._suspension_group(alias, create=False)
        if group_id is not None:
            members = (await self.client.request("GET", f"/groups/{group_id}/members", params={"max": 10000})).json()
            for member in members:
                user = (await self.client.request("GET", f"/users/{member['id']}")).json()
                user["enabled"] = True
                await self.client.request("PUT", f"/users/{member['id']}", json=user)
            await self.client.request("DELETE", f"/groups/{group_id}", expected=(404,))
        if not organization.enabled:
            await self._update(organization.id, enabled=True)
        return await self.require(alias)

    async def _suspension_group(self, alias: str, *, create: bool) -> str | None:
        name = f"suspended-{alias}"
        found = (await self.client.request("GET", "/groups", params={"search": name, "exact": "true", "max": 2})).json()
        for group in found:
            if group.get("name") == name:
                return str(group["id"])
        if not create:
            return None
        response = await self.client.request("POST", "/groups", json={"name": name})
        return location_id(response)

    async def _other_enabled_organization(self, user_id: str, organization_id: str) -> bool:
        memberships = (await self.client.request("GET", f"/organizations/members/{user_id}/organizations")).json()
        return any(m["id"] != organization_id and m.get("enabled", True) for m in memberships)

    async def delete(self, alias: str) -> bool:
        """Delete the organization (memberships go with it); False when it did not exist."""
        organization = await self.get(alias)
        if organization is None:
            return False
        response = await self.client.request("DELETE", f"/organizations/{organization.id}", expected=(404,))
        return response.status_code != 404

    async def add_member(self, alias: str, user_id: str) -> None:
        """Make an existing realm user a member; already being one is fine."""
        organization = await self.require(alias)
        await self.client.request("POST", f"/organizations/{organization.id}/members", json=user_id, expected=(409,))

    async def remove_member(self, alias: str, user_id: str) -> None:
        """End a membership; not being a member is fine."""
        organization = await self.require(alias)
        await self.client.request("DELETE", f"/organizations/{organization.id}/members/{user_id}", expected=(404,))

    async def members(self, alias: str) -> list[dict[str, Any]]:
        organization = await self.require(alias)
        return list(
            (await self.client.request("GET", f"/organizations/{organization.id}/members", params={"max": 1000})).json()
        )

    async def invite(self, alias: str, email: str, *, first_name: str = "", last_name: str = "") -> None:
        """Send Keycloak's invitation email (the realm needs an SMTP server configured)."""
        organization = await self.require(alias)
        await self.client.request(
            "POST",
            f"/organizations/{organization.id}/members/invite-user",
            data={"email": email, "firstName": first_name, "lastName": last_name},
        )


__all__ = ["TENANT_ATTRIBUTE", "Organization", "Organizations"]
