"""Demo accounts of the local platform, created through Keycloak's admin API.

Only for ``make up`` (development): passwords come from the local stack's generated
``secrets.json`` and are printed in the start banner.
"""

from __future__ import annotations

import httpx

from socle_devstack.keycloak import REALM, KeycloakServer
from socle_devstack.stack import Credentials

DEMO_USERS = (
    ("operateur@socle.localhost", "Opératrice", "Démo", "operator", "platform operator"),
    ("auditeur@socle.localhost", "Auditeur", "Démo", "auditor", "auditor (read-only metadata)"),
)


def seed_demo(keycloak: KeycloakServer, credentials: Credentials) -> list[tuple[str, str, str]]:
    """Create (or reset) the demo users; return (login, password, what) for the banner."""
    password = "Demo-" + credentials["keycloak_admin"][-10:].replace("-", "x") + "9a"
    headers = {"Authorization": f"Bearer {keycloak.admin_token()}"}
    base = f"{keycloak.url}/admin/realms/{REALM}"
    logins = []
    with httpx.Client(headers=headers, timeout=15) as client:
        for email, first, last, role, what in DEMO_USERS:
            found = client.get(f"{base}/users", params={"email": email, "exact": "true"}).json()
            if found:
                user_id = found[0]["id"]
            else:
                created = client.post(
                    f"{base}/users",
                    json={
                        "username": email,
                        "email": email,
                        "firstName": first,
                        "lastName": last,
                        "enabled": True,
                        "emailVerified": True,
                    },
                )
                created.raise_for_status()
                user_id = created.headers["Location"].rsplit("/", 1)[-1]
            client.put(
                f"{base}/users/{user_id}/reset-password",
                json={"type": "password", "value": password, "temporary": False},
            ).raise_for_status()
            role_repr = client.get(f"{base}/roles/{role}").json()
            client.post(f"{base}/users/{user_id}/role-mappings/realm", json=[role_repr]).raise_for_status()
            logins.append((email, password, what))
    return logins
