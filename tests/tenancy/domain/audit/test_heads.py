"""Publishing the signed chain heads to the append-only directory, once and periodically, on the real database."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

from litestar.testing import AsyncTestClient
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from socle_core.audit import record_detached
from socle_core.auth import system_tenant
from socle_core.db import create_session_maker
from socle_devstack.stack import REPO_ROOT, service_env
from socle_tenancy.app import create_app
from socle_tenancy.domain.audit.heads import HeadPublisher, anchors_of, parse_anchor_document
from socle_tenancy.domain.audit.signing import HeadSigner, HeadVerifier
from tests.support.fixtures import new_tenant

KEY = "test-audit-heads-signing-key-" + "k" * 24


def _lines(directory: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for path in sorted(directory.glob("audit-heads-*.jsonl")) for line in path.open()]


async def _entry(engine: AsyncEngine, tenant: Any) -> None:
    await record_detached(engine, system_tenant(tenant, reason="test"), actor="u", action="devices.create")


async def test_each_run_appends_the_heads_that_moved_signed(database, tmp_path) -> None:
    engine = create_async_engine(database.url("tenancy", "app"), pool_size=2, max_overflow=0)
    try:
        tenant = new_tenant().id
        await _entry(engine, tenant)
        signer = HeadSigner(SecretStr(KEY))
        publisher = HeadPublisher(create_session_maker(engine), signer, tmp_path)
        first = await publisher.run()
        assert first >= 1
        assert await publisher.run() == 0  # nothing moved
        await _entry(engine, tenant)
        assert await publisher.run() == 1
    finally:
        await engine.dispose()

    (path,) = tmp_path.glob("audit-heads-*.jsonl")
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    lines = _lines(tmp_path)
    assert len(lines) == first + 1
    mine = [(line["seq"], line["chain_id"]) for line in lines if line["chain_id"] == str(tenant)]
    assert mine == [(1, str(tenant)), (2, str(tenant))]
    # Every line is an anchor the verification accepts with the public key alone.
    anchors = anchors_of(parse_anchor_document(path.read_text()), HeadVerifier([signer.public_key]))
    assert len(anchors) == len(lines)


async def test_the_service_publishes_at_start_and_every_interval(tenancy_settings, app_engine, tmp_path) -> None:
    tenant = new_tenant().id
    await _entry(app_engine, tenant)
    settings = tenancy_settings(
        audit_heads_signing_key=KEY, audit_heads_dir=str(tmp_path), audit_heads_interval_seconds=0.5
    )
    async with AsyncTestClient(create_app(settings)):
        for _ in range(100):
            if any(line["chain_id"] == str(tenant) for line in _lines(tmp_path)):
                break
            await asyncio.sleep(0.1)
        await _entry(app_engine, tenant)
        for _ in range(100):
            if [line["seq"] for line in _lines(tmp_path) if line["chain_id"] == str(tenant)] == [1, 2]:
                break
            await asyncio.sleep(0.1)
    assert [line["seq"] for line in _lines(tmp_path) if line["chain_id"] == str(tenant)] == [1, 2]


async def test_publish_heads_once_from_the_command_line(database, keycloak, tmp_path) -> None:
    tenant = new_tenant().id
    engine = create_async_engine(database.url("tenancy", "app"), pool_size=1, max_overflow=0)
    try:
        await _entry(engine, tenant)
    finally:
        await engine.dispose()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOCLE_")}
    env |= service_env("tenancy", database, keycloak.issuer, environment="test")
    command = [sys.executable, "-m", "socle_tenancy.audit", "publish-heads"]
    missing = await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, cwd=REPO_ROOT, env=env, timeout=120
    )
    assert missing.returncode == 2
    assert "SOCLE_TENANCY_AUDIT_HEADS_DIR" in missing.stderr
    env |= {"SOCLE_TENANCY_AUDIT_HEADS_DIR": str(tmp_path), "SOCLE_TENANCY_AUDIT_HEADS_SIGNING_KEY": KEY}
    run = await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, cwd=REPO_ROOT, env=env, timeout=120
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"key id {HeadSigner(SecretStr(KEY)).key_id}" in run.stdout
    assert [line["seq"] for line in _lines(tmp_path) if line["chain_id"] == str(tenant)] == [1]
