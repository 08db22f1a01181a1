"""The whole platform as local processes: what ``make up`` runs and the tests reuse.

Order: PostgreSQL (embedded by default, or an existing server given by
``SOCLE_DATABASE_URL``), the database roles and schemas of every service, the development
mail sink, Keycloak with the realm imported (its e-mails sent to the sink), every service's
migrations (as the schema owner, through each service's migrator role: owners cannot log
in), then every service (as its application role) under uvicorn. One log file per process under the state folder.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from socle_core.provisioning import ServiceRoles, create_database, provision_service
from socle_core.server import UVICORN_ARGS
from socle_devstack.keycloak import KeycloakServer
from socle_devstack.mail import MailSink
from socle_devstack.postgres import RUN_AS, PostgresServer, debian_bin_dir, embedded_bin_dir, server_group
from socle_devstack.processes import http_ok, private_file, spawn, stop_group, wait_for

SERVICES = ("tenancy", "identity", "ingestion", "timeseries", "billing", "console")
DEFAULT_PORTS = {
    "console": 8100,
    "tenancy": 8101,
    "identity": 8102,
    "ingestion": 8103,
    "timeseries": 8104,
    "billing": 8105,
}
DATABASE = "socle"
#: The only environment the local stack runs in (and the only one its demo accounts exist in).
DEVELOPMENT = "development"
REPO_ROOT = Path(__file__).resolve().parents[4]
REALM_FILES = [REPO_ROOT / "infra" / "keycloak" / "socle-realm.json"]
#: The isolation report's Ed25519 private key (PEM), under the name older stacks kept an HMAC key.
REPORT_SIGNING_KEY = "report_signing_key"


@dataclass
class Credentials:
    """Per-service role passwords and client secrets of one local stack."""

    passwords: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load_or_create(cls, path: Path | None, prefix: str = "dev-only-") -> Credentials:
        """Random secrets; marked development-only unless a throw-away test stack asks otherwise."""
        known: dict[str, str] = json.loads(path.read_text()) if path is not None and path.exists() else {}
        missing = [name for name in cls.names() if name not in known or not cls._usable(name, known[name])]
        known = {name: value for name, value in known.items() if name not in missing}
        if path is not None and not missing:
            private_file(path)  # readable by its owner only, however it was created
        if not missing:
            return cls(known)
        # A stack created by an older version keeps its secrets and gains the new ones.
        creds = cls({**{name: cls._generate(name, prefix) for name in missing}, **known})
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            private_file(path, json.dumps(creds.passwords, indent=2))
        return creds

    @staticmethod
    def names() -> list[str]:
        roles = [f"{s}_{kind}" for s in SERVICES for kind in ("migrator", "app")]
        secrets_ = [
            "console_client",
            "platform_client",
            "keycloak_admin",
            REPORT_SIGNING_KEY,
            "audit_heads_signing_key",
        ]
        return [*roles, *secrets_, "demo_password", "demo_totp_secret"]

    @staticmethod
    def _generate(name: str, prefix: str) -> str:
        """Each secret drawn on its own: none is derived from another (the demo password from the admin's, say)."""
        if name == "demo_password":
            # The realm's password policy: 12 characters or more, upper and lower case, a digit.
            return f"Demo-{secrets.token_urlsafe(12)}-9a"
        if name == "demo_totp_secret":
            return secrets.token_hex(10)  # the text Keycloak keys TOTP with, as its own are (20 characters)
        if name == REPORT_SIGNING_KEY:  # an Ed25519 private key (PEM), marked by its comment line
            pem = Ed25519PrivateKey.generate().private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
            return f"{prefix}report signing key of this local stack\n{pem.decode()}"
        return f"{prefix}{secrets.token_urlsafe(36 if name.endswith('_key') else 12)}"

    @staticmethod
    def _usable(name: str, value: str) -> bool:
        """False for a kept secret of a format this version no longer takes (the HMAC key of old stacks)."""
        return name != REPORT_SIGNING_KEY or "-----BEGIN PRIVATE KEY-----" in value

    def __getitem__(self, name: str) -> str:
        return self.passwords[name]


@dataclass
class Database:
    """Where the services' database lives and how each role reaches it."""

    host: str
    port: int
    admin_dsn: str
    credentials: Credentials

    def url(self, service: str, kind: str) -> str:
        """``app``: the application role; ``owner``: the schema owner, reached through the migrator role.

        The owner is NOLOGIN: its URL logs in as the migrator, whose default role is the owner.
        """
        roles = ServiceRoles.for_service(service)
        user, secret = (roles.app, f"{service}_app") if kind == "app" else (roles.migrator, f"{service}_migrator")
        return f"postgresql+asyncpg://{user}:{self.credentials[secret]}@{self.host}:{self.port}/{DATABASE}"

    async def provision(self, services: tuple[str, ...] = SERVICES) -> None:
        await create_database(self.admin_dsn, DATABASE)
        database_admin = _with_database(self.admin_dsn, DATABASE)
        for service in services:
            await provision_service(
                database_admin,
                DATABASE,
                ServiceRoles.for_service(service),
                self.credentials[f"{service}_migrator"],
                self.credentials[f"{service}_app"],
            )


def _with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return parts._replace(path=f"/{database}").geturl()


def service_env(
    service: str, database: Database, issuer: str, environment: str = DEVELOPMENT, extra: dict[str, str] | None = None
) -> dict[str, str]:
    prefix = f"SOCLE_{service.upper()}_"
    env = {
        f"{prefix}ENVIRONMENT": environment,
        f"{prefix}DATABASE_URL": database.url(service, "app"),
        f"{prefix}MIGRATION_DATABASE_URL": database.url(service, "owner"),
        f"{prefix}OIDC_ISSUER": issuer,
    }
    env.update(extra or {})
    return env


def migrate(service: str, env: dict[str, str], log_file: Path) -> None:
    log_file.parent.mkdir(parents=True, exist_ok=True)
    private_file(log_file)
    with log_file.open("ab") as log:
        result = subprocess.run(
            [sys.executable, "-m", f"socle_{service}.db.migrate", "upgrade"],
            env={**_clean_env(), **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if result.returncode != 0:
        raise RuntimeError(f"migrations of {service} failed; see {log_file}")


def _clean_env() -> dict[str, str]:
    """The parent's environment without any SOCLE_<SERVICE>_ variable (strict settings)."""
    prefixes = tuple(f"SOCLE_{s.upper()}_" for s in SERVICES)
    return {k: v for k, v in os.environ.items() if not k.upper().startswith(prefixes)}


@dataclass
class ServiceProcess:
    service: str
    port: int
    log_file: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, env: dict[str, str]) -> None:
        self.process = spawn(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                f"socle_{self.service}.app:create_app",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--no-access-log",
                *UVICORN_ARGS,
            ],
            self.log_file,
            env={**_clean_env(), **env},
            inherit=False,
        )

    def wait_ready(self, timeout: float = 60) -> None:
        wait_for(http_ok(f"{self.url}/health/ready"), timeout, f"service {self.service}", self.log_file, self.process)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            stop_group(self.process.pid, process=self.process)


def private_state_dir(state_dir: Path) -> None:
    """The stack's folder and its logs: for the user running it only (0700)."""
    for directory in (state_dir, state_dir / "logs"):
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(0o700)


def start_postgres(state_dir: Path, port: int, source: str, durable: bool = True) -> PostgresServer:
    """The stack's own server, in ``postgres/`` of the folder ``private_state_dir`` prepared.

    Under root PostgreSQL runs as its own system user, which must pass through the stack's
    folder and its logs to reach its data and its log: they then belong to that user's
    group, which may only traverse them (0710); ``postgres/`` belongs to that user alone.
    """
    bin_dir = embedded_bin_dir() if source == "embedded" else debian_bin_dir()
    if bin_dir is None:
        raise RuntimeError("Debian's PostgreSQL is not installed: apt-get install postgresql")
    group = server_group()
    if group is not None:
        for directory in (state_dir, state_dir / "logs"):
            os.chown(directory, -1, group)
            directory.chmod(0o710)
    server_dir = state_dir / "postgres"
    server_dir.mkdir(exist_ok=True)
    if group is not None:
        shutil.chown(server_dir, RUN_AS)
    server_dir.chmod(0o700)
    server = PostgresServer(
        state_dir / "postgres" / "data", port, bin_dir, state_dir / "logs" / "postgres.log", durable=durable
    )
    server.start()
    return server


def keycloak_env(console_url: str, credentials: Credentials, mail: MailSink | None = None) -> dict[str, str]:
    """The realm file's placeholders; without ``mail`` the realm has no SMTP host (tests set their own)."""
    env = {
        "SOCLE_CONSOLE_URL": console_url,
        "SOCLE_CONSOLE_CLIENT_SECRET": credentials["console_client"],
        "SOCLE_PLATFORM_CLIENT_SECRET": credentials["platform_client"],
    }
    if mail is not None:
        env.update(mail.keycloak_env())
    discovery = os.environ.get("SOCLE_PROCONNECT_DISCOVERY_URL")
    if discovery:
        env.update(proconnect_env(discovery))
    return env


#: The realm's ProConnect placeholders filled from the provider's discovery document.
_PROCONNECT_ENDPOINTS = {
    "SOCLE_PROCONNECT_ISSUER": "issuer",
    "SOCLE_PROCONNECT_AUTHORIZATION_URL": "authorization_endpoint",
    "SOCLE_PROCONNECT_TOKEN_URL": "token_endpoint",
    "SOCLE_PROCONNECT_USERINFO_URL": "userinfo_endpoint",
    "SOCLE_PROCONNECT_JWKS_URL": "jwks_uri",
    "SOCLE_PROCONNECT_LOGOUT_URL": "end_session_endpoint",
}


def proconnect_env(discovery_url: str) -> dict[str, str]:
    """Enable the realm's ``proconnect`` identity provider with the endpoints its discovery document announces.

    The client id and secret are not here: Keycloak reads ``SOCLE_PROCONNECT_CLIENT_ID`` and
    ``SOCLE_PROCONNECT_CLIENT_SECRET`` from its environment (docs/operations/proconnect.md).
    """
    response = httpx.get(discovery_url, timeout=10)
    response.raise_for_status()
    document = response.json()
    missing = [key for key in _PROCONNECT_ENDPOINTS.values() if not document.get(key)]
    if missing:
        raise RuntimeError(f"the ProConnect discovery document {discovery_url} has no {', '.join(missing)}")
    env = {name: str(document[key]) for name, key in _PROCONNECT_ENDPOINTS.items()}
    env["SOCLE_PROCONNECT_ENABLED"] = "true"
    return env


def start_keycloak(
    state_dir: Path,
    port: int,
    management_port: int,
    console_url: str,
    credentials: Credentials,
    mail: MailSink | None = None,
) -> KeycloakServer:
    server = KeycloakServer(
        instance_dir=state_dir / "keycloak",
        port=port,
        management_port=management_port,
        realm_files=REALM_FILES,
        log_file=state_dir / "logs" / "keycloak.log",
        admin_password=credentials["keycloak_admin"],
        env=keycloak_env(console_url, credentials, mail),
    )
    server.start()
    return server


def provision(database: Database) -> None:
    asyncio.run(database.provision())
