"""``POST /v1/isolation/reports``: auditors and operators run the report; nobody else does.

``GET /v1/isolation/public-key``: the public key that verifies the reports, to the same roles.
"""

from __future__ import annotations

import uuid

import pytest
from litestar.testing import AsyncTestClient
from pydantic import ValidationError

from socle_core.audit import PLATFORM_TENANT
from socle_devstack.stack import SERVICES
from socle_tenancy.app import create_app
from socle_tenancy.domain.isolation import signing
from tests.core.test_audit import _chain as audit_chain
from tests.isolation.servers import bearer
from tests.tenancy.conftest import assert_problem

KEY = signing.generate_pem()


@pytest.fixture
async def reporting(tenancy_settings, database):
    settings = tenancy_settings(
        report_signing_key=KEY,
        isolation_database_urls={s: database.url(s, "app") for s in SERVICES if s != "tenancy"},
    )
    async with AsyncTestClient(create_app(settings)) as client:
        yield client


@pytest.mark.timeout(600)
async def test_an_auditor_gets_a_signed_report_as_json_or_html(reporting, kc_admin, database) -> None:
    auditor = bearer(kc_admin, ("auditor",))
    response = await reporting.post("/v1/isolation/reports", json={"sample": 2}, headers=auditor)
    assert response.status_code == 201, response.text
    report = response.json()
    assert report["schema_version"] == "2"
    assert report["violations"] == []
    # No service URL configured: no API probe ran, and the report does not claim a pass it did not check.
    assert report["verdict"] == "incomplete"
    assert report["api_probes"]["status"] == "not run"
    assert "aucune URL de service" in report["api_probes"]["reason"]
    gaps = {g["subject"]: g["reason"] for g in report["gaps"]}
    assert "tenancy GET /v1/audit/entries" in gaps
    assert "identity DELETE /v1/members/{user_id:uuid}" in gaps
    assert all(g["check"] == "api_probe" and "sondes d'API non exécutées" in g["reason"] for g in report["gaps"])
    assert report["counts"]["gaps"] == len(report["gaps"])
    assert len(report["sample"]["tenants"]) == 2
    assert {s["service"] for s in report["database_probes"]["services"] if s["status"] == "ran"} == set(SERVICES)
    published = (await reporting.get("/v1/isolation/public-key", headers=auditor)).json()
    public = signing.public_key_from_pem(published["public_key_pem"])
    assert published["algorithm"] == "Ed25519"
    assert published["key_id"] == report["signature"]["key_id"]
    assert signing.verify(report, public) == (True, f"signature valide (Ed25519, clé {published['key_id']})")
    assert "PRIVATE" not in published["public_key_pem"]
    platform_chain = await audit_chain(database, PLATFORM_TENANT)
    assert [(e["action"], e["target"]) for e in platform_chain if e["target"] == report["report_id"]] == [
        ("auditor.isolation_report", report["report_id"])
    ]

    page = await reporting.post("/v1/isolation/reports", json={"format": "html", "sample": 2}, headers=auditor)
    assert page.status_code == 201
    assert page.headers["content-type"].startswith("text/html")
    assert "<html lang='fr'>" in page.text
    assert "Verdict : INCOMPLET — 0 violation(s)" in page.text
    assert "Lacunes (non contrôlé)" in page.text


async def test_tenant_roles_may_not_run_it_and_bad_input_is_named(reporting, kc_admin) -> None:
    agent = bearer(kc_admin, ("commune-admin",), (f"commune-{uuid.uuid4().hex[:8]}", str(uuid.uuid4())))
    body = assert_problem(await reporting.post("/v1/isolation/reports", headers=agent), 403, "forbidden")
    assert "auditor" in body["detail"]
    assert_problem(await reporting.get("/v1/isolation/public-key", headers=agent), 403, "forbidden")
    operator = bearer(kc_admin, ("operator",))
    bad = assert_problem(
        await reporting.post("/v1/isolation/reports", json={"sample": 1}, headers=operator), 422, "validation-error"
    )
    assert bad["errors"][0]["field"] == "body.sample"


async def test_without_a_signing_key_the_endpoint_says_what_to_set(tenancy_settings, kc_admin) -> None:
    operator = bearer(kc_admin, ("operator",))
    async with AsyncTestClient(create_app(tenancy_settings())) as client:
        response = await client.post("/v1/isolation/reports", headers=operator)
        public = await client.get("/v1/isolation/public-key", headers=operator)
    body = assert_problem(response, 503, "service-unavailable")
    assert "SOCLE_TENANCY_REPORT_SIGNING_KEY" in body["detail"]
    assert "Ed25519" in body["detail"]
    assert "SOCLE_TENANCY_REPORT_SIGNING_KEY" in assert_problem(public, 503, "service-unavailable")["detail"]


def test_a_development_or_malformed_signing_key_is_refused_by_the_settings(tenancy_settings) -> None:
    with pytest.raises(ValidationError, match="report_signing_key"):
        tenancy_settings(report_signing_key=signing.generate_pem("dev-only clé de la pile locale"))
    with pytest.raises(ValidationError, match="clé privée Ed25519 au format PEM"):
        tenancy_settings(report_signing_key="test-" + "k" * 40)  # an HMAC secret of the former scheme
    settings = tenancy_settings(report_signing_key=signing.generate_pem("test clé de la suite"))
    assert settings.report_signing_key is not None
