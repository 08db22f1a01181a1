"""Real servers for the whole suite, started once per session on free ports.

PostgreSQL comes from Debian's package when installed (CI), else from the embedded wheel;
Keycloak from its Maven Central distribution; the MQTT broker is Debian's mosquitto. Nothing
here is mocked: databases are built by running every service's migrations, tokens are issued
by the real Keycloak.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from socle_core.migrations import upgrade
from socle_devstack.keycloak import KeycloakServer
from socle_devstack.mqtt import MqttBroker
from socle_devstack.postgres import PostgresServer, debian_bin_dir, embedded_bin_dir
from socle_devstack.processes import free_port
from socle_devstack.stack import (
    DATABASE,
    REALM_FILES,
    REPO_ROOT,
    SERVICES,
    Credentials,
    Database,
    _with_database,
    keycloak_env,
    service_env,
)
from tests.support.registry import use_tenant_registry

pytest_plugins = ["tests.support.fixtures"]

#: Realms only the tests import: the upstream IdP standing in for ProConnect.
TEST_REALM_FILES = [REPO_ROOT / "infra" / "keycloak" / "test" / "proconnect-upstream-realm.json"]


@pytest.fixture(scope="session")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("socle-state")


@pytest.fixture(scope="session")
def credentials() -> Credentials:
    return Credentials.load_or_create(None, prefix="test-")


@pytest.fixture(scope="session")
def postgres(state_dir: Path) -> Iterator[PostgresServer]:
    # PostgreSQL runs as its own system user when the suite runs as root: its folder must
    # be reachable by that user, which pytest's private temporary folders are not.
    pg_root = Path(tempfile.mkdtemp(prefix="socle-test-pg-"))
    pg_root.chmod(0o755)
    bin_dir = debian_bin_dir() or embedded_bin_dir()
    server = PostgresServer(pg_root / "data", free_port(), bin_dir, pg_root / "postgres.log", durable=False)
    server.start()
    yield server
    server.stop()
    shutil.rmtree(pg_root, ignore_errors=True)


@pytest.fixture(scope="session")
def database(postgres: PostgresServer, credentials: Credentials) -> Database:
    """The `socle` database with every service's roles, schemas and migrations applied."""
    db = Database("127.0.0.1", postgres.port, postgres.admin_dsn, credentials)
    asyncio.run(db.provision())
    for service in SERVICES:
        migrations = REPO_ROOT / "services" / service / "src" / f"socle_{service}" / "db" / "migrations"
        upgrade(migrations, db.url(service, "owner"), service)
    use_tenant_registry(_with_database(postgres.admin_dsn, DATABASE))
    return db


@pytest.fixture(scope="session")
def keycloak(state_dir: Path, credentials: Credentials) -> Iterator[KeycloakServer]:
    server = KeycloakServer(
        instance_dir=state_dir / "kc",
        port=free_port(),
        management_port=free_port(),
        realm_files=[*REALM_FILES, *TEST_REALM_FILES],
        log_file=state_dir / "logs" / "keycloak.log",
        admin_password=credentials["keycloak_admin"],
        env=keycloak_env("http://localhost:18100", credentials),
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def mqtt_broker(state_dir: Path) -> Iterator[MqttBroker]:
    """Debian's mosquitto on a free port, started the first time a test asks for it."""
    broker = MqttBroker(state_dir / "mqtt", free_port(), state_dir / "logs" / "mosquitto.log")
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def service_settings_env(database: Database, keycloak: KeycloakServer) -> dict[str, dict[str, str]]:
    """The environment of each service pointing at the test servers (environment=test)."""
    return {s: service_env(s, database, keycloak.issuer, environment="test") for s in SERVICES}


@pytest.fixture
def clean_socle_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No SOCLE_* variable from the developer's shell leaks into a settings test."""
    for key in list(os.environ):
        if key.upper().startswith("SOCLE_"):
            monkeypatch.delenv(key)
    return monkeypatch


@pytest.fixture(scope="session")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=20) as client:
        yield client
