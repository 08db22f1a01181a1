"""Device and integration credentials: a second way the core issues a ``TenantId``, chosen per route.

A small app declares one credential route (backed by a real table of the ingestion schema,
created here, read by the application role) and one bearer route; it is served by uvicorn so
that a large body reaches the handler as a stream of chunks, as it would in production.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from litestar import Request, get, post
from litestar.di import NamedDependency
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from socle_core import credentials
from socle_core.access import credential, tenant_own
from socle_core.app import create_service_app
from socle_core.credentials import CredentialVerifier, StoredCredential
from socle_core.tenant import TenantId
from socle_ingestion.config import IngestionSettings
from tests.support.apps import served, settings_kwargs

PEPPER = "poivre-de-test-" + "x" * 32
TABLE = f"ingestion.test_credentials_{uuid.uuid4().hex[:8]}"
#: Larger than any buffer on the way: the handler must see it in several chunks.
LARGE_BODY_BYTES = 3 << 20


class TableResolver:
    """What ingestion will implement against its own table: a row by prefix."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def resolve(self, prefix: str) -> StoredCredential | None:
        async with self.engine.connect() as connection:
            row = (
                await connection.execute(
                    text(f"SELECT tenant_id, integration_id, digest, revoked FROM {TABLE} WHERE prefix = :p"),
                    {"p": prefix},
                )
            ).one_or_none()
        return StoredCredential(row.tenant_id, row.integration_id, bytes(row.digest), row.revoked) if row else None


@post("/v1/readings", access=credential("a device sends readings for its own commune"), status_code=200)
async def receive(
    request: Request[Any, Any, Any], caller_tenant: NamedDependency[TenantId], db_session: NamedDependency[AsyncSession]
) -> dict[str, Any]:
    chunks = size = 0
    async for chunk in request.stream():
        chunks += bool(chunk)
        size += len(chunk)
    context = await db_session.scalar(text("SELECT current_setting('app.tenant_id', true)"))
    return {
        "tenant": str(caller_tenant),
        "context": context,
        "integration": str(request.user.integration_id),
        "chunks": chunks,
        "bytes": size,
    }


@get("/v1/whoami", access=tenant_own(why="the caller's own identity"))
async def whoami(caller_tenant: NamedDependency[TenantId]) -> dict[str, str]:
    return {"tenant": str(caller_tenant)}


@pytest.fixture(scope="module")
async def rows(database: Any) -> AsyncIterator[dict[str, Any]]:
    """Three credentials of two communes: one valid per commune, one revoked."""
    from sqlalchemy.ext.asyncio import create_async_engine

    owner = create_async_engine(database.url("ingestion", "owner"))
    issued = {name: credentials.issue(PEPPER) for name in ("a", "b", "revoked")}
    tenants = {"a": uuid.uuid4(), "b": uuid.uuid4(), "revoked": uuid.uuid4()}
    integrations = {name: uuid.uuid4() for name in issued}
    async with owner.begin() as connection:
        await connection.execute(
            text(
                f"CREATE TABLE {TABLE} (prefix text PRIMARY KEY, tenant_id uuid NOT NULL, "
                "integration_id uuid NOT NULL, digest bytea NOT NULL, revoked boolean NOT NULL)"
            )
        )
        await connection.execute(text(f"GRANT SELECT ON {TABLE} TO socle_ingestion_app"))
        for name, cred in issued.items():
            await connection.execute(
                text(f"INSERT INTO {TABLE} VALUES (:p, :t, :i, :d, :r)"),
                {
                    "p": cred.prefix,
                    "t": tenants[name],
                    "i": integrations[name],
                    "d": cred.digest,
                    "r": name == "revoked",
                },
            )
    yield {"issued": issued, "tenants": tenants, "integrations": integrations}
    async with owner.begin() as connection:
        await connection.execute(text(f"DROP TABLE {TABLE}"))
    await owner.dispose()


@pytest.fixture(scope="module")
def base_url(rows: dict[str, Any], database: Any, keycloak: Any) -> Iterator[str]:
    with pytest.MonkeyPatch.context() as patch:
        import os

        for key in [k for k in os.environ if k.upper().startswith("SOCLE_")]:
            patch.delenv(key)
        settings = IngestionSettings(**settings_kwargs("ingestion", database, keycloak))
        app = create_service_app(
            settings,
            [receive, whoami],
            title="credential probe",
            description="credential probe",
            credential_verifier=lambda engine: CredentialVerifier(TableResolver(engine), PEPPER),
        )
    with served(app) as url:
        yield url


