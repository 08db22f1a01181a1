"""What every service gets from ``create_service_app``: health, metrics, OpenAPI, auth, errors.

Exercised through the identity service's real app on the real PostgreSQL and Keycloak.
"""

from __future__ import annotations

import uuid

import pytest
from litestar import get, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromQuery, JSONBody
from litestar.testing import AsyncTestClient
from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from socle_core.access import tenant_own
from socle_core.app import create_service_app
from socle_core.errors import Conflict, Forbidden, NotFound
from socle_identity.app import create_app
from socle_identity.config import IdentitySettings
from socle_ingestion.config import IngestionSettings
from tests.support.apps import settings_kwargs

#: The probe routes act for the caller's own tenant, whatever its role.
PROBE = tenant_own(why="probe of the request transaction")
PROBLEM_KEYS = {"type", "title", "status", "detail", "instance"}


@pytest.fixture
async def identity(clean_socle_env, database, keycloak):
    app = create_app(IdentitySettings(**settings_kwargs("identity", database, keycloak)))
    async with AsyncTestClient(app) as client:
        yield client


@pytest.fixture(scope="session")
def device_client(kc_admin):
    tenant = uuid.uuid4()
    return kc_admin.create_client(organization=("commune-29019", tenant), roles=("device",)), tenant


def assert_problem(response, status: int, slug: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert set(body) >= PROBLEM_KEYS, body
    assert body["type"] == f"urn:socle:problem:{slug}"
    assert body["status"] == status
    assert body["detail"]
    return body


async def test_health_live_and_ready_check_the_database_and_keycloak(identity) -> None:
    assert (await identity.get("/health/live")).json() == {"status": "ok"}
    ready = await identity.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json()["checks"]["database"]["status"] == "ok"
    assert ready.json()["checks"]["identity_provider"]["status"] == "ok"


async def test_ready_reports_a_database_it_cannot_reach(clean_socle_env, database, keycloak) -> None:
    broken = settings_kwargs(
        "identity", database, keycloak, database_url="postgresql+asyncpg://nobody:wrong@127.0.0.1:1/socle"
    )
    async with AsyncTestClient(create_app(IdentitySettings(**broken))) as client:
        response = await client.get("/health/ready")
    body = assert_problem(response, 503, "not-ready")
    assert body["checks"]["database"]["status"] == "failing"
    assert body["checks"]["identity_provider"]["status"] == "ok"


async def test_metrics_and_openapi_are_public(identity) -> None:
    await identity.get("/health/live")
    metrics = await identity.get("/metrics")
    assert metrics.status_code == 200
    assert 'requests_total{app_name="socle_identity",method="GET",path="/health/live"' in metrics.text
    schema = (await identity.get("/schema/openapi.json")).json()
    assert "/v1/me" in schema["paths"]
    assert schema["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


async def test_missing_token_is_a_problem_401_with_www_authenticate(identity) -> None:
    response = await identity.get("/v1/me")
    assert_problem(response, 401, "unauthenticated")
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("token", ["garbage", "e30.e30.", "a.b.c"])
async def test_invalid_tokens_are_problem_401(identity, token) -> None:
    response = await identity.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert_problem(response, 401, "invalid-token")


async def test_a_real_token_reaches_the_endpoint_with_its_tenant(identity, kc_admin, device_client) -> None:
    client, tenant = device_client
    token = kc_admin.token(client)["access_token"]
    response = await identity.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["tenant_id"] == str(tenant)
    assert body["organization"] == "commune-29019"
    assert body["client_id"] == client.client_id
    assert response.headers["x-request-id"]


async def test_correlation_id_from_the_caller_is_kept(identity) -> None:
    response = await identity.get("/health/live", headers={"X-Request-ID": "gateway-1234567"})
    assert response.headers["x-request-id"] == "gateway-1234567"
    response = await identity.get("/health/live", headers={"X-Request-ID": "bad id with spaces"})
    assert response.headers["x-request-id"] != "bad id with spaces"


async def test_a_refusal_by_the_authentication_middleware_keeps_the_request_id_and_logs_its_status(
    identity, caplog
) -> None:
    """Middleware errors are answered by the app-level handler, outside the correlation middleware."""
    caplog.clear()
    response = await identity.get("/v1/me", headers={"X-Request-ID": "gateway-7654321"})
    assert_problem(response, 401, "unauthenticated")
    assert response.headers.get_list("x-request-id") == ["gateway-7654321"]
    accesses = [r.msg for r in caplog.records if r.name == "socle.access" and isinstance(r.msg, dict)]
    assert [(a["path"], a["status"], a["request_id"]) for a in accesses] == [("/v1/me", 401, "gateway-7654321")]
    ok = await identity.get("/health/live", headers={"X-Request-ID": "gateway-7654322"})
    assert ok.headers.get_list("x-request-id") == ["gateway-7654322"]


class DeviceIn(BaseModel):
    name: str = Field(min_length=1)
    kind: str


@pytest.fixture
async def probe_app(clean_socle_env, database, keycloak, owner_engine):
    """An app with handlers that exercise the request transaction and the error envelope."""

    @post("/probe/devices", access=PROBE)
    async def create_device(
        data: JSONBody[DeviceIn], db_session: NamedDependency[AsyncSession], fail: FromQuery[bool] = False
    ) -> dict[str, str]:
        await db_session.execute(
            text(
                "INSERT INTO ingestion.devices (tenant_id, id, external_id, name, kind) "
                "VALUES (current_setting('app.tenant_id')::uuid, :id, :e, :n, :k)"
            ),
            {"id": uuid.uuid4(), "e": data.name, "n": data.name, "k": data.kind},
        )
        if fail:
            raise Conflict("a later step failed: nothing may be kept")
        return {"name": data.name}

    @get("/probe/devices", access=PROBE)
    async def list_devices(db_session: NamedDependency[AsyncSession]) -> list[str]:
        return list((await db_session.execute(text("SELECT name FROM ingestion.devices"))).scalars())

    @get("/probe/missing", access=PROBE)
    async def missing() -> None:
        raise NotFound("no device with this id", device_id="d-1")

    @get("/probe/crash", access=PROBE)
    async def crash() -> None:
        raise RuntimeError("secret internals: password=hunter2")

    async def refuse_after_a_query(db_session: NamedDependency[AsyncSession]) -> None:
        await db_session.execute(text("SELECT count(*) FROM ingestion.devices"))  # checks a connection out
        raise Forbidden("this role may not do this")

    @get("/probe/guarded", dependencies={"guard": Provide(refuse_after_a_query)}, access=PROBE)
    async def guarded(db_session: NamedDependency[AsyncSession], guard: NamedDependency[None]) -> None:
        raise AssertionError("the guard must have refused")

    settings = IngestionSettings(**settings_kwargs("ingestion", database, keycloak))
    app = create_service_app(
        settings, [create_device, list_devices, missing, crash, guarded], title="probe", description="probe"
    )
    async with AsyncTestClient(app) as client:
        yield client


async def test_request_transaction_commits_on_success_and_rolls_back_on_error(
    probe_app, kc_admin, device_client
) -> None:
    client, _ = device_client
    auth = {"Authorization": f"Bearer {kc_admin.token(client)['access_token']}"}
    ok = await probe_app.post("/probe/devices", json={"name": "kept", "kind": "gauge"}, headers=auth)
    assert ok.status_code == 201, ok.text
    failed = await probe_app.post("/probe/devices?fail=true", json={"name": "dropped", "kind": "gauge"}, headers=auth)
    assert_problem(failed, 409, "conflict")
    names = (await probe_app.get("/probe/devices", headers=auth)).json()
    assert "kept" in names
    assert "dropped" not in names


async def test_a_dependency_refusing_after_the_session_started_leaves_no_connection_out(
    probe_app, kc_admin, device_client
) -> None:
    """Litestar never finalises the session dependency then; the core's hook must roll back and close it."""
    client, _ = device_client
    auth = {"Authorization": f"Bearer {kc_admin.token(client)['access_token']}"}
    for _ in range(3):
        assert_problem(await probe_app.get("/probe/guarded", headers=auth), 403, "forbidden")
    assert probe_app.app.state.db_engine.pool.checkedout() == 0


async def test_a_bad_query_parameter_is_named_by_its_location(probe_app, kc_admin, device_client) -> None:
    client, _ = device_client
    auth = {"Authorization": f"Bearer {kc_admin.token(client)['access_token']}"}
    response = await probe_app.post("/probe/devices?fail=perhaps", json={"name": "x", "kind": "gauge"}, headers=auth)
    body = assert_problem(response, 422, "validation-error")
    assert [(e["location"], e["field"]) for e in body["errors"]] == [("query", "query.fail")]


async def test_validation_errors_name_each_field(probe_app, kc_admin, device_client) -> None:
    client, _ = device_client
    auth = {"Authorization": f"Bearer {kc_admin.token(client)['access_token']}"}
    response = await probe_app.post("/probe/devices", json={"name": ""}, headers=auth)
    body = assert_problem(response, 422, "validation-error")
    fields = {e["field"] for e in body["errors"]}
    assert {"body.name", "body.kind"} <= fields, body
    assert all(e["detail"] for e in body["errors"])


async def test_domain_problem_carries_its_extensions(probe_app, kc_admin, device_client) -> None:
    client, _ = device_client
    auth = {"Authorization": f"Bearer {kc_admin.token(client)['access_token']}"}
    body = assert_problem(await probe_app.get("/probe/missing", headers=auth), 404, "not-found")
    assert body["device_id"] == "d-1"
    assert body["instance"] == "/probe/missing"


async def test_unexpected_error_is_a_plain_500_without_internals(probe_app, kc_admin, device_client) -> None:
    client, _ = device_client
    auth = {"Authorization": f"Bearer {kc_admin.token(client)['access_token']}"}
    body = assert_problem(await probe_app.get("/probe/crash", headers=auth), 500, "internal-error")
    assert "hunter2" not in str(body)
    assert "RuntimeError" not in str(body)


async def test_unknown_route_is_a_problem_404(probe_app) -> None:
    assert_problem(await probe_app.get("/health/nothing-here"), 404, "not-found")


def test_problem_extension_may_not_shadow_a_problem_member() -> None:
    with pytest.raises(TypeError, match=r"\['status'\]"):
        NotFound("no such device", status="gone")
    assert NotFound("no such device", device_id="d-1").extensions == {"device_id": "d-1"}
