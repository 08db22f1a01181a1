"""Database constraint violations as problem+json, mapped once by the core, on the real PostgreSQL.

A throw-away database holds two real tables (a parent with a unique name, a child with a
foreign key, a not-null and a check, and a deferred foreign key that only the commit checks);
an app built by ``create_service_app`` writes them the way a service does (flush, then the
core's commit).
"""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest
from litestar import post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from litestar.testing import AsyncTestClient
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from socle_core import access
from socle_core.app import create_service_app
from socle_core.errors import ConstraintMessage
from socle_core.provisioning import ServiceRoles
from socle_ingestion.config import IngestionSettings
from tests.support.databases import throwaway_database

TABLES = """
CREATE TABLE ingestion.probe_sites (id uuid PRIMARY KEY, name text NOT NULL CONSTRAINT uq_probe_sites_name UNIQUE);
CREATE TABLE ingestion.probe_gauges (
    id uuid PRIMARY KEY,
    site_id uuid CONSTRAINT fk_probe_gauges_site_id_probe_sites REFERENCES ingestion.probe_sites (id),
    later_site_id uuid CONSTRAINT fk_probe_gauges_later_site_id_probe_sites REFERENCES ingestion.probe_sites (id)
        DEFERRABLE INITIALLY DEFERRED,
    label text NOT NULL,
    depth integer CONSTRAINT ck_probe_gauges_depth_positive CHECK (depth > 0)
);
GRANT SELECT, INSERT, UPDATE, DELETE ON ingestion.probe_sites, ingestion.probe_gauges TO {app};
"""


class SiteIn(BaseModel):
    name: str


class GaugeIn(BaseModel):
    site_id: uuid.UUID | None = None
    later_site_id: uuid.UUID | None = None
    label: str | None = None
    depth: int | None = None


@pytest.fixture(scope="module")
def scratch(database, credentials):
    with throwaway_database(database, credentials, ("tenancy", "ingestion"), prefix="socle_errors") as url:

        async def create() -> None:
            owner = await asyncpg.connect(url("ingestion", "owner").replace("+asyncpg", ""))
            try:
                await owner.execute(TABLES.format(app=ServiceRoles.for_service("ingestion").app))
            finally:
                await owner.close()

        asyncio.run(create())
        yield url


#: The probe routes need no token: what is tested is how a constraint violation is answered.
PROBE = access.public("constraint violations as problems")


@pytest.fixture
async def client(clean_socle_env, scratch):
    @post("/probe/sites", access=PROBE)
    async def create_site(data: JSONBody[SiteIn], db_session: NamedDependency[AsyncSession]) -> dict[str, str]:
        site_id = uuid.uuid4()
        await db_session.execute(
            text("INSERT INTO ingestion.probe_sites (id, name) VALUES (:id, :n)"), {"id": site_id, "n": data.name}
        )
        return {"id": str(site_id)}

    @post("/probe/gauges", access=PROBE)
    async def create_gauge(data: JSONBody[GaugeIn], db_session: NamedDependency[AsyncSession]) -> dict[str, str]:
        await db_session.execute(
            text(
                "INSERT INTO ingestion.probe_gauges (id, site_id, later_site_id, label, depth) "
                "VALUES (:id, :s, :l, :label, :d)"
            ),
            {"id": uuid.uuid4(), "s": data.site_id, "l": data.later_site_id, "label": data.label, "d": data.depth},
        )
        return {"label": str(data.label)}

    @post("/probe/sites/{site_id:uuid}/removal", access=PROBE)
    async def remove_site(site_id: FromPath[uuid.UUID], db_session: NamedDependency[AsyncSession]) -> None:
        await db_session.execute(text("DELETE FROM ingestion.probe_sites WHERE id = :id"), {"id": site_id})

    settings = IngestionSettings(
        environment="test",
        database_url=scratch("ingestion", "app"),
        migration_database_url=scratch("ingestion", "owner"),
        oidc_issuer="http://127.0.0.1:9/realms/socle",  # never called: the probe routes are public
    )
    app = create_service_app(
        settings,
        [create_site, create_gauge, remove_site],
        title="probe",
        description="probe",
        constraints={
            "ck_probe_gauges_depth_positive": ConstraintMessage("la profondeur doit être positive", field="depth")
        },
    )
    async with AsyncTestClient(app) as test_client:
        yield test_client