def _refused(response: httpx.Response, detail_part: str) -> dict[str, Any]:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == 401
    assert body["type"] in ("urn:socle:problem:invalid-credential", "urn:socle:problem:invalid-token")
    assert detail_part in body["detail"], body
    return body


def _large_body(other_tenant: uuid.UUID) -> Iterator[bytes]:
    """A JSON object naming another tenant first (the tenant guard would refuse it, had it read it)."""
    yield f'{{"tenant_id": "{other_tenant}", "readings": ['.encode()
    reading = b'{"t": "2026-12-01T00:00:00Z", "v": 1.25},'
    for _ in range(LARGE_BODY_BYTES // len(reading)):
        yield reading
    yield b'{"t": "2026-12-01T00:00:01Z", "v": 1.5}]}'


def test_a_valid_credential_gives_its_rows_tenant_and_the_rls_context_and_its_body_is_streamed(
    base_url: str, rows: dict[str, Any]
) -> None:
    cred = rows["issued"]["a"]
    response = httpx.post(
        f"{base_url}/v1/readings",
        content=_large_body(rows["tenants"]["b"]),
        headers={"Authorization": f"Bearer {cred.value}", "Content-Type": "application/json"},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["tenant"] == body["context"] == str(rows["tenants"]["a"])
    assert body["integration"] == str(rows["integrations"]["a"])
    assert body["bytes"] > LARGE_BODY_BYTES
    assert body["chunks"] > 1  # read as it came: neither the tenant guard nor the input checks buffered it


@pytest.mark.parametrize(
    ("case", "detail"),
    [
        ("wrong secret", "inconnue ou secret incorrect"),
        ("unknown prefix", "inconnue ou secret incorrect"),
        ("revoked", "révoquée"),
        ("malformed", "socle_<préfixe>_<secret>"),
        ("none", "demande une clé d'intégration"),
    ],
)
def test_a_bad_credential_is_refused_with_401_in_french(
    base_url: str, rows: dict[str, Any], case: str, detail: str
) -> None:
    good = rows["issued"]["a"]
    presented = {
        "wrong secret": f"socle_{good.prefix}_{'A' * 43}",
        "unknown prefix": f"socle_{'z' * 12}_{good.value[-43:]}",
        "revoked": rows["issued"]["revoked"].value,
        "malformed": "socle_court",
        "none": None,
    }[case]
    headers = {"Authorization": f"Bearer {presented}"} if presented else {}
    body = _refused(httpx.post(f"{base_url}/v1/readings", content=b"{}", headers=headers), detail)
    assert body["type"] == "urn:socle:problem:invalid-credential"


def test_a_keycloak_token_is_refused_on_a_credential_route(base_url: str, kc_admin: Any) -> None:
    client = kc_admin.create_client(roles=("device",), organization=("commune-30321", uuid.uuid4()))
    token = kc_admin.token(client)["access_token"]
    response = httpx.post(f"{base_url}/v1/readings", content=b"{}", headers={"Authorization": f"Bearer {token}"})
    _refused(response, "pas un jeton d'accès")


def test_a_credential_is_refused_on_a_bearer_route(base_url: str, rows: dict[str, Any]) -> None:
    response = httpx.get(f"{base_url}/v1/whoami", headers={"Authorization": f"Bearer {rows['issued']['a'].value}"})
    body = _refused(response, "une clé d'intégration n'y est pas acceptée")
    assert body["type"] == "urn:socle:problem:invalid-token"


def test_an_app_with_a_credential_route_needs_a_verifier(clean_socle_env: Any, database: Any, keycloak: Any) -> None:
    from socle_core.access import UndeclaredAccess

    settings = IngestionSettings(**settings_kwargs("ingestion", database, keycloak))
    with pytest.raises(UndeclaredAccess, match="credential_verifier"):
        create_service_app(settings, [receive], title="t", description="t")


def test_the_stored_digest_is_a_peppered_hmac_never_the_secret() -> None:
    issued = credentials.issue(PEPPER)
    assert issued.value.startswith(f"socle_{issued.prefix}_")
    secret = issued.value.removeprefix(f"socle_{issued.prefix}_")
    assert credentials.CREDENTIAL_FORMAT.match(issued.value)
    assert secret.encode() not in issued.digest
    assert credentials.digest(PEPPER, secret) == issued.digest
    assert credentials.digest(PEPPER + "autre", secret) != issued.digest
    with pytest.raises(ValueError, match="pepper"):
        CredentialVerifier(TableResolver(None), "court")  # type: ignore[arg-type]
