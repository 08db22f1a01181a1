"""The devstack's Keycloak: what every start sets on the running server beyond the realm file."""

from __future__ import annotations

import secrets

import httpx
import pytest

from socle_devstack.keycloak import KeycloakServer
from socle_devstack.processes import free_port
from socle_devstack.stack import REALM_FILES
from tests.support.keycloak_admin import admin_api


def _password_grant(keycloak: KeycloakServer, username: str, password: str) -> httpx.Response:
    return httpx.post(
        f"{keycloak.url}/realms/master/protocol/openid-connect/token",
        data={"grant_type": "password", "client_id": "admin-cli", "username": username, "password": password},
        timeout=20,
    )


def test_the_master_realm_locks_an_account_after_repeated_wrong_passwords(keycloak: KeycloakServer) -> None:
    """Keycloak creates ``master`` with brute-force detection off; the start turns it on."""
    master = admin_api(keycloak, "GET", "/master").json()
    assert master["bruteForceProtected"] is True
    assert (master["failureFactor"], master["permanentLockout"]) == (5, False)
    assert (master["waitIncrementSeconds"], master["maxFailureWaitSeconds"]) == (60, 900)

    # Another administrator than the bootstrap one, so the suite's own admin is never locked out.
    username, password = f"admin-{secrets.token_hex(4)}", f"Pw-{secrets.token_urlsafe(12)}9a"
    created = admin_api(
        keycloak,
        "POST",
        "/master/users",
        json={
            "username": username,
            "enabled": True,
            "credentials": [{"type": "password", "value": password, "temporary": False}],
        },
    )
    user_id = created.headers["Location"].rsplit("/", 1)[-1]
    assert _password_grant(keycloak, username, password).status_code == 200
    for _ in range(5):
        assert _password_grant(keycloak, username, "Wrong-password-1").status_code == 401
    status = admin_api(keycloak, "GET", f"/master/attack-detection/brute-force/users/{user_id}").json()
    assert status["disabled"] is True
    refused = _password_grant(keycloak, username, password)
    assert refused.status_code == 401, refused.text  # the right password no longer works while locked
    assert refused.json()["error"] == "invalid_grant"
    admin_api(keycloak, "DELETE", f"/master/users/{user_id}")


def test_a_start_that_times_out_leaves_no_keycloak_running(tmp_path) -> None:
    """``make up`` has no server to stop when the start failed: the start stops its own process."""
    server = KeycloakServer(
        instance_dir=tmp_path / "kc",
        port=free_port(),
        management_port=free_port(),
        realm_files=REALM_FILES,
        log_file=tmp_path / "keycloak.log",
        providers=[],
    )
    with pytest.raises(TimeoutError, match="Keycloak not ready after 1s"):
        server.start(timeout=1)
    assert server.process is not None
    assert server.process.poll() is not None
