"""`make up` / `make down` as the README promises them, on free ports and a scratch state folder.

Runs the real command (embedded PostgreSQL, the mail sink, Keycloak, every service), checks
every service is ready, Keycloak's discovery answers, the demo EPCI's communes are tenants and
Keycloak's e-mails land in the mail sink's folder, then stops it and checks no process is left
behind.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import smtplib
import subprocess
import sys
import tempfile
import time
from email import parser as email_parser
from email import policy as email_policy
from email.message import EmailMessage
from pathlib import Path

import asyncpg
import httpx
import pytest

from socle_core import login
from socle_devstack.demo import DEMO_USERS, DemoUser
from socle_devstack.postgres import PostgresServer, debian_bin_dir, embedded_bin_dir
from socle_devstack.processes import free_port
from socle_devstack.scratch import free_service_ports, read_until_ready, running_stack, scratch_env
from socle_devstack.stack import REPO_ROOT, SERVICES
from tests.support.browser import approve_device_login, complete_invitation, visible_text
from tests.support.processes import processes_mentioning
from tests.support.tokens import unverified_claims
from tests.support.totp import secret_of


def check_demo_epci(state: Path, issuer: str, tenancy_url: str) -> None:
    """The demo communes are tenants, listed by the tenancy API; applying again changes nothing."""
    secret = json.loads((state / "secrets.json").read_text())["platform_client"]
    token = httpx.post(
        f"{issuer}/protocol/openid-connect/token",
        data={"grant_type": "client_credentials", "client_id": "socle-platform", "client_secret": secret},
        timeout=20,
    ).json()["access_token"]
    listed = httpx.get(
        f"{tenancy_url}/v1/tenants",
        params={"kind": "commune"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=20,
    )
    assert listed.status_code == 200, listed.text
    communes = {t["insee_code"]: t for t in listed.json()["items"]}
    assert set(communes) == {"30321", "30062", "30091", "30352"}
    assert {t["status"] for t in communes.values()} == {"active"}
    assert communes["30352"]["name"] == "Villevieille"
    again = subprocess.run(
        [
            sys.executable,
            "-m",
            "socle_tenancy.domain.declarations",
            "apply",
            "tenants/demo/cc-pays-de-sommieres.json",
            "--api",
            tenancy_url,
            "--issuer",
            issuer,
            "--client-credentials",
        ],
        env={"PATH": os.environ.get("PATH", ""), "SOCLE_TENANTS_CLIENT_SECRET": secret},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert "Rien à faire" in again.stdout
    # make up configures everything the isolation evidence report needs: it runs and passes.
    report = httpx.post(
        f"{tenancy_url}/v1/isolation/reports",
        json={"sample": 3},
        headers={"Authorization": f"Bearer {token}"},
        timeout=240,
    )
    assert report.status_code == 201, report.text
    body = report.json()
    assert body["verdict"] == "pass", (body["violations"], [g for g in body["gaps"]])
    assert body["signature"]


def check_stack_file(state: Path, issuer: str, ports: dict[str, int], env: dict[str, str]) -> None:
    """The stack describes its own ports, and ``make tenants-apply`` talks to them, not to the defaults."""
    text = (state / "stack.json").read_text()
    described = json.loads(text)
    assert described["environment"] == "development"
    assert described["issuer"] == issuer
    assert described["services"] == {s: f"http://127.0.0.1:{p}" for s, p in ports.items()}
    assert described["database"] == {"host": "127.0.0.1", "port": int(env["SOCLE_POSTGRES_PORT"]), "name": "socle"}
    secrets = json.loads((state / "secrets.json").read_text())
    assert [name for name, value in secrets.items() if value in text] == []  # stack.json is readable by all
    assert oct((state / "secrets.json").stat().st_mode & 0o777) == "0o600"
    applied = subprocess.run(
        # As automation would (the person's login is the README test's): the platform client's secret also
        # comes from the stack.
        [
            "make",
            "-s",
            "tenants-apply",
            "FILE=tenants/demo/cc-pays-de-sommieres.json",
            "ARGS=--dry-run --client-credentials",
        ],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "Rien à faire : la plateforme correspond à la déclaration." in applied.stdout
    assert f"[socle] plateforme locale de {state} : SOCLE_TENANTS_API, SOCLE_TENANTS_ISSUER" in applied.stderr


def wait_for_mail(folder: Path, text: str, timeout: float = 30) -> str:
    """The first ``.eml`` of the sink's folder that contains ``text``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in sorted(folder.glob("*.eml")):
            content = path.read_text(errors="replace")
            if text in content:
                return content
        time.sleep(0.3)
    found = sorted(p.name for p in folder.glob("*")) if folder.exists() else "no folder"
    raise AssertionError(f"no mail containing {text!r} in {folder} after {timeout:.0f}s: {found}")


