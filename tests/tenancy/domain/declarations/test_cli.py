"""``socle-tenants apply`` end to end: the real command, the tenancy API over HTTP, PostgreSQL, Keycloak.

The deployment's EPCI is the demo one (the suite shares one database); the communes declared
here come from the pool of member communes (``commune_pool``): no other module touches them.
"""

from __future__ import annotations

import copy
import json
import os
import secrets
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from socle_reference.catalogue import MemberCommune
from tests.support.browser import approve_device_login, visible_text
from tests.support.keycloak_admin import create_user
from tests.support.local_stack import describe_local_stack
from tests.support.tokens import unverified_claims
from tests.tenancy.conftest import DEMO
from tests.tenancy.domain.declarations.serving import socle_tenants

OFFICIAL_EPCI_NAME = "CC du Pays de Sommières"


@pytest.fixture(scope="module")
def declared(commune_pool) -> tuple[MemberCommune, MemberCommune]:
    """The two communes this module's declaration adds to the demo EPCI."""
    return commune_pool.take(), commune_pool.take()


def declaration(declared: tuple[MemberCommune, MemberCommune], **changes: Any) -> dict[str, Any]:
    """The demo EPCI with two communes of its own; ``changes`` replace commune fields by INSEE."""
    first, second = declared
    result = copy.deepcopy(DEMO)
    # The EPCI keeps its official name: other tests of the shared database expect it.
    result["epci"]["display_name"] = OFFICIAL_EPCI_NAME
    del result["epci"]["tenant"]["display_name"]
    result["communes"] = [
        {
            "insee": first.insee,
            "email_domains": [f"c{first.insee}.test.socle.fr"],
            "first_admin_email": f"mairie@c{first.insee}.test.socle.fr",
            "quotas": {"max_devices": 40},
        },
        {
            "insee": second.insee,
            "display_name": f"{second.name} (Gard)",
            "email_domains": [f"c{second.insee}.test.socle.fr"],
            "first_admin_email": f"mairie@c{second.insee}.test.socle.fr",
        },
    ]
    for commune in result["communes"]:
        commune.update(changes.get(commune["insee"], {}))
    return result


def write(path: Path, value: dict[str, Any]) -> str:
    path.write_text(json.dumps(value, ensure_ascii=False))
    return str(path)


def registry(api: str, operator: dict[str, str]) -> dict[str, dict[str, Any]]:
    body = httpx.get(f"{api}/v1/tenants", params={"limit": 200}, headers=operator, timeout=30).json()
    return {t["key"]: t for t in body["items"]}


def quotas(api: str, operator: dict[str, str], tenant_id: str) -> dict[str, Any]:
    response = httpx.get(f"{api}/v1/tenants/{tenant_id}/quotas", headers=operator, timeout=30)
    assert response.status_code == 200, response.text
    return dict(response.json())


def organization(kc_admin, tenant_id: str) -> dict[str, Any]:
    found = kc_admin.request(
        "GET", "/organizations", params={"q": f"tenant_id:{tenant_id}", "briefRepresentation": "false"}
    ).json()
    assert len(found) == 1, found
    return dict(found[0])


