"""Per-tenant service accounts: confidential client-credentials clients bound to one tenant.

Each client carries, like a person's token, the ``socle-api`` audience and the
``organization`` claim ``{alias: {"tenant_id": [uuid]}}`` (a hardcoded-claim mapper: the
tenant is fixed at creation, never taken from a request), and one realm role: ``device``
for write access (sending readings), ``partner`` for read access.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal
from uuid import UUID

from socle_core.keycloak_admin import KeycloakAdminClient, KeycloakRefused

Access = Literal["read", "write"]
ROLE_FOR_ACCESS: dict[str, str] = {"write": "device", "read": "partner"}
API_AUDIENCE = "socle-api"


@dataclass(frozen=True)
class IssuedSecret:
    """A client id and its secret: shown once to the caller, never stored by Socle."""

    client_id: str
    secret: str


class ServiceAccountClients:
    def __init__(self, client: KeycloakAdminClient) -> None:
        self.client = client

    async def create(
        self, internal_id: UUID, client_id: str, *, alias: str, tenant_id: UUID, access: Access, description: str = ""
    ) -> IssuedSecret:
        """Create the client with Keycloak id ``internal_id``; Keycloak generates the secret."""
        role_name = ROLE_FOR_ACCESS[access]
        body = {
            "id": str(internal_id),
            "clientId": client_id,
            "name": client_id,
            "description": description,
            "enabled": True,
            "protocol": "openid-connect",
            "publicClient": False,
            "clientAuthenticatorType": "client-secret",
            "serviceAccountsEnabled": True,
            "standardFlowEnabled": False,
            "implicitFlowEnabled": False,
            "directAccessGrantsEnabled": False,
            "frontchannelLogout": False,
            "attributes": {"socle.tenant_id": str(tenant_id), "socle.organization": alias, "socle.access": access},
            "protocolMappers": [
                {
                    "name": "socle-api audience",
                    "protocol": "openid-connect",
                    "protocolMapper": "oidc-audience-mapper",
                    "config": {
                        "included.client.audience": API_AUDIENCE,
                        "access.token.claim": "true",
                        "id.token.claim": "false",
                    },
                },
                {
                    "name": "organization",
                    "protocol": "openid-connect",
                    "protocolMapper": "oidc-hardcoded-claim-mapper",
                    "config": {
                        "claim.name": "organization",
                        "jsonType.label": "JSON",
                        "claim.value": json.dumps({alias: {"tenant_id": [str(tenant_id)]}}),
                        "access.token.claim": "true",
                        "id.token.claim": "false",
                        "introspection.token.claim": "true",
                    },
                },
            ],
        }
        await self.client.request("POST", "/clients", json=body)
        try:
            user = (await self.client.request("GET", f"/clients/{internal_id}/service-account-user")).json()
            role = (await self.client.request("GET", f"/roles/{role_name}")).json()
            await self.client.request("POST", f"/users/{user['id']}/role-mappings/realm", json=[role])
            secret = (await self.client.request("GET", f"/clients/{internal_id}/client-secret")).json()
        except Exception:
            await self.delete(internal_id)  # never leave a half-configured client behind
            raise
        return IssuedSecret(client_id, str(secret["value"]))

    async def rotate_secret(self, internal_id: UUID) -> IssuedSecret:
        """A new secret; the previous one stops working at once."""
        rep = (await self.client.request("GET", f"/clients/{internal_id}")).json()
        secret = (await self.client.request("POST", f"/clients/{internal_id}/client-secret")).json()
        if not secret.get("value"):
            raise KeycloakRefused(500, "Keycloak returned no secret", method="POST", path="/client-secret")
        return IssuedSecret(str(rep["clientId"]), str(secret["value"]))

    async def delete(self, internal_id: UUID) -> bool:
        """Revoke: delete the client (its secret stops working); False when already gone."""
        response = await self.client.request("DELETE", f"/clients/{internal_id}", expected=(404,))
        return response.status_code != 404
