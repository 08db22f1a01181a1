"""``socle-stack up | down | clean``: the local platform in one command.

``up`` runs in the foreground and stops everything it started on Ctrl-C; ``down`` stops a
stack started from another terminal (it reads the process list ``up`` leaves behind);
``clean`` removes a stopped stack's state. Once ready, ``up`` describes itself in
``stack.json`` (``socle_core.local_stack``) for the command-line tools, until it stops.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

from socle_core.local_stack import STACK_FILE, process_alive, write_stack_file
from socle_devstack.demo import DemoLogin, apply_demo_epci, otpauth_uri, place_demo_users, seed_demo
from socle_devstack.mail import DEFAULT_PORT as DEFAULT_SMTP_PORT
from socle_devstack.mail import MailSink, send_realm_mail_to
from socle_devstack.postgres import PostgresServer, remove_cluster
from socle_devstack.processes import port_is_free, stop_group
from socle_devstack.stack import (
    DATABASE,
    DEFAULT_PORTS,
    DEVELOPMENT,
    REPO_ROOT,
    SERVICES,
    Credentials,
    Database,
    ServiceProcess,
    migrate,
    private_state_dir,
    provision,
    service_env,
    start_keycloak,
    start_postgres,
)


def _port(name: str, default: int) -> int:
    return int(os.environ.get(f"SOCLE_{name}_PORT", default))


def state_dir() -> Path:
    return Path(os.environ.get("SOCLE_STATE_DIR", REPO_ROOT / ".socle"))


def _say(message: str) -> None:
    print(f"[socle] {message}", flush=True)


def up() -> int:
    started = time.monotonic()
    state = state_dir()
    pids_file = state / "pids.json"
    stack_file = state / STACK_FILE
    if pids_file.exists():
        _say(f"a stack seems to be running already ({pids_file}); run `make down` first")
        return 1
    stack_file.unlink(missing_ok=True)  # left by a stack that was killed
    ports = {s: _port(s.upper(), p) for s, p in DEFAULT_PORTS.items()}
    kc_port, kc_mgmt = _port("KEYCLOAK", 8180), _port("KEYCLOAK_MANAGEMENT", 9180)
    smtp_port = _port("SMTP", DEFAULT_SMTP_PORT)
    named = [*ports.items(), ("keycloak", kc_port), ("smtp", smtp_port)]
    busy = [f"{n}={p}" for n, p in named if not port_is_free(p)]
    if busy:
        _say("ports already in use: " + ", ".join(busy) + " (set SOCLE_<NAME>_PORT to move them)")
        return 1
    private_state_dir(state)
    credentials = Credentials.load_or_create(state / "secrets.json")
    processes: dict[str, int] = {"supervisor": os.getpid()}
    postgres: PostgresServer | None = None
    services: list[ServiceProcess] = []
    keycloak = None
    mail = MailSink(state / "mail", smtp_port, state / "logs" / "mail.log")

    def stop_all(*_: object) -> None:
        # Ctrl-C reaches make, uv and this process at once, and uv passes its own SIGINT on:
        # a second signal must not cut the orderly stop short and leave servers behind.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
        _say("stopping...")
        stack_file.unlink(missing_ok=True)
        for service in services:
            service.stop()
        if keycloak is not None:
            keycloak.stop()
        mail.stop()
        if postgres is not None:
            postgres.stop()
        pids_file.unlink(missing_ok=True)
        _say("stopped")

    signal.signal(signal.SIGTERM, _interrupt)
    try:
        external = os.environ.get("SOCLE_DATABASE_URL")
        if external:
            parts = urlsplit(external)
            database = Database(parts.hostname or "127.0.0.1", parts.port or 5432, external, credentials)
            _say(f"using the existing PostgreSQL at {parts.hostname}:{parts.port or 5432}")
        else:
            source = os.environ.get("SOCLE_POSTGRES", "embedded")
            pg_port = _port("POSTGRES", 55432)
            _say(f"starting PostgreSQL ({source}) on port {pg_port}")
            postgres = start_postgres(state, pg_port, source)
            database = Database("127.0.0.1", pg_port, postgres.admin_dsn, credentials)
        provision(database)
        _say(f"starting the development mail sink on port {smtp_port} (mail: {state / 'mail'})")
        mail.start()
        assert mail.process is not None
        processes["mail"] = mail.process.pid
        _say(f"starting Keycloak on port {kc_port} (log: {state / 'logs' / 'keycloak.log'})")
        console_url = f"http://localhost:{ports['console']}"
        keycloak = start_keycloak(state, kc_port, kc_mgmt, console_url, credentials, mail)
        assert keycloak.process is not None
        processes["keycloak"] = keycloak.process.pid
        if keycloak.realm_outdated:
            _say(
                f"warning: {', '.join(str(f.relative_to(REPO_ROOT)) for f in keycloak.realm_files)} changed since "
                f"this Keycloak instance imported it; the realm in {state / 'keycloak'} is the old one "
                "(`make down && make clean && make up` starts over with the new one)"
            )
        if send_realm_mail_to(keycloak, mail):
            _say("the realm kept from an earlier run now sends its e-mails to the mail sink")
        issuer = keycloak.issuer
        for service in SERVICES:
            _say(f"migrating {service}")
            migrate(service, service_env(service, database, issuer), state / "logs" / f"migrate-{service}.log")
        for service in SERVICES:
            process = ServiceProcess(service, ports[service], state / "logs" / f"{service}.log")
            process.start(
                service_env(service, database, issuer, extra=_extra_env(service, ports, database, credentials))
            )
            services.append(process)
            assert process.process is not None
            processes[service] = process.process.pid
        pids_file.write_text(
            json.dumps(
                {
                    "pids": processes,
                    "postgres_data": str(postgres.data_dir) if postgres else None,
                    "postgres_bin": str(postgres.bin_dir) if postgres else None,
                }
            )
        )
        for process in services:
            process.wait_ready()
        logins = seed_demo(keycloak, credentials, DEVELOPMENT)
        _say("applying the demo EPCI through the tenancy API")
        tenancy_url = f"http://127.0.0.1:{ports['tenancy']}"
        _say(apply_demo_epci(tenancy_url, issuer, credentials, state / "logs" / "tenants-apply.log"))
        missing = place_demo_users(keycloak)
        if missing:
            _say(f"warning: no organization {', '.join(missing)} yet: its demo accounts belong to no tenant")
        otp = otpauth_uri(credentials["demo_totp_secret"])
        write_stack_file(
            state,
            supervisor_pid=os.getpid(),
            issuer=issuer,
            service_urls={s: f"http://127.0.0.1:{p}" for s, p in ports.items()},
            database_host=database.host,
            database_port=database.port,
            database_name=DATABASE,
        )
        _banner(ports, keycloak.url, logins, otp, time.monotonic() - started, state)
        while True:
            time.sleep(1)
            for process in services:
                if process.process is not None and process.process.poll() is not None:
                    raise RuntimeError(f"service {process.service} exited; see {process.log_file}")
            if mail.process is not None and mail.process.poll() is not None:
                raise RuntimeError(f"the mail sink exited; see {mail.log_file}")
    except KeyboardInterrupt:
        stop_all()
        return 0
    except Exception as exc:
        _say(f"error: {exc}")
        stop_all()
        return 1


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def _extra_env(service: str, ports: dict[str, int], database: Database, credentials: Credentials) -> dict[str, str]:
    if service == "tenancy":
        # Everything the isolation evidence report needs to probe every service on demand.
        return {
            "SOCLE_TENANCY_KEYCLOAK_CLIENT_SECRET": credentials["platform_client"],
            # Onboarding opens each tenant's metering account there.
            "SOCLE_TENANCY_BILLING_URL": f"http://127.0.0.1:{ports['billing']}",
            # The first admins' invitations end on a page linking to the console.
            "SOCLE_TENANCY_CONSOLE_URL": f"http://localhost:{ports['console']}",
            "SOCLE_TENANCY_REPORT_SIGNING_KEY": credentials["report_signing_key"],
            # The signed heads of the audit chains, published hourly outside the database.
            "SOCLE_TENANCY_AUDIT_HEADS_SIGNING_KEY": credentials["audit_heads_signing_key"],
            "SOCLE_TENANCY_AUDIT_HEADS_DIR": str(state_dir() / "audit-heads"),
            "SOCLE_TENANCY_ISOLATION_DATABASE_URLS": json.dumps({s: database.url(s, "app") for s in SERVICES}),
            "SOCLE_TENANCY_ISOLATION_SERVICE_URLS": json.dumps(
                {s: f"http://127.0.0.1:{p}" for s, p in ports.items() if s != "console"}
            ),
        }
    if service == "identity":
        return {"SOCLE_IDENTITY_KEYCLOAK_CLIENT_SECRET": credentials["platform_client"]}
    if service == "console":
        return {
            "SOCLE_CONSOLE_SERVICE_URLS": json.dumps(
                {s: f"http://127.0.0.1:{p}" for s, p in ports.items() if s != "console"}
            ),
            "SOCLE_CONSOLE_PUBLIC_URL": f"http://localhost:{ports['console']}",
            "SOCLE_CONSOLE_OIDC_CLIENT_SECRET": credentials["console_client"],
        }
    return {}


def _banner(
    ports: dict[str, int], keycloak_url: str, logins: list[DemoLogin], otp: str, elapsed: float, state: Path
) -> None:
    lines = [
        "",
        f"Socle is ready ({elapsed:.0f} s). Ctrl-C or `make down` stops everything.",
        "",
        f"  console      http://localhost:{ports['console']}/",
    ]
    lines += [
        f"  {s:<12} http://localhost:{ports[s]}/schema   (health: /health/ready)" for s in SERVICES if s != "console"
    ]
    lines += [
        f"  keycloak     {keycloak_url}/admin/   (realm: socle)",
        f"  mail         {_shown(state / 'mail')}/ (development sink)",
        "",
        "Demo logins (realm socle, development only; * = one-time password below):",
    ]
    lines += [f"  {d.email:<34} {d.password:<28} {d.what}{' *' if d.otp else ''}" for d in logins]
    lines += [
        "  one-time password (add it to an authenticator app, or compute it from the secret):",
        f"    {otp}",
        "  command line: `make login` (device code in the browser), then `make tenants-apply FILE=...`",
        "",
        f"Logs: {state / 'logs'}/<process>.log",
        "",
    ]
    print("\n".join(lines), flush=True)


def _shown(path: Path) -> str:
    """The path as typed from the current folder when it lies under it (``.socle/mail``)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def down() -> int:
    pids_file = state_dir() / "pids.json"
    (state_dir() / STACK_FILE).unlink(missing_ok=True)
    if not pids_file.exists():
        _say("no running stack found")
        return 0
    info = json.loads(pids_file.read_text())
    supervisor = info["pids"].pop("supervisor", 0)
    if supervisor and process_alive(supervisor):
        _say("asking the running `make up` to stop")
        os.kill(supervisor, signal.SIGTERM)
        deadline = time.monotonic() + 90
        # The supervisor removes the process list once everything it started has stopped.
        while pids_file.exists() and process_alive(supervisor) and time.monotonic() < deadline:
            time.sleep(0.3)
        if not pids_file.exists():
            pids_file.unlink(missing_ok=True)
            _say("stopped")
            return 0
    for name, pid in info["pids"].items():
        if pid > 0:
            _say(f"stopping {name}")
            stop_group(pid, timeout=30)
    if info.get("postgres_data"):
        _say("stopping postgres")
        server = PostgresServer(
            Path(info["postgres_data"]), 0, Path(info["postgres_bin"]), state_dir() / "logs" / "postgres.log"
        )
        server.stop()
    pids_file.unlink(missing_ok=True)
    _say("stopped")
    return 0


def clean() -> int:
    """Remove the state of a stopped stack: its folder, and its cluster kept outside it (if any)."""
    state = state_dir()
    if (state / "pids.json").exists():
        _say(f"a stack is running from {state}: `make down` first")
        return 1
    cluster = remove_cluster(state / "postgres" / "data")
    if cluster is not None:
        _say(f"removed the PostgreSQL cluster {cluster}")
    shutil.rmtree(state, ignore_errors=True)
    _say(f"removed {state}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="socle-stack", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "clean"])
    args = parser.parse_args(argv)
    return {"up": up, "down": down, "clean": clean}[args.command]()


if __name__ == "__main__":
    sys.exit(main())
