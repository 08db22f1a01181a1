"""Test-side access to the real Keycloak's admin REST API (master admin account)."""

from __future__ import annotations

import json
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from socle_devstack.keycloak import REALM, KeycloakServer
from tests.support.registry import register_tenant


def admin_api(keycloak: KeycloakServer, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """The admin REST API of any realm of the test Keycloak (``path`` starts after ``/admin/realms``)."""
    response = httpx.request(
        method,
        f"{keycloak.url}/admin/realms{path}",
        headers={"Authorization": f"Bearer {keycloak.admin_token()}"},
        timeout=20,
        **kwargs,
    )
    assert response.status_code < 400, f"{method} {path}: {response.status_code} {response.text}"
    return response


@dataclass
class ClientCredentials:
    client_id: str
    secret: str
    internal_id: str


class KeycloakAdmin:
    def __init__(self, server: KeycloakServer) -> None:
        self.server = server
        self.base = f"{server.url}/admin/realms/{REALM}"

    def _client(self) -> httpx.Client:
        return httpx.Client(headers={"Authorization": f"Bearer {self.server.admin_token()}"}, timeout=20)

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        with self._client() as client:
            response = client.request(method, f"{self.base}{path}", **kwargs)
        if response.status_code >= 400:
            raise AssertionError(f"{method} {path}: {response.status_code} {response.text}")
        return response

    def create_client(
        self,
        client_id: str | None = None,
        *,
        audience: str | None = "socle-api",
        organization: tuple[str, uuid.UUID] | None = None,
        roles: tuple[str, ...] = (),
        access_token_lifespan: int | None = None,
        direct_access: bool = False,
    ) -> ClientCredentials:
        """A confidential client-credentials client, optionally bound to one tenant."""
        client_id = client_id or f"test-{uuid.uuid4().hex[:10]}"
        secret = uuid.uuid4().hex
        mappers: list[dict[str, Any]] = []
        if audience:
            mappers.append(
                {
                    "name": "audience",
                    "protocol": "openid-connect",
                    "protocolMapper": "oidc-audience-mapper",
                    "config": {"included.client.audience": audience, "access.token.claim": "true"},
                }
            )
        if organization:
            alias, tenant = organization
            mappers.append(
                {
                    "name": "organization",
                    "protocol": "openid-connect",
                    "protocolMapper": "oidc-hardcoded-claim-mapper",
                    "config": {
                        "claim.name": "organization",
                        "jsonType.label": "JSON",
                        "claim.value": json.dumps({alias: {"tenant_id": [str(tenant)]}}),
                        "access.token.claim": "true",
                        "id.token.claim": "true",
                    },
                }
            )
        attributes = {}
        if access_token_lifespan is not None:
            attributes["access.token.lifespan"] = str(access_token_lifespan)
        response = self.request(
            "POST",
            "/clients",
            json={
                "clientId": client_id,
                "enabled": True,
                "publicClient": False,
                "secret": secret,
                "serviceAccountsEnabled": True,
                "standardFlowEnabled": False,
                "directAccessGrantsEnabled": direct_access,
                "protocolMappers": mappers,
                "attributes": attributes,
            },
        )
        internal_id = response.headers["Location"].rsplit("/", 1)[-1]
        if roles:
            user = self.request("GET", f"/clients/{internal_id}/service-account-user").json()
            reprs = [self.request("GET", f"/roles/{r}").json() for r in roles]
            self.request("POST", f"/users/{user['id']}/role-mappings/realm", json=reprs)
        return ClientCredentials(client_id, secret, internal_id)

    def create_code_flow_client(self, prefix: str, redirect_uri: str) -> ClientCredentials:
        """A confidential code-flow client (PKCE S256, ``socle-api`` audience): a relying party like the console."""
        client_id, secret = f"{prefix}-{uuid.uuid4().hex[:8]}", secrets.token_urlsafe(24)
        response = self.request(
            "POST",
            "/clients",
            json={
                "clientId": client_id,
                "secret": secret,
                "publicClient": False,
                "standardFlowEnabled": True,
                "directAccessGrantsEnabled": False,
                "redirectUris": [redirect_uri],
                "attributes": {"pkce.code.challenge.method": "S256"},
                "protocolMappers": [
                    {
                        "name": "audience",
                        "protocol": "openid-connect",
                        "protocolMapper": "oidc-audience-mapper",
                        "config": {"included.client.audience": "socle-api", "access.token.claim": "true"},
                    }
                ],
            },
        )
        return ClientCredentials(client_id, secret, response.headers["Location"].rsplit("/", 1)[-1])

    def token(self, client: ClientCredentials, **extra: str) -> dict[str, Any]:
        response = httpx.post(
            f"{self.server.issuer}/protocol/openid-connect/token",
            data={
                "grant_type": "client_credentials",
                "client_id": client.client_id,
                "client_secret": client.secret,
                **extra,
            },
            timeout=20,
        )
        if response.status_code != 200:
            raise AssertionError(f"token request failed: {response.status_code} {response.text}")
        return dict(response.json())

    def add_rsa_key(self, private_key_pem: str, certificate_pem: str, *, priority: int = 1) -> str:
        """Publish an extra RSA signing key in the realm's JWKS; returns its kid."""
        realm = self.request("GET", "").json()
        response = self.request(
            "POST",
            "/components",
            json={
                "name": f"test-key-{uuid.uuid4().hex[:8]}",
                "providerId": "rsa",
                "providerType": "org.keycloak.keys.KeyProvider",
                "parentId": realm["id"],
                "config": {
                    "priority": [str(priority)],
                    "enabled": ["true"],
                    "active": ["true"],
                    "privateKey": [private_key_pem],
                    "certificate": [certificate_pem],
                    "algorithm": ["RS256"],
                },
            },
        )
        component_id = response.headers["Location"].rsplit("/", 1)[-1]
        keys = self.request("GET", "/keys").json()["keys"]
        return str(next(k["kid"] for k in keys if k.get("providerId") == component_id))


@dataclass(frozen=True)
class RealmUser:
    id: str
    username: str
    password: str


def otp_credential(secret: str) -> dict[str, Any]:
    """A TOTP credential with this secret as a user representation imports it (the realm's OTP policy)."""
    return {
        "type": "otp",
        "userLabel": "authenticator",
        "secretData": json.dumps({"value": secret}),
        "credentialData": json.dumps(
            {"subType": "totp", "digits": 6, "counter": 0, "period": 30, "algorithm": "HmacSHA1"}
        ),
    }


def create_user(kc_admin: KeycloakAdmin, *roles: str, otp_secret: str | None = None) -> RealmUser:
    """A realm user with a password (and a TOTP secret if given) and these realm roles (e-mail verified)."""
    username = f"agent-{uuid.uuid4().hex[:8]}"
    password = f"Pw-{secrets.token_urlsafe(12)}9a"
    credentials = [{"type": "password", "value": password, "temporary": False}]
    if otp_secret is not None:
        credentials.append(otp_credential(otp_secret))
    response = kc_admin.request(
        "POST",
        "/users",
        json={
            "username": username,
            "enabled": True,
            "email": f"{username}@example.fr",
            "emailVerified": True,
            "firstName": "Camille",
            "lastName": "Martin",
            "credentials": credentials,
        },
    )
    user_id = response.headers["Location"].rsplit("/", 1)[-1]
    if roles:
        reprs = [kc_admin.request("GET", f"/roles/{r}").json() for r in roles]
        kc_admin.request("POST", f"/users/{user_id}/role-mappings/realm", json=reprs)
    return RealmUser(user_id, username, password)


@dataclass(frozen=True)
class Commune:
    """A commune's Keycloak organization, made directly in the realm (no tenancy service involved)."""

    alias: str
    tenant_id: uuid.UUID
    org_id: str


def create_commune(kc_admin: KeycloakAdmin) -> Commune:
    alias, tenant_id = f"commune-{uuid.uuid4().hex[:8]}", uuid.uuid4()
    register_tenant(tenant_id, alias)
    response = kc_admin.request(
        "POST",
        "/organizations",
        json={"alias": alias, "name": alias, "enabled": True, "attributes": {"tenant_id": [str(tenant_id)]}},
    )
    return Commune(alias, tenant_id, response.headers["Location"].rsplit("/", 1)[-1])
