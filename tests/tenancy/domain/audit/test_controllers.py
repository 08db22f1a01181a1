"""The audit log API on the real app, PostgreSQL and Keycloak: who reads which chain, export, verify."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from socle_core.audit import record_detached
from socle_core.auth import system_tenant
from socle_devstack.stack import DATABASE, _with_database
from socle_tenancy.app import create_app
from socle_tenancy.domain.audit.chain import ChainEntry, check_entries
from socle_tenancy.domain.audit.signing import HeadVerifier, public_key_of
from tests.support.registry import register_tenant
from tests.tenancy.conftest import assert_problem


def bearer(kc_admin, roles: tuple[str, ...], tenant: uuid.UUID | None = None) -> dict[str, str]:
    organization = (f"commune-t{tenant.hex[:8]}", tenant) if tenant else None
    client = kc_admin.create_client(roles=roles, organization=organization)
    return {"Authorization": f"Bearer {kc_admin.token(client)['access_token']}"}


@pytest.fixture
def chain(app_engine) -> Any:
    """A fresh tenant with a few entries in its chain (written by another service's role)."""

    async def make(entries: int = 3) -> uuid.UUID:
        tenant = uuid.uuid4()
        register_tenant(tenant, f"commune-t{tenant.hex[:8]}")  # the alias ``bearer`` names it by
        for n in range(1, entries + 1):
            await record_detached(
                app_engine,
                system_tenant(tenant, reason="test"),
                actor=f"agent-{n}",
                action="devices.create" if n % 2 else "grants.create",
                target=f"device:{n}",
                outcome="success",
                details={"n": n},
            )
        return tenant

    return make


@pytest.fixture(scope="module")
def auditor(kc_admin) -> dict[str, str]:
    return bearer(kc_admin, ("auditor",))


async def test_a_commune_admin_pages_through_its_own_chain_newest_first(tenancy, kc_admin, chain) -> None:
    tenant = await chain(5)
    headers = bearer(kc_admin, ("commune-admin",), tenant)
    first = await tenancy.get("/v1/audit/entries", params={"limit": 2}, headers=headers)
    assert first.status_code == 200, first.text
    page = first.json()
    assert [e["seq"] for e in page["items"]] == [5, 4]
    assert page["items"][0]["tenant_id"] == str(tenant)
    assert page["items"][0]["actor"] == "agent-5"
    assert page["items"][0]["details"] == {"n": 5}
    assert len(page["items"][0]["hash"]) == 64
    assert page["items"][1]["hash"] == page["items"][0]["prev_hash"]
    rest = (
        await tenancy.get("/v1/audit/entries", params={"limit": 10, "cursor": page["next_cursor"]}, headers=headers)
    ).json()
    assert [e["seq"] for e in rest["items"]] == [3, 2, 1]
    assert rest["next_cursor"] is None
    grants = (await tenancy.get("/v1/audit/entries", params={"action": "grants"}, headers=headers)).json()
    assert [e["seq"] for e in grants["items"]] == [4, 2]


async def test_another_tenants_chain_does_not_exist_and_asking_is_recorded(tenancy, kc_admin, chain) -> None:
    mine, theirs = await chain(1), await chain(2)
    headers = bearer(kc_admin, ("commune-admin",), mine)
    body = assert_problem(
        await tenancy.get("/v1/audit/entries", params={"tenant": str(theirs)}, headers=headers), 404, "not-found"
    )
    assert str(theirs) not in body["detail"]
    own = (await tenancy.get("/v1/audit/entries", headers=headers)).json()["items"]
    assert (own[0]["action"], own[0]["outcome"], own[0]["target"]) == ("audit.read", "refused", f"tenant:{theirs}")


async def test_an_auditor_reads_any_chain_and_the_read_lands_in_that_chain(tenancy, auditor, chain) -> None:
    tenant = await chain(2)
    response = await tenancy.get("/v1/audit/entries", params={"tenant": str(tenant)}, headers=auditor)
    assert response.status_code == 200, response.text
    assert [e["seq"] for e in response.json()["items"]] == [2, 1]
    again = (await tenancy.get("/v1/audit/entries", params={"tenant": str(tenant)}, headers=auditor)).json()
    newest = again["items"][0]
    assert (newest["seq"], newest["action"], newest["target"]) == (3, "auditor.read", "audit_log")
    assert newest["details"]["returned"] == 2
    body = assert_problem(await tenancy.get("/v1/audit/entries", headers=auditor), 422, "validation-error")
    assert body["errors"][0]["field"] == "query.tenant"


async def test_bad_filters_are_clear_errors(tenancy, auditor, chain) -> None:
    tenant = str(await chain(1))
    cursor = assert_problem(
        await tenancy.get("/v1/audit/entries", params={"tenant": tenant, "cursor": "nope"}, headers=auditor),
        422,
        "validation-error",
    )
    assert cursor["errors"][0]["field"] == "query.cursor"
    window = assert_problem(
        await tenancy.get(
            "/v1/audit/entries",
            params={"tenant": tenant, "since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
            headers=auditor,
        ),
        422,
        "validation-error",
    )
    assert "précéder" in window["detail"]


async def test_agents_and_partners_may_not_read_the_log(tenancy, kc_admin, chain) -> None:
    tenant = await chain(1)
    for role in ("commune-agent", "partner"):
        assert_problem(
            await tenancy.get("/v1/audit/entries", headers=bearer(kc_admin, (role,), tenant)), 403, "forbidden"
        )


async def test_an_export_carries_the_hashes_and_verifies_offline(tenancy, auditor, chain) -> None:
    tenant = await chain(3)
    response = await tenancy.get("/v1/audit/export", params={"tenant": str(tenant)}, headers=auditor)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert [line["seq"] for line in lines] == [1, 2, 3, 4]
    assert lines[-1]["action"] == "auditor.export"
    assert lines[0]["details"] == {"n": 1}
    entries = [ChainEntry.from_export(line) for line in lines]
    assert check_entries(entries) == (4, [])
    forged = [*lines[:1], {**lines[1], "actor": "someone else"}, *lines[2:]]
    _, findings = check_entries(ChainEntry.from_export(line) for line in forged)
    assert [(f.seq, f.kind) for f in findings] == [(2, "altered")]


async def test_verify_gives_a_verdict_and_is_itself_recorded(tenancy, kc_admin, auditor, operator, chain) -> None:
    tenant = await chain(2)
    response = await tenancy.post("/v1/audit/verify", json={"tenant": str(tenant)}, headers=operator)
    assert response.status_code == 200, response.text
    verdict = response.json()
    assert (verdict["verdict"], verdict["chains"], verdict["entries"], verdict["findings"]) == ("intact", 1, 2, [])
    by_auditor = (await tenancy.post("/v1/audit/verify", json={"tenant": str(tenant)}, headers=auditor)).json()
    assert by_auditor["entries"] == 3  # the operator's verification is now in the chain
    entries = (await tenancy.get("/v1/audit/entries", params={"tenant": str(tenant)}, headers=auditor)).json()
    assert [e["action"] for e in entries["items"][:2]] == ["auditor.verify", "operator.verify"]
    assert entries["items"][0]["details"] == {
        "verdict": "intact",
        "chains": 1,
        "entries": 3,
        "findings": 0,
        "anchors": 0,
    }
    assert_problem(
        await tenancy.post("/v1/audit/verify", json={}, headers=bearer(kc_admin, ("commune-admin",), tenant)),
        403,
        "forbidden",
    )
    unknown = assert_problem(
        await tenancy.post("/v1/audit/verify", json={"tenant": "x", "extra": 1}, headers=auditor),
        422,
        "validation-error",
    )
    assert unknown["errors"]


KEY = "test-audit-heads-signing-key-" + "k" * 24


@pytest.fixture
async def signing(tenancy_settings) -> AsyncIterator[AsyncTestClient]:
    """Tenancy with a key for the chains' heads."""
    async with AsyncTestClient(create_app(tenancy_settings(audit_heads_signing_key=KEY))) as client:
        yield client


async def _cut_from(database, tenant: uuid.UUID, seq: int) -> None:
    """As the superuser, past the triggers: drop the entries from ``seq`` on and roll the head back before them."""
    admin = await asyncpg.connect(_with_database(database.admin_dsn, DATABASE))
    try:
        await admin.execute("SET session_replication_role = replica")
        await admin.execute("DELETE FROM tenancy.audit_entries WHERE tenant_id = $1 AND seq >= $2", tenant, seq)
        await admin.execute(
            "UPDATE tenancy.audit_heads h SET last_seq = e.seq, last_hash = e.hash FROM tenancy.audit_entries e "
            "WHERE h.chain_id = $1 AND e.tenant_id = $1 AND e.seq = $2",
            tenant,
            seq - 1,
        )
    finally:
        await admin.close()


async def test_an_auditor_keeps_the_signed_heads_and_verifies_the_database_against_them(
    signing, auditor, operator, chain, database
) -> None:
    tenant = await chain(3)
    response = await signing.get("/v1/audit/heads", headers=auditor)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["algorithm"], len(body["key_id"])) == ("Ed25519", 16)
    verifier = HeadVerifier([public_key_of(body["public_key"])])
    mine = [h for h in body["heads"] if h["chain_id"] == str(tenant)]
    assert [(h["seq"], h["type"], h["key_id"]) for h in mine] == [(3, "socle.audit.head", body["key_id"])]
    for head in body["heads"]:
        verifier.check(head)  # every head is signed by the key shown
    own = await signing.post("/v1/audit/verify", json={"tenant": str(tenant), "against": mine}, headers=operator)
    assert (own.json()["verdict"], own.json()["findings"]) == ("intact", [])

    await _cut_from(database, tenant, 3)  # the signed entry, and the verification recorded after it
    against = (
        await signing.post("/v1/audit/verify", json={"tenant": str(tenant), "against": mine}, headers=auditor)
    ).json()
    assert against["verdict"] == "tampered"
    assert [(f["seq"], f["kind"]) for f in against["findings"]] == [(3, "anchor_missing")]
    alone = (await signing.post("/v1/audit/verify", json={"tenant": str(tenant)}, headers=operator)).json()
    assert alone["verdict"] == "intact"  # consistent: the database alone cannot tell
    # The chain went on from the cut (the verifications are recorded in it): entry 3 is now another one.
    again = (
        await signing.post("/v1/audit/verify", json={"tenant": str(tenant), "against": mine}, headers=auditor)
    ).json()
    assert [(f["seq"], f["kind"]) for f in again["findings"]] == [(3, "anchor_mismatch")]


async def test_heads_are_for_auditors_and_operators_and_forged_ones_are_refused(
    signing, tenancy, kc_admin, auditor, chain
) -> None:
    tenant = await chain(1)
    assert_problem(
        await signing.get("/v1/audit/heads", headers=bearer(kc_admin, ("commune-admin",), tenant)), 403, "forbidden"
    )
    unsigned = assert_problem(await tenancy.get("/v1/audit/heads", headers=auditor), 503, "service-unavailable")
    assert "SOCLE_TENANCY_AUDIT_HEADS_SIGNING_KEY" in unsigned["detail"]
    heads = (await signing.get("/v1/audit/heads", headers=auditor)).json()["heads"]
    forged = [{**h, "seq": h["seq"] + 1} if h["chain_id"] == str(tenant) else h for h in heads]
    index = next(i for i, h in enumerate(forged) if h["chain_id"] == str(tenant))
    body = assert_problem(
        await signing.post("/v1/audit/verify", json={"against": forged}, headers=auditor), 422, "validation-error"
    )
    assert body["errors"][0]["field"] == f"body.against[{index}]"
    assert "la signature ne correspond pas" in body["errors"][0]["detail"]
    assert "tête signée" in body["detail"]
