"""Demo accounts and the demo EPCI of the local platform.

Only for ``make up`` (development): passwords come from the local stack's generated
``secrets.json`` and are printed in the start banner.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx

from socle_devstack.keycloak import REALM, KeycloakServer
from socle_devstack.stack import REPO_ROOT, Credentials

DEMO_USERS = (
    ("operateur@socle.localhost", "Opératrice", "Démo", "operator", "platform operator"),
    ("auditeur@socle.localhost", "Auditeur", "Démo", "auditor", "auditor (read-only metadata)"),
)


def seed_demo(keycloak: KeycloakServer, credentials: Credentials) -> list[tuple[str, str, str]]:
    """Create the demo users (kept ones are left as they are); return (login, password, what) for the banner."""
    password = "Demo-" + credentials["keycloak_admin"][-10:].replace("-", "x") + "9a"
    headers = {"Authorization": f"Bearer {keycloak.admin_token()}"}
    base = f"{keycloak.url}/admin/realms/{REALM}"
    logins = []
    with httpx.Client(headers=headers, timeout=15) as client:
        for email, first, last, role, what in DEMO_USERS:
            found = client.get(f"{base}/users", params={"email": email, "exact": "true"}).json()
            if found:
                # Kept from an earlier start with the same password (it derives from the kept
                # secrets.json); setting it again would break the realm's passwordHistory policy.
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


DEMO_DECLARATION = REPO_ROOT / "tenants" / "demo" / "cc-pays-de-sommieres.json"


def apply_demo_epci(tenancy_url: str, issuer: str, credentials: Credentials, log_file: Path) -> str:
    """Apply the demo EPCI declaration through the tenancy API, as an operator would.

    Runs ``socle-tenants apply`` in its own process (the platform client's secret in its
    environment, never on its command line) and returns one line for the start banner.
    Applying is idempotent, so a restarted stack with its data kept reports nothing to do.
    """
    command = [sys.executable, "-m", "socle_tenancy.domain.declarations", "apply", str(DEMO_DECLARATION)]
    command += ["--api", tenancy_url, "--issuer", issuer, "--output", "json", "--client-credentials"]
    env = {**os.environ, "SOCLE_TENANTS_CLIENT_SECRET": credentials["platform_client"]}
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, check=False)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    log_file.write_text(result.stderr + result.stdout)
    name = DEMO_DECLARATION.relative_to(REPO_ROOT)
    if result.returncode != 0:
        last = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        return f"the demo EPCI ({name}) was not applied: {last[0]} (see {log_file})"
    changes = json.loads(result.stdout)["changes"]
    if not changes:
        return f"demo EPCI ({name}) already applied: nothing to do"
    onboarded = sum(1 for c in changes if c["action"] == "onboard")
    return f"demo EPCI applied from {name}: {len(changes)} change(s), {onboarded} tenant(s) onboarded"
