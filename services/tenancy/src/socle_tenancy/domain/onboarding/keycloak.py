"""The part of Keycloak's admin REST API that onboarding needs, called with httpx.

Authenticated as the ``socle-platform`` service account (client credentials). Every
operation is written to be repeated safely: things are looked up before they are created,
and "already exists" answers are read back rather than treated as failures.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

import httpx
import structlog

from socle_core.errors import Conflict, ServiceUnavailable
from socle_tenancy.config import TenancySettings

log = structlog.get_logger("socle.tenancy.keycloak")


class KeycloakError(ServiceUnavailable):
    """Keycloak could not be reached or refused a request; a retry may succeed."""

    slug, title = "identity-provider-error", "Identity provider error"


class KeycloakConflict(Conflict):
    """Keycloak refuses for a reason a retry will not fix (e.g. a domain owned elsewhere)."""

    slug, title = "identity-provider-conflict", "Identity provider conflict"


class KeycloakAdmin:
    def __init__(self, settings: TenancySettings, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._base = settings.effective_keycloak_admin_url
        self._token_url = settings.keycloak_token_url
        self._client_id = settings.keycloak_client_id
        self._secret = settings.keycloak_client_secret
        self._http = httpx.AsyncClient(timeout=settings.keycloak_timeout_seconds, transport=transport)
        self._token: str | None = None
        self._token_expires = 0.0

    async def aclose(self) -> None:
        await self._http.aclose()

    async def access_token(self) -> str:
        """A token of the platform service account (cached until shortly before it expires).

        Also what the workflow sends to the other services it calls as the platform (billing).
        """
        if self._token and time.monotonic() < self._token_expires:
            return self._token
        if self._secret is None:
            raise KeycloakError(
                "the tenancy service has no Keycloak client secret: set SOCLE_TENANCY_KEYCLOAK_CLIENT_SECRET "
                f"(the secret of the {self._client_id!r} client)"
            )
        try:
            response = await self._http.post(
                self._token_url,
                data={
                    "grant_type": "client_credentials",
                    "client_id": self._client_id,
                    "client_secret": self._secret.get_secret_value(),
                },
            )
        except httpx.HTTPError as exc:
            raise KeycloakError(f"cannot reach Keycloak for a service-account token: {exc!r}") from exc
        if response.status_code != 200:
            raise KeycloakError(
                f"Keycloak refused the {self._client_id!r} client credentials ({response.status_code}): "
                "check SOCLE_TENANCY_KEYCLOAK_CLIENT_ID and SOCLE_TENANCY_KEYCLOAK_CLIENT_SECRET"
            )
        body = response.json()
        self._token = str(body["access_token"])
        self._token_expires = time.monotonic() + max(int(body.get("expires_in", 60)) - 15, 5)
        return self._token

    async def _request(self, method: str, path: str, *, ok: tuple[int, ...] = (), **kwargs: Any) -> httpx.Response:
        token = await self.access_token()
        try:
            response = await self._http.request(
                method, f"{self._base}{path}", headers={"Authorization": f"Bearer {token}"}, **kwargs
            )
        except httpx.HTTPError as exc:
            raise KeycloakError(f"Keycloak admin API {method} {path} failed: {exc!r}") from exc
        if response.status_code < 400 or response.status_code in ok:
            return response
        detail = _error_message(response)
        if response.status_code == 409:
            raise KeycloakConflict(f"Keycloak refused {method} {path}: {detail}")
        raise KeycloakError(f"Keycloak admin API {method} {path} answered {response.status_code}: {detail}")

    # -- organizations -----------------------------------------------------------------

    async def find_organization(self, tenant_id: str) -> dict[str, Any] | None:
        """The organization whose ``tenant_id`` attribute is this tenant, if any."""
        response = await self._request(
            "GET", "/organizations", params={"q": f"tenant_id:{tenant_id}", "briefRepresentation": "false"}
        )
        found = [o for o in response.json() if tenant_id in (o.get("attributes") or {}).get("tenant_id", [])]
        return found[0] if found else None

    async def get_organization(self, organization_id: str) -> dict[str, Any]:
        return dict((await self._request("GET", f"/organizations/{quote(organization_id)}")).json())

    async def ensure_organization(
        self, *, tenant_id: str, alias: str, name: str, domains: list[str], description: str, siren: str | None = None
    ) -> dict[str, Any]:
        """Create the tenant's organization, or return the one a previous attempt created.

        ``siren`` is kept as an attribute: the identity service places agents brokered from
        ProConnect in the organization whose SIREN starts their SIRET. An organization
        created before that attribute existed gets it added here.
        """
        attributes = {"tenant_id": [tenant_id], **({"siren": [siren]} if siren else {})}
        existing = await self.find_organization(tenant_id)
        if existing is not None:
            representation = await self.get_organization(str(existing["id"]))
            current = representation.get("attributes") or {}
            if any(current.get(key) != value for key, value in attributes.items()):
                representation["attributes"] = {**current, **attributes}
                await self._request("PUT", f"/organizations/{quote(str(existing['id']))}", json=representation)
                representation = await self.get_organization(str(existing["id"]))
            return representation
        response = await self._request(
            "POST",
            "/organizations",
            json={
                "name": name,
                "alias": alias,
                "enabled": True,
                "description": description,
                "attributes": attributes,
                "domains": [{"name": d, "verified": False} for d in domains],
            },
        )
        organization_id = response.headers["Location"].rstrip("/").rsplit("/", 1)[-1]
        log.info("keycloak_organization_created", alias=alias, organization_id=organization_id)
        return await self.get_organization(organization_id)

    async def set_organization_enabled(self, organization_id: str, enabled: bool) -> None:
        representation = await self.get_organization(organization_id)
        if representation.get("enabled") is enabled:
            return
        representation["enabled"] = enabled
        await self._request("PUT", f"/organizations/{quote(organization_id)}", json=representation)

    async def set_organization_domains(self, organization_id: str, domains: list[str]) -> None:
        """Replace the organization's e-mail domains (kept ones keep their verified flag)."""
        representation = await self.get_organization(organization_id)
        current = {d["name"]: d for d in representation.get("domains") or []}
        if set(current) == set(domains):
            return
        representation["domains"] = [current.get(d, {"name": d, "verified": False}) for d in domains]
        await self._request("PUT", f"/organizations/{quote(organization_id)}", json=representation)

    async def organization_members(self, organization_id: str) -> list[dict[str, Any]]:
        """Every member of the organization (paged through Keycloak's 100-per-page API)."""
        members: list[dict[str, Any]] = []
        while True:
            page = (
                await self._request(
                    "GET",
                    f"/organizations/{quote(organization_id)}/members",
                    params={"first": len(members), "max": 100},
                )
            ).json()
            members.extend(page)
            if len(page) < 100:
                return members

    async def delete_organization(self, organization_id: str) -> bool:
        """Delete the organization and the identity providers linked to it; False if it was already gone.

        Keycloak keeps a linked provider (a commune's own IdP) when its organization is
        deleted: left alone, it would still log people in for a tenant that no longer exists.
        The members' accounts stay (they may belong to other organizations).
        """
        linked = await self._request("GET", f"/organizations/{quote(organization_id)}/identity-providers", ok=(404,))
        if linked.status_code == 200:
            for provider in linked.json():
                alias = str(provider["alias"])
                await self._request("DELETE", f"/identity-provider/instances/{quote(alias)}", ok=(404,))
                log.info("keycloak_identity_provider_deleted", alias=alias, organization_id=organization_id)
        response = await self._request("DELETE", f"/organizations/{quote(organization_id)}", ok=(404,))
        return response.status_code != 404

    async def send_invitation(self, user_id: str, actions: list[str], *, lifespan_seconds: int = 7 * 24 * 3600) -> str:
        """E-mail the user Keycloak's link to complete ``actions``; '' when sent, else why not.

        Best effort: the account and its role exist whether or not the mail leaves (a realm
        without SMTP answers 500), and an administrator can send it again.
        """
        if not actions:
            return ""
        try:
            await self._request(
                "PUT",
                f"/users/{quote(user_id)}/execute-actions-email",
                params={"lifespan": lifespan_seconds},
                json=actions,
            )
        except KeycloakError as exc:
            log.warning("keycloak_invitation_email_failed", user_id=user_id, error=str(exc))
            return str(exc)
        return ""

    # -- users -------------------------------------------------------------------------

    async def ensure_invited_user(self, email: str, *, realm_role: str) -> dict[str, Any]:
        """The user with this email (created with pending required actions), holding ``realm_role``."""
        response = await self._request("GET", "/users", params={"email": email, "exact": "true"})
        users = [u for u in response.json() if str(u.get("email", "")).lower() == email.lower()]
        if users:
            user = dict(users[0])
        else:
            created = await self._request(
                "POST",
                "/users",
                json={
                    "username": email,
                    "email": email,
                    "enabled": True,
                    "emailVerified": False,
                    "requiredActions": ["VERIFY_EMAIL", "UPDATE_PASSWORD"],
                },
            )
            user_id = created.headers["Location"].rstrip("/").rsplit("/", 1)[-1]
            user = dict((await self._request("GET", f"/users/{quote(user_id)}")).json())
            log.info("keycloak_user_invited", user_id=user_id)
        role = (await self._request("GET", f"/roles/{quote(realm_role)}")).json()
        await self._request("POST", f"/users/{quote(str(user['id']))}/role-mappings/realm", json=[role])
        return user

    async def ensure_member(self, organization_id: str, user_id: str) -> None:
        """Add the user to the organization; already being a member is fine."""
        await self._request("POST", f"/organizations/{quote(organization_id)}/members", json=user_id, ok=(409,))

    async def is_member(self, organization_id: str, user_id: str) -> bool:
        response = await self._request(
            "GET", f"/organizations/{quote(organization_id)}/members/{quote(user_id)}", ok=(404,)
        )
        return response.status_code == 200


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200] or response.reason_phrase
    if isinstance(body, dict):
        return str(body.get("errorMessage") or body.get("error_description") or body.get("error") or body)[:300]
    return str(body)[:300]