def check_mail(state: Path, keycloak_url: str, smtp_port: int, console_url: str) -> None:
    """The sink keeps what it is sent, and the realm sends Keycloak's own e-mails to it."""
    message = EmailMessage()
    message["From"] = "test@socle.localhost"
    message["To"] = "agent@mairie-exemple.fr"
    message["Subject"] = "Essai du puits de courrier"
    message.set_content("bonjour")
    with smtplib.SMTP("127.0.0.1", smtp_port, timeout=10) as client:
        client.send_message(message)
    sent = wait_for_mail(state / "mail", "Essai du puits de courrier")
    assert "Delivered-To: agent@mairie-exemple.fr" in sent
    assert "bonjour" in sent

    admin_password = json.loads((state / "secrets.json").read_text())["keycloak_admin"]
    token = httpx.post(
        f"{keycloak_url}/realms/master/protocol/openid-connect/token",
        data={"grant_type": "password", "client_id": "admin-cli", "username": "admin", "password": admin_password},
        timeout=20,
    ).json()["access_token"]
    admin = httpx.Client(
        base_url=f"{keycloak_url}/admin/realms/socle", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    with admin:
        # Imported from the realm file's placeholders: make up gave Keycloak the sink's address.
        smtp = admin.get("").json()["smtpServer"]
        assert {k: smtp[k] for k in ("host", "port", "from", "ssl", "starttls", "auth")} == {
            "host": "127.0.0.1",
            "port": str(smtp_port),
            "from": "socle@socle.localhost",
            "ssl": "false",
            "starttls": "false",
            "auth": "false",
        }
        email = "operateur@socle.localhost"
        (user,) = admin.get("/users", params={"email": email, "exact": "true"}).json()
        sent_by_keycloak = admin.put(f"/users/{user['id']}/execute-actions-email", json=["UPDATE_PASSWORD"])
        assert sent_by_keycloak.status_code == 204, sent_by_keycloak.text
    invitation = wait_for_mail(state / "mail", f"Delivered-To: {email}")
    assert "Return-Path: <socle@socle.localhost>" in invitation
    body = email_parser.Parser(policy=email_policy.default).parsestr(invitation).get_body(preferencelist=("plain",))
    assert body is not None
    assert f"{keycloak_url}/realms/socle/login-actions/action-token?key=" in body.get_content()
    log = (state / "logs" / "mail.log").read_text()
    assert f"to {email}:" in log
    assert "to agent@mairie-exemple.fr: Essai du puits de courrier" in log
    # Onboarding the demo EPCI invited each first admin by e-mail (Keycloak's action link), in the
    # realm's own words: who invites, what Socle is; the link's last page leads on to the console.
    for first_admin, inviter in (
        ("dgs@mairie-sommieres.fr", "Sommières (30321)"),
        ("admin.socle@cc-paysdesommieres.fr", "Pays de Sommières (services communautaires) (243000296)"),
    ):
        welcome = wait_for_mail(state / "mail", f"Delivered-To: {first_admin}")
        text = email_parser.Parser(policy=email_policy.default).parsestr(welcome).get_body(preferencelist=("plain",))
        assert text is not None
        content = text.get_content()
        assert content.startswith(f"{inviter} vous invite sur Socle."), content
        assert "Socle est la plateforme de données" in content
        (link,) = re.findall(
            rf"{re.escape(keycloak_url)}/realms/socle/login-actions/action-token\?key=[\w.-]+", content
        )
        if first_admin.startswith("dgs@"):
            last = complete_invitation(link, password="Sommieres-Dgs-2026", first_name="Dominique", last_name="Garcia")
            assert "Votre compte a été mis à jour" in visible_text(last), visible_text(last)[:800]
            assert f'href="{console_url}/"' in last.text


def check_demo_logins(banner: str, issuer: str, tenancy_url: str, state: Path) -> None:
    """Every role has a printed login; the EPCI admin logs in on the command line and applies as themselves."""
    otpauth = re.search(r"otpauth://totp/\S+", banner)
    assert otpauth is not None, banner
    secret = secret_of(otpauth.group(0))
    printed = {
        m.group(1): m.group(2) for m in re.finditer(r"^  (\S+@socle\.localhost)\s+(\S+)\s", banner, re.MULTILINE)
    }
    assert set(printed) == {user.email for user in DEMO_USERS}, banner
    tokens = login.TokenStore(state / "session" / "tokens.json")
    for user in DEMO_USERS:

        def approve(device: dict[str, object], user: DemoUser = user) -> None:
            page = approve_device_login(
                str(device["verification_uri_complete"]),
                user.email,
                printed[user.email],
                otp_secret=secret if user.needs_otp else None,
            )
            assert "Vous pouvez fermer cette fenêtre" in page.text, visible_text(page)[:800]

        with httpx.Client(timeout=30) as http:
            session = login.device_login(issuer, show=approve, http=http, sleep=lambda _: None)
        claims = unverified_claims(session.access_token)
        assert user.role in claims["realm_access"]["roles"]
        assert list(claims.get("organization") or {}) == ([user.organization] if user.organization else [])
        if user.role == "epci-admin":
            tokens.save(session)
    again = subprocess.run(
        [sys.executable, "-m", "socle_tenancy.domain.declarations", "apply", "tenants/demo/cc-pays-de-sommieres.json"],
        env={
            "PATH": os.environ.get("PATH", ""),
            "SOCLE_TENANTS_API": tenancy_url,
            "SOCLE_TENANTS_ISSUER": issuer,
            "SOCLE_TOKEN_FILE": str(tokens.path),
        },
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert "Rien à faire" in again.stdout


@pytest.fixture
def scratch_state():
    state = Path(tempfile.mkdtemp(prefix="socle-up-"))
    state.chmod(0o755)  # the embedded PostgreSQL runs as its own user under root
    yield state
    shutil.rmtree(state, ignore_errors=True)


@pytest.mark.timeout(1800)  # starts: up to READY_TIMEOUT each on a loaded machine
def test_up_reaches_ready_and_down_leaves_nothing_behind(scratch_state: Path) -> None:
    ports = free_service_ports()
    env = scratch_env(scratch_state, ports)
    with running_stack(env) as stack:
        banner = stack.banner
        assert "Socle is ready" in banner, banner
        for service, port in ports.items():
            response = httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=10)
            assert response.status_code == 200, f"{service}: {response.text}"
        issuer = f"http://127.0.0.1:{env['SOCLE_KEYCLOAK_PORT']}/realms/socle"
        assert httpx.get(f"{issuer}/.well-known/openid-configuration", timeout=10).json()["issuer"] == issuer
        assert "Demo logins" in banner
        assert f"http://localhost:{ports['console']}/" in banner
        assert "demo EPCI applied from tenants/demo/cc-pays-de-sommieres.json" in banner
        assert f"mail         {scratch_state / 'mail'}/ (development sink)" in banner
        assert "now sends its e-mails to the mail sink" not in banner
        check_mail(
            scratch_state,
            f"http://127.0.0.1:{env['SOCLE_KEYCLOAK_PORT']}",
            int(env["SOCLE_SMTP_PORT"]),
            f"http://localhost:{ports['console']}",
        )
        check_demo_epci(scratch_state, issuer, f"http://127.0.0.1:{ports['tenancy']}")
        check_demo_logins(banner, issuer, f"http://127.0.0.1:{ports['tenancy']}", scratch_state)
        check_stack_file(scratch_state, issuer, ports, env)
    assert not (scratch_state / "stack.json").exists()
    assert stack.down is not None
    assert stack.down.returncode == 0, stack.down.stdout + stack.down.stderr
    assert stack.up is not None
    assert stack.up.returncode == 0
    time.sleep(1)
    assert processes_mentioning(str(scratch_state)) == []
    assert not (scratch_state / "pids.json").exists()
    restart_with_make_up_then_ctrl_c(env, ports, scratch_state)


def restart_with_make_up_then_ctrl_c(env: dict[str, str], ports: dict[str, int], state: Path) -> None:
    """``make up`` again on the state left behind keeps the data; Ctrl-C stops everything.

    Ctrl-C in a terminal sends SIGINT to the whole foreground process group (make, uv and the
    supervisor): the test starts ``make up`` in a group of its own and signals that group.
    The instance's record of the realm file it imported is made to differ from the file, as after
    a checkout that changed the realm: the start warns that the kept realm is the old one.
    """
    imported = state / "keycloak" / "imported-realms.sha256"
    assert len(imported.read_text().strip()) == 64
    imported.write_text("0" * 64 + "\n")
    up = subprocess.Popen(
        ["make", "--no-print-directory", "up"],
        env=env,
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        banner, _ = read_until_ready(up)
        assert "Socle is ready" in banner, banner
        # The database cluster, the realm and the demo EPCI were kept.
        assert "demo EPCI (tenants/demo/cc-pays-de-sommieres.json) already applied: nothing to do" in banner
        assert "starting PostgreSQL" in banner
        assert "warning: infra/keycloak/socle-realm.json changed since this Keycloak instance imported it" in banner
        assert httpx.get(f"http://127.0.0.1:{ports['tenancy']}/health/ready", timeout=10).status_code == 200
        os.killpg(up.pid, signal.SIGINT)
        rest, _ = up.communicate(timeout=120)
    finally:
        if up.poll() is None:
            subprocess.run(
                [sys.executable, "-m", "socle_devstack.cli", "down"], env=env, cwd=REPO_ROOT, timeout=120, check=False
            )
            up.kill()
            up.wait(timeout=30)
    assert "[socle] stopped" in rest, banner + rest
    time.sleep(1)
    assert processes_mentioning(str(state)) == []
    assert not (state / "pids.json").exists()
    for port in ports.values():
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{port}/health/live", timeout=2)


@pytest.mark.timeout(1800)  # starts: up to READY_TIMEOUT each on a loaded machine
def test_up_on_an_existing_postgresql_server_leaves_that_server_running(scratch_state: Path) -> None:
    """``SOCLE_DATABASE_URL`` set: no embedded server; the stack provisions the server it is given."""
    server = PostgresServer(
        scratch_state / "existing-pg",
        free_port(),
        debian_bin_dir() or embedded_bin_dir(),
        scratch_state / "existing-pg.log",
        durable=False,
    )
    server.start()
    try:
        ports = free_service_ports()
        env = scratch_env(scratch_state / "state", ports, SOCLE_DATABASE_URL=server.admin_dsn)
        with running_stack(env) as stack:
            assert "Socle is ready" in stack.banner, stack.banner
            assert f"using the existing PostgreSQL at 127.0.0.1:{server.port}" in stack.banner
            assert "starting PostgreSQL" not in stack.banner
            assert not (scratch_state / "state" / "postgres").exists()
            for service, port in ports.items():
                response = httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=10)
                assert response.status_code == 200, f"{service}: {response.text}"
        assert stack.down is not None
        assert stack.down.returncode == 0, stack.down.stdout + stack.down.stderr
        # The server it was given is not the stack's to stop; it now holds Socle's database.
        schemas = asyncio.run(_schemas(server.admin_dsn))
        assert set(SERVICES) <= schemas
        assert processes_mentioning(str(scratch_state / "state")) == []
    finally:
        server.stop()


async def _schemas(admin_dsn: str) -> set[str]:
    connection = await asyncpg.connect(admin_dsn.rsplit("/", 1)[0] + "/socle")
    try:
        return {row["nspname"] for row in await connection.fetch("SELECT nspname FROM pg_namespace")}
    finally:
        await connection.close()
