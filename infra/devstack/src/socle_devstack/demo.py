"""Demo accounts and the demo EPCI of the local platform.

Only for ``make up`` (development; refused in any other environment): one ready login per role,
the password and the one-time password's secret drawn for this stack in its ``secrets.json``
(neither derived from another secret), printed in the start banner.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import httpx

from socle_devstack.keycloak import REALM, KeycloakServer
from socle_devstack.stack import REPO_ROOT, Credentials


@dataclass(frozen=True)
class DemoUser:
    email: str
    first_name: str
    last_name: str
    role: str
    what: str
    #: The organization (tenant alias) the account belongs to, None for platform-wide roles.
    organization: str | None = None

    @property
    def needs_otp(self) -> bool:
        """The realm's admin roles (composites of ``otp-required``) log in with a one-time password."""
        return self.role != "commune-agent"


DEMO_COMMUNE = "commune-30321"  # Sommières, the first commune of the demo declaration
DEMO_EPCI = "epci-243000296"
DEMO_USERS = (
    DemoUser("operateur@socle.localhost", "Opératrice", "Démo", "operator", "platform operator"),
    DemoUser("auditeur@socle.localhost", "Auditeur", "Démo", "auditor", "auditor (read-only metadata)"),
    DemoUser(
        "admin.epci@socle.localhost", "Admin", "EPCI Démo", "epci-admin", "EPCI admin (Pays de Sommières)", DEMO_EPCI
    ),
    DemoUser(
        "admin.sommieres@socle.localhost",
        "Admin",
        "Sommières",
        "commune-admin",
        "commune admin (Sommières)",
        DEMO_COMMUNE,
    ),
    DemoUser(
        "agent.sommieres@socle.localhost",
        "Agent",
        "Sommières",
        "commune-agent",
        "commune agent (Sommières)",
        DEMO_COMMUNE,
    ),
)


@dataclass(frozen=True)
class DemoLogin:
    email: str
    password: str
    what: str
    otp: bool


def otp_label(secret: str) -> str:
    """The label of the demo OTP credential: tells a kept account whether it still has this stack's secret."""
    return "socle-demo-" + hashlib.sha256(secret.encode()).hexdigest()[:12]


def otpauth_uri(secret: str) -> str:
    """What an authenticator app scans: Keycloak keys TOTP with the secret's bytes, apps take them in base32."""
    key = base64.b32encode(secret.encode()).decode().rstrip("=")
    params = {"secret": key, "issuer": "Socle", "algorithm": "SHA1", "digits": "6", "period": "30"}
    return f"otpauth://totp/{quote('Socle (démo)')}?{urlencode(params)}"


def _otp_credential(secret: str) -> dict[str, Any]:
    return {
        "type": "otp",
        "userLabel": otp_label(secret),
        "secretData": json.dumps({"value": secret}),
        "credentialData": json.dumps(
            {"subType": "totp", "digits": 6, "counter": 0, "period": 30, "algorithm": "HmacSHA1"}
        ),
    }


def seed_demo(keycloak: KeycloakServer, credentials: Credentials, environment: str) -> list[DemoLogin]:
    """Create the demo users (kept ones keep their id); return their logins for the banner.

    A kept account whose OTP is not this stack's (made by an older version, or re-enrolled by
    hand) is made again: the admin API imports an OTP secret only with a new user.
    """
    if environment != "development":
        raise RuntimeError(f"demo accounts are for development only, not for the {environment!r} environment")
    password, secret = credentials["demo_password"], credentials["demo_totp_secret"]
    headers = {"Authorization": f"Bearer {keycloak.admin_token()}"}
    base = f"{keycloak.url}/admin/realms/{REALM}"
    logins = []
    with httpx.Client(base_url=base, headers=headers, timeout=15) as client:
        for user in DEMO_USERS:
            user_id = _kept_user(client, user, secret)
            if user_id is None:
                user_id = _create_user(client, user, password, secret)
            else:
                _set_password(client, user_id, password)
            role = client.get(f"/roles/{user.role}").json()
            client.post(f"/users/{user_id}/role-mappings/realm", json=[role]).raise_for_status()
            logins.append(DemoLogin(user.email, password, user.what, user.needs_otp))
    return logins


def _kept_user(client: httpx.Client, user: DemoUser, secret: str) -> str | None:
    found = client.get("/users", params={"email": user.email, "exact": "true"}).json()
    if not found:
        return None
    user_id = str(found[0]["id"])
    labels = {c.get("userLabel") for c in client.get(f"/users/{user_id}/credentials").json() if c["type"] == "otp"}
    if user.needs_otp and labels != {otp_label(secret)}:
        client.delete(f"/users/{user_id}").raise_for_status()
        return None
    return user_id


def _create_user(client: httpx.Client, user: DemoUser, password: str, secret: str) -> str:
    credentials: list[dict[str, Any]] = [{"type": "password", "value": password, "temporary": False}]
    if user.needs_otp:
        credentials.append(_otp_credential(secret))
    created = client.post(
        "/users",
        json={
            "username": user.email,
            "email": user.email,
            "firstName": user.first_name,
            "lastName": user.last_name,
            "enabled": True,
            "emailVerified": True,
            "credentials": credentials,
        },
    )
    created.raise_for_status()
    return created.headers["Location"].rsplit("/", 1)[-1]


def _set_password(client: httpx.Client, user_id: str, password: str) -> None:
    """The stack's demo password; already being it is fine (the realm refuses a password it had recently)."""
    answer = client.put(
        f"/users/{user_id}/reset-password", json={"type": "password", "value": password, "temporary": False}
    )
    if answer.status_code == 400 and "history" in answer.text.lower():
        return
    answer.raise_for_status()


def place_demo_users(keycloak: KeycloakServer) -> list[str]:
    """Make the EPCI and commune demo accounts members of their organizations (once the demo EPCI exists).

    Returns the organizations it could not find (the demo EPCI was not applied).
    """
    headers = {"Authorization": f"Bearer {keycloak.admin_token()}"}
    missing = []
    with httpx.Client(base_url=f"{keycloak.url}/admin/realms/{REALM}", headers=headers, timeout=15) as client:
        organizations = {o["alias"]: o["id"] for o in client.get("/organizations", params={"max": 1000}).json()}
        for user in DEMO_USERS:
            if user.organization is None:
                continue
            if user.organization not in organizations:
                missing.append(user.organization)
                continue
            (found,) = client.get("/users", params={"email": user.email, "exact": "true"}).json()
            added = client.post(f"/organizations/{organizations[user.organization]}/members", json=found["id"])
            if added.status_code != 409:  # already a member
                added.raise_for_status()
    return sorted(set(missing))


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