async def _count(scratch, table: str) -> int:
    connection = await asyncpg.connect(scratch("ingestion", "owner").replace("+asyncpg", ""))
    try:
        return int(await connection.fetchval(f"SELECT count(*) FROM ingestion.{table}"))
    finally:
        await connection.close()


def _problem(response, status: int, slug: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["type"] == f"urn:socle:problem:{slug}"
    assert body["status"] == status
    assert body["detail"]
    return body


async def test_a_duplicate_is_a_409_naming_the_field_and_nothing_is_stored(client, scratch) -> None:
    name = f"station-{uuid.uuid4().hex[:6]}"
    assert (await client.post("/probe/sites", json={"name": name})).status_code == 201
    before = await _count(scratch, "probe_sites")
    body = _problem(await client.post("/probe/sites", json={"name": name}), 409, "conflict")
    assert body["constraint"] == "uq_probe_sites_name"
    assert body["errors"] == [{"location": "body", "field": "body.name", "detail": body["detail"]}]
    assert "name" in body["detail"]
    assert name not in str(body), "the value itself is never echoed"
    assert await _count(scratch, "probe_sites") == before
    assert client.app.state.db_engine.pool.checkedout() == 0


async def test_a_missing_reference_is_a_422_naming_the_field(client, scratch) -> None:
    before = await _count(scratch, "probe_gauges")
    response = await client.post("/probe/gauges", json={"site_id": str(uuid.uuid4()), "label": "g"})
    body = _problem(response, 422, "validation-error")
    assert body["constraint"] == "fk_probe_gauges_site_id_probe_sites"
    assert [e["field"] for e in body["errors"]] == ["body.site_id"]
    assert body["detail"] == "site_id ne désigne aucune ressource existante"
    assert await _count(scratch, "probe_gauges") == before


async def test_a_violation_found_at_commit_is_mapped_and_rolled_back(client, scratch) -> None:
    """A deferred foreign key is checked by the core's commit, after the handler returned."""
    before = await _count(scratch, "probe_gauges")
    response = await client.post("/probe/gauges", json={"later_site_id": str(uuid.uuid4()), "label": "g"})
    body = _problem(response, 422, "validation-error")
    assert [e["field"] for e in body["errors"]] == ["body.later_site_id"]
    assert await _count(scratch, "probe_gauges") == before
    assert client.app.state.db_engine.pool.checkedout() == 0
    ok = await client.post("/probe/gauges", json={"label": "g"})  # the pooled connection is clean again
    assert ok.status_code == 201, ok.text


async def test_a_missing_value_and_a_failed_check_are_422_with_the_service_words(client) -> None:
    missing = _problem(await client.post("/probe/gauges", json={}), 422, "validation-error")
    assert [e["field"] for e in missing["errors"]] == ["body.label"]
    assert missing["detail"] == "label est obligatoire"
    checked = _problem(await client.post("/probe/gauges", json={"label": "g", "depth": -1}), 422, "validation-error")
    assert checked["detail"] == "la profondeur doit être positive"
    assert checked["errors"] == [{"location": "body", "field": "body.depth", "detail": checked["detail"]}]


async def test_removing_a_referenced_row_is_a_409(client, scratch) -> None:
    site = (await client.post("/probe/sites", json={"name": f"s-{uuid.uuid4().hex[:6]}"})).json()["id"]
    assert (await client.post("/probe/gauges", json={"site_id": site, "label": "g"})).status_code == 201
    body = _problem(await client.post(f"/probe/sites/{site}/removal"), 409, "conflict")
    assert body["detail"].startswith("cette ressource est encore référencée")
    assert await _count(scratch, "probe_sites") >= 1