def test_dry_run_apply_reapply_and_update(tmp_path, cli_env, tenancy_url, operator, kc_admin, declared) -> None:
    cannes, combas, combas_name = declared[0].insee, declared[1].insee, declared[1].name
    file = write(tmp_path / "epci.json", declaration(declared))

    # Dry run: the difference is shown, nothing changes.
    dry = socle_tenants("apply", file, "--dry-run", "--output", "json", env=cli_env)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    plan = json.loads(dry.stdout)
    assert plan["valid"] is True
    assert plan["dry_run"] is True
    assert plan["results"] == []
    onboarding = {c["tenant"]: c for c in plan["changes"] if c["action"] == "onboard"}
    assert {f"commune-{cannes}", f"commune-{combas}"} <= set(onboarding)
    planned = onboarding[f"commune-{cannes}"]
    assert planned["path"] == f"/v1/tenants/{cannes}/onboarding"
    assert planned["body"]["quotas"] == {"max_devices": 40, "max_readings_per_day": 200_000, "storage_gb": 5}
    assert onboarding[f"commune-{combas}"]["body"]["display_name"] == f"{combas_name} (Gard)"
    assert any("allocation_key" in note for note in plan["notes"])
    assert "Simulation : rien n'a été modifié." in dry.stderr
    assert not {f"commune-{cannes}", f"commune-{combas}"} & set(registry(tenancy_url, operator))

    # Apply: created through the API, with progress lines.
    applied = socle_tenants("apply", file, env=cli_env)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert f"onboarding de commune-{cannes}" in applied.stdout
    assert "] fait (200)" in applied.stdout
    assert "modification(s) appliquée(s)." in applied.stdout
    tenants = registry(tenancy_url, operator)
    epci = tenants[f"epci-{DEMO['epci']['siren']}"]
    assert epci["status"] == "active"
    assert epci["name"] == OFFICIAL_EPCI_NAME
    for insee in (cannes, combas):
        assert tenants[f"commune-{insee}"]["status"] == "active"
        assert tenants[f"commune-{insee}"]["parent_id"] == epci["id"]
    assert tenants[f"commune-{combas}"]["name"] == f"{combas_name} (Gard)"
    cannes_id = tenants[f"commune-{cannes}"]["id"]
    assert quotas(tenancy_url, operator, cannes_id)["max_devices"] == 40
    assert [d["name"] for d in organization(kc_admin, cannes_id)["domains"]] == [f"c{cannes}.test.socle.fr"]

    # Second run: nothing to do.
    again = socle_tenants("apply", file, "--output", "json", env=cli_env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert json.loads(again.stdout)["changes"] == []
    assert "Rien à faire" in again.stderr

    # The file changes: quotas, name and domains are updated, nothing else.
    changed = declaration(
        declared,
        **{
            cannes: {"quotas": {"max_devices": 60, "storage_gb": 8}},
            combas: {
                "display_name": combas_name,
                "email_domains": [f"c{combas}.test.socle.fr", f"mairie.c{combas}.test.socle.fr"],
            },
        },
    )
    file = write(tmp_path / "epci.json", changed)
    update = socle_tenants("apply", file, "--output", "json", env=cli_env)
    assert update.returncode == 0, update.stdout + update.stderr
    report = json.loads(update.stdout)
    actions = {(c["action"], c["tenant"]): c for c in report["changes"]}
    assert set(actions) == {("update_quotas", f"commune-{cannes}"), ("update_tenant", f"commune-{combas}")}
    assert actions[("update_quotas", f"commune-{cannes}")]["before"] == {"max_devices": 40, "storage_gb": 5}
    assert actions[("update_quotas", f"commune-{cannes}")]["after"] == {"max_devices": 60, "storage_gb": 8}
    assert [r["status"] for r in report["results"]] == [200, 200]
    current = quotas(tenancy_url, operator, cannes_id)
    assert (current["max_devices"], current["storage_gb"], current["max_readings_per_day"]) == (60, 8, 200_000)
    row = registry(tenancy_url, operator)[f"commune-{combas}"]
    assert row["name"] == combas_name
    assert sorted(row["email_domains"]) == [f"c{combas}.test.socle.fr", f"mairie.c{combas}.test.socle.fr"]
    domains = {d["name"] for d in organization(kc_admin, row["id"])["domains"]}
    assert domains == {f"c{combas}.test.socle.fr", f"mairie.c{combas}.test.socle.fr"}
    final = socle_tenants("apply", file, "--output", "json", env=cli_env)
    assert json.loads(final.stdout)["changes"] == []


def test_an_invalid_declaration_exits_2_with_pointers_and_changes_nothing(
    tmp_path, cli_env, tenancy_url, operator, declared
) -> None:
    before = registry(tenancy_url, operator)
    shape = declaration(declared, **{declared[0].insee: {"insee": "3006"}})
    result = socle_tenants("apply", write(tmp_path / "shape.json", shape), env=cli_env)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "est invalide (1 problème(s)) ; rien n'a été modifié" in result.stdout
    assert "/communes/0/insee : '3006' does not match" in result.stdout

    facts = declaration(
        declared, **{declared[1].insee: {"insee": "30189", "quotas": {"storage_gb": 2.5}}}
    )  # Nîmes: another EPCI
    result = socle_tenants("apply", write(tmp_path / "facts.json", facts), "--output", "json", env=cli_env)
    assert result.returncode == 2, result.stdout + result.stderr
    errors = {e["pointer"]: e["message"] for e in json.loads(result.stdout)["errors"]}
    assert "pas de 243000296" in errors["/communes/1/insee"]
    assert "Go entiers" in errors["/communes/1/quotas/storage_gb"]

    result = socle_tenants("apply", str(tmp_path / "missing.json"), env=cli_env)
    assert result.returncode == 2
    assert "impossible de lire" in result.stdout
    assert registry(tenancy_url, operator) == before


def test_configuration_errors_say_what_to_set(tmp_path, cli_env, declared) -> None:
    file = write(tmp_path / "epci.json", declaration(declared))
    no_secret = {k: v for k, v in cli_env.items() if k != "SOCLE_TENANTS_CLIENT_SECRET"}
    result = socle_tenants("apply", file, env=no_secret)
    assert result.returncode == 2
    assert "définissez SOCLE_TENANTS_CLIENT_SECRET (le secret du client 'socle-platform')" in result.stdout
    assert "lancez d'abord `make up`" in result.stdout
    # Without SOCLE_TENANTS_ISSUER the issuer is the realm of `make up` (socle_core.login.DEFAULT_ISSUER).
    wrong = {**cli_env, "SOCLE_TENANTS_CLIENT_SECRET": "not-the-secret"}
    result = socle_tenants("apply", file, env=wrong)
    assert result.returncode == 1
    assert "Keycloak a refusé les identifiants du client 'socle-platform' (401)" in result.stdout


def test_an_epci_admin_logs_in_with_a_device_code_and_applies_as_themselves(
    tmp_path, tenancy_url, keycloak, kc_admin, operator, request, declared, free_commune
) -> None:
    """``socle-login`` (device code, password and OTP in the browser), then ``socle-tenants apply`` as that person.

    The onboarding it runs is recorded in the commune's audit chain with the EPCI admin as actor,
    and the session file is readable by its owner only.
    """
    epci = httpx.post(
        f"{tenancy_url}/v1/epcis/{DEMO['epci']['siren']}/onboarding",
        json={"first_admin_email": DEMO["epci"]["tenant"]["first_admin_email"]},
        headers=operator,
        timeout=120,
    )
    assert epci.status_code == 200, epci.text
    secret = secrets.token_hex(10)
    admin = create_user(kc_admin, "epci-admin", otp_secret=secret)
    organization = epci.json()["tenant"]["keycloak_organization_id"]
    kc_admin.request("POST", f"/organizations/{organization}/members", json=admin.id)
    # The demo EPCI is the session's: other tests count its members.
    request.addfinalizer(lambda: kc_admin.request("DELETE", f"/organizations/{organization}/members/{admin.id}"))
    token_file = tmp_path / "session" / "tokens.json"
    env = {
        "SOCLE_TENANTS_API": tenancy_url,
        "SOCLE_TENANTS_ISSUER": keycloak.issuer,
        "SOCLE_TOKEN_FILE": str(token_file),
    }
    file = write(
        tmp_path / "epci.json",
        {
            **declaration(declared),
            "communes": [
                {
                    "insee": free_commune.insee,
                    "email_domains": [f"c{free_commune.insee}.test.socle.fr"],
                    "first_admin_email": f"mairie@c{free_commune.insee}.test.socle.fr",
                }
            ],
        },
    )

    not_logged_in = socle_tenants("apply", file, env=env)
    assert not_logged_in.returncode == 1, not_logged_in.stdout
    assert f"aucune connexion à {keycloak.issuer} sur cette machine : lancez socle-login" in not_logged_in.stdout
    assert f"commune-{free_commune.insee}" not in registry(tenancy_url, operator)

    login = subprocess.Popen(
        [sys.executable, "-m", "socle_core.login", "--issuer", keycloak.issuer],
        env={"PATH": os.environ.get("PATH", ""), "SOCLE_TOKEN_FILE": str(token_file)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert login.stdout is not None
        shown = [login.stdout.readline() for _ in range(3)]
        verification = shown[1].strip()
        assert verification.startswith(f"{keycloak.issuer}/device?user_code="), shown
        page = approve_device_login(verification, admin.username, admin.password, otp_secret=secret)
        assert "Vous pouvez fermer cette fenêtre" in visible_text(page), visible_text(page)[:800]
        rest, _ = login.communicate(timeout=60)
    finally:
        if login.poll() is None:
            login.kill()
    assert login.returncode == 0, "".join(shown) + rest
    assert f"Session de {admin.username} enregistrée dans {token_file}" in rest
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(token_file.parent.stat().st_mode) == 0o700
    stored = json.loads(token_file.read_text())[keycloak.issuer]
    claims = unverified_claims(stored["access_token"])
    assert (claims["sub"], claims["azp"]) == (admin.id, "socle-cli")
    assert "epci-admin" in claims["realm_access"]["roles"]
    assert list(claims["organization"]) == [f"epci-{DEMO['epci']['siren']}"]

    applied = socle_tenants("apply", file, "--output", "json", env=env)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert [c["tenant"] for c in json.loads(applied.stdout)["changes"] if c["action"] == "onboard"] == [
        f"commune-{free_commune.insee}"
    ]
    junas = registry(tenancy_url, operator)[f"commune-{free_commune.insee}"]
    assert junas["status"] == "active"
    auditor = kc_admin.token(kc_admin.create_client(roles=("auditor",)))["access_token"]
    entries = httpx.get(
        f"{tenancy_url}/v1/audit/entries",
        params={"tenant": junas["id"], "action": "onboarding"},
        headers={"Authorization": f"Bearer {auditor}"},
        timeout=30,
    ).json()["items"]
    assert entries
    assert {e["actor"] for e in entries} == {admin.id}


def test_with_no_setting_the_command_finds_the_running_local_stack(
    tmp_path, tenancy_url, keycloak, database, declared
) -> None:
    """As after `make up` on moved ports: stack.json gives the API and the issuer, secrets.json the secret."""
    file = write(tmp_path / "epci.json", declaration(declared))
    state = describe_local_stack(tmp_path / ".socle", database, keycloak.issuer, {"tenancy": tenancy_url})
    result = socle_tenants(
        "apply", file, "--client-credentials", "--dry-run", "--output", "json", env={"SOCLE_STATE_DIR": str(state)}
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["valid"] is True
    assert (
        f"[socle] plateforme locale de {state} : SOCLE_TENANTS_API, SOCLE_TENANTS_ISSUER, SOCLE_TENANTS_CLIENT_SECRET "
        "pris de stack.json et secrets.json (absents de l'environnement)"
    ) in result.stderr
    # A setting of the environment wins over the stack's.
    elsewhere = {"SOCLE_STATE_DIR": str(state), "SOCLE_TENANTS_API": "http://127.0.0.1:9"}
    result = socle_tenants("apply", file, "--client-credentials", "--dry-run", env=elsewhere)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "SOCLE_TENANTS_API," not in result.stderr

    stack = json.loads((state / "stack.json").read_text())
    (state / "stack.json").write_text(json.dumps({**stack, "supervisor_pid": 2**22 + 1}))  # above pid_max: gone
    result = socle_tenants("apply", file, "--client-credentials", "--dry-run", env={"SOCLE_STATE_DIR": str(state)})
    assert result.returncode == 2, result.stdout + result.stderr
    assert "décrit une plateforme locale qui ne tourne plus : relancez-la avec `make up`" in result.stderr
