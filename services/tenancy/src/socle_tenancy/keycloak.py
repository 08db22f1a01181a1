"""The part of Keycloak's admin REST API that tenancy needs (onboarding, offboarding, the tenants' API).

Calls go through the shared core's admin client (``socle_core.keycloak_admin``: the
``socle-platform`` service account's token, retries with backoff, typed errors), whose
failures leave here as the core's problems, the same in every service (``keycloak_problem``:
503 when Keycloak does not answer, 502 when it refuses our credentials, 409 for its
conflicts, 422 for its other refusals). Every operation is written to be repeated safely:
things are looked up before they are created, and "already exists" answers are read back
rather than treated as failures.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
import structlog

from socle_core import keycloak_admin
from socle_core.errors import Conflict, Problem
from socle_core.keycloak_admin import IdentityProviderError, KeycloakAdminClient, keycloak_problem, location_id
from socle_tenancy.config import TenancySettings

log = structlog.get_logger("socle.tenancy.keycloak")

#: The realm's client of the web console, where an invitation's last page leads.
CONSOLE_CLIENT_ID = "socle-console"


#: What the caller learns when Keycloak could not send an invitation (its relay down, no SMTP).
INVITATION_NOT_SENT = (
    "le fournisseur d'identité n'a pas pu envoyer l'e-mail d'invitation : le compte existe, renvoyez l'invitation "
    "plus tard"
)

#: Realm roles of platform-wide accounts, which onboarding never turns into a commune's admin.
PLATFORM_ROLES = frozenset({"operator", "auditor", "partner", "device"})


class KeycloakAdmin:
    def __init__(self, settings: TenancySettings, transport: httpx.AsyncBaseTransport | None = None) -> None:
        base, _, realm = settings.oidc_issuer.rpartition("/realms/")
        secret = settings.keycloak_client_secret
        self._configured = secret is not None
        self._client_id = settings.keycloak_client_id
        self._console_url = settings.console_url
        self._client = KeycloakAdminClient(
            base,
            realm,
            settings.keycloak_client_id,
            secret.get_secret_value() if secret is not None else "",
            admin_url=settings.effective_keycloak_admin_url,
            credentials_hint="SOCLE_TENANCY_KEYCLOAK_CLIENT_ID et SOCLE_TENANCY_KEYCLOAK_CLIENT_SECRET",
            timeout_seconds=settings.keycloak_timeout_seconds,
            transport=transport,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    def _require_secret(self) -> None:
        if not self._configured:
            log.error("keycloak_secret_missing", client_id=self._client_id)
            raise IdentityProviderError(
                "le service tenancy n'a pas de secret pour le fournisseur d'identité : l'exploitant doit définir "
                f"SOCLE_TENANCY_KEYCLOAK_CLIENT_SECRET (le secret du client {self._client_id!r})"
            )

    async def access_token(self) -> str:
        """A token of the platform service account (cached by the core client until shortly before it expires).

        Also what the workflow sends to the other services it calls as the platform (billing).
        """
        self._require_secret()
        try:
            return await self._client.access_token()
        except keycloak_admin.KeycloakError as exc:
            raise keycloak_problem(exc) from exc

    async def _request(
        self, method: str, path: str, *, ok: tuple[int, ...] = (), attempts: int | None = None, **kwargs: Any
    ) -> httpx.Response:
        self._require_secret()
        try:
            return await self._client.request(method, path, expected=ok, attempts=attempts, **kwargs)
        except keycloak_admin.KeycloakError as exc:
            raise keycloak_problem(exc) from exc

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
        organization_id = location_id(response)
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

    async def send_invitation(self, user_id: str, actions: list[str]) -> str:
        """E-mail the user Keycloak's link to complete ``actions``; '' when sent, else why not.

        The realm's e-mail theme (``infra/keycloak/themes/socle``) says what Socle is and names
        the user's organizations as who invites. With a console URL, the page after the last
        action links onward to the console (``socle-console`` client, redirect ``<console>/``).
        The link works for the realm's ``actionTokenGeneratedByAdminLifespan`` (12 hours), once
        when ``actions`` hold a one-time action such as ``UPDATE_PASSWORD`` (ADR 0010).

        Best effort: the account and its role exist whether or not the mail leaves (a realm
        without SMTP answers 500), and an administrator can send it again.
        """
        if not actions:
            return ""
        params: dict[str, str] = {}
        if self._console_url:
            params.update(client_id=CONSOLE_CLIENT_ID, redirect_uri=f"{self._console_url}/")
        try:
            await self._request(
                "PUT",
                f"/users/{quote(user_id)}/execute-actions-email",
                params=params,
                json=actions,
                attempts=1,  # Keycloak's 500 here is its mail relay failing: not worth holding onboarding up
            )
        except Problem as exc:  # Keycloak's own words are in the log (keycloak_failure)
            log.warning("keycloak_invitation_email_failed", user_id=user_id, error=exc.detail)
            return INVITATION_NOT_SENT
        return ""

    # -- users -------------------------------------------------------------------------

    async def ensure_invited_user(self, email: str, *, realm_role: str, organization_id: str) -> dict[str, Any]:
        """The user with this email (created with pending required actions), holding ``realm_role``.

        A new account also has to enrol a one-time password before its first login (every admin
        role requires one): the invitation's link walks through it after the password. An existing
        account is taken only when it belongs to no other organization and holds no platform role
        (ADR 0010): otherwise onboarding would hand a commune's administration to another
        commune's staff, or give platform staff a commune role.
        """
        user, created = await self.ensure_user(email, otp=True)
        if not created:
            await self._refuse_foreign_account(str(user["id"]), organization_id)
        await self.grant_realm_roles(str(user["id"]), [realm_role])
        return user

    async def _refuse_foreign_account(self, user_id: str, organization_id: str) -> None:
        memberships = (
            await self._request(
                "GET",
                f"/organizations/members/{quote(user_id)}/organizations",
                params={"briefRepresentation": "true"},
            )
        ).json()
        elsewhere = [m for m in memberships if m.get("id") != organization_id]
        platform = set(await self.realm_roles(user_id)) & PLATFORM_ROLES
        user = (await self._request("GET", f"/users/{quote(user_id)}")).json()
        if elsewhere or platform or user.get("serviceAccountClientLink"):
            raise Conflict(
                "l'adresse du premier administrateur est celle d'un compte existant d'une autre collectivité "
                "ou de la plateforme : indiquez une autre adresse"
            )

    async def ensure_user(
        self, email: str, *, first_name: str | None = None, last_name: str | None = None, otp: bool = False
    ) -> tuple[dict[str, Any], bool]:
        """The user with this email, or a new one without password (required actions pending); True if new.

        ``otp``: the account must also enrol a one-time password (an admin role requires one).
        """
        response = await self._request("GET", "/users", params={"email": email, "exact": "true"})
        users = [u for u in response.json() if str(u.get("email", "")).lower() == email.lower()]
        if users:
            return dict(users[0]), False
        names = {k: v for k, v in (("firstName", first_name), ("lastName", last_name)) if v}
        created = await self._request(
            "POST",
            "/users",
            json={
                "username": email,
                "email": email,
                "enabled": True,
                "emailVerified": False,
                "requiredActions": ["VERIFY_EMAIL", "UPDATE_PASSWORD", *(["CONFIGURE_TOTP"] if otp else [])],
                **names,
            },
        )
        user_id = location_id(created)
        log.info("keycloak_user_invited", user_id=user_id)
        return dict((await self._request("GET", f"/users/{quote(user_id)}")).json()), True

    async def grant_realm_roles(self, user_id: str, roles: list[str]) -> None:
        reps = [(await self._request("GET", f"/roles/{quote(role)}")).json() for role in roles]
        await self._request("POST", f"/users/{quote(user_id)}/role-mappings/realm", json=reps)

    async def realm_roles(self, user_id: str) -> list[str]:
        mappings = (await self._request("GET", f"/users/{quote(user_id)}/role-mappings/realm")).json()
        return sorted(str(r["name"]) for r in mappings)

    async def ensure_member(self, organization_id: str, user_id: str) -> None:
        """Add the user to the organization; already being a member is fine."""
        await self._request("POST", f"/organizations/{quote(organization_id)}/members", json=user_id, ok=(409,))

    async def is_member(self, organization_id: str, user_id: str) -> bool:
        response = await self._request(
            "GET", f"/organizations/{quote(organization_id)}/members/{quote(user_id)}", ok=(404,)
        )
        return response.status_code == 200
