"""The outbox on the real PostgreSQL: built by ``create_outbox`` in a service schema with its real roles.

A throw-away database with the identity service provisioned and migrated, then the outbox
DDL applied as the schema owner, as a service's migration does; the service writes and
dispatches as its application role (not owner, not BYPASSRLS).
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import asyncpg
import pytest
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from socle_core.auth import system_tenant
from socle_core.db import create_session_maker, tenant_session
from socle_core.outbox import Message, Outbox, OutboxDispatcher, create_outbox
from socle_core.tenant import TenantId
from tests.support.databases import throwaway_database

SCHEMA = "identity"
outbox = Outbox(SCHEMA)


def _apply_outbox(connection: Connection) -> None:
    with Operations.context(MigrationContext.configure(connection)):
        create_outbox(SCHEMA)


async def _migrate(owner_url: str) -> None:
    engine = create_async_engine(owner_url, poolclass=NullPool)
    async with engine.begin() as connection:
        await connection.run_sync(_apply_outbox)
    await engine.dispose()


@pytest.fixture(scope="module")
def outbox_db(database, credentials) -> Iterator[Callable[[str, str], str]]:
    with throwaway_database(database, credentials, (SCHEMA,), prefix="socle_outbox") as url:
        asyncio.run(_migrate(url(SCHEMA, "owner")))
        yield url


@pytest.fixture
async def admin(outbox_db, database) -> AsyncIterator[asyncpg.Connection]:
    """A superuser connection to look at the table (and empty it: each test starts with no message)."""
    name = outbox_db(SCHEMA, "app").rsplit("/", 1)[1]
    connection = await asyncpg.connect(database.admin_dsn.rsplit("/", 1)[0] + f"/{name}")
    await connection.execute(f"DELETE FROM {SCHEMA}.outbox")
    try:
        yield connection
    finally:
        await connection.close()


@pytest.fixture
async def app_engine(outbox_db) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(outbox_db(SCHEMA, "app"))
    yield engine
    await engine.dispose()


def _tenant() -> TenantId:
    return system_tenant(uuid.uuid4(), reason="outbox test")


async def _enqueue(engine: AsyncEngine, tenant: TenantId, topic: str, payload: dict[str, Any]) -> uuid.UUID:
    async with tenant_session(create_session_maker(engine), tenant) as session:
        return await outbox.enqueue(session, tenant, topic, payload)


async def test_a_message_of_a_rolled_back_transaction_is_never_delivered(app_engine, admin) -> None:
    tenant = _tenant()
    written: list[uuid.UUID] = []

    async def failing_unit_of_work() -> None:
        async with tenant_session(create_session_maker(app_engine), tenant) as session:
            written.append(await outbox.enqueue(session, tenant, "meter.usage", {"units": 1}))
            raise RuntimeError("the domain change failed")

    with pytest.raises(RuntimeError, match="the domain change failed"):
        await failing_unit_of_work()
    committed = await _enqueue(app_engine, tenant, "meter.usage", {"units": 2})

    received: list[Message] = []

    async def handler(message: Message) -> None:
        received.append(message)

    dispatcher = OutboxDispatcher(app_engine, SCHEMA, {"meter.usage": handler})
    assert await dispatcher.run() == 1
    assert await dispatcher.run() == 0
    assert [(m.id, m.tenant, m.payload, m.attempt) for m in received] == [(committed, tenant, {"units": 2}, 1)]
    assert await admin.fetchval(f"SELECT count(*) FROM {SCHEMA}.outbox WHERE id = $1", written[0]) == 0
    row = await admin.fetchrow(
        f"SELECT delivered_at, attempts, last_error FROM {SCHEMA}.outbox WHERE id = $1", committed
    )
    assert row["delivered_at"] is not None
    assert (row["attempts"], row["last_error"]) == (1, None)


async def test_two_concurrent_dispatchers_deliver_each_committed_message_exactly_once(
    outbox_db, app_engine, admin
) -> None:
    tenants = [_tenant(), _tenant()]
    ids = set()
    for i in range(120):
        ids.add(await _enqueue(app_engine, tenants[i % 2], "alert.raised", {"n": i}))
    deliveries: list[tuple[str, uuid.UUID]] = []

    def handler_of(name: str) -> Callable[[Message], Any]:
        async def handler(message: Message) -> None:
            await asyncio.sleep(0.002)  # a side effect that takes time, while the batch stays locked
            deliveries.append((name, message.id))

        return handler

    engines = [create_async_engine(outbox_db(SCHEMA, "app")) for _ in range(2)]
    dispatchers = [
        OutboxDispatcher(engine, SCHEMA, {"alert.raised": handler_of(f"d{i}")}, batch_size=10)
        for i, engine in enumerate(engines)
    ]

    async def drain(dispatcher: OutboxDispatcher) -> None:
        while await dispatcher.run():
            pass

    try:
        await asyncio.gather(*(drain(d) for d in dispatchers))
    finally:
        for engine in engines:
            await engine.dispose()
    per_message = Counter(message_id for _, message_id in deliveries)
    assert set(per_message) == ids
    assert set(per_message.values()) == {1}
    assert {name for name, _ in deliveries} == {"d0", "d1"}, "both dispatchers took batches"
    assert await admin.fetchval(f"SELECT count(*) FROM {SCHEMA}.outbox WHERE delivered_at IS NULL") == 0


async def test_a_failing_handler_is_retried_with_backoff_then_dead_lettered_with_its_error(app_engine, admin) -> None:
    tenant = _tenant()
    doomed = await _enqueue(app_engine, tenant, "webhook.send", {"url": "https://example.invalid/hook"})
    attempts: list[int] = []

    async def handler(message: Message) -> None:
        attempts.append(message.attempt)
        raise ConnectionError(f"refused at attempt {message.attempt}")

    dispatcher = OutboxDispatcher(app_engine, SCHEMA, {"webhook.send": handler}, max_attempts=3, backoff_seconds=0.3)
    assert await dispatcher.run() == 1
    # Backing off: not yet available again.
    assert await dispatcher.run() == 0
    row = await admin.fetchrow(
        f"SELECT attempts, last_error, available_at > clock_timestamp() AS later, dead_at FROM {SCHEMA}.outbox "
        "WHERE id = $1",
        doomed,
    )
    assert dict(row) == {
        "attempts": 1,
        "last_error": "ConnectionError: refused at attempt 1",
        "later": True,
        "dead_at": None,
    }
    for _ in range(60):
        if len(attempts) == 3:
            break
        await dispatcher.run()
        await asyncio.sleep(0.1)
    await asyncio.sleep(1.5)
    assert await dispatcher.run() == 0, "a dead letter is never delivered again"
    assert attempts == [1, 2, 3]
    row = await admin.fetchrow(
        f"SELECT attempts, last_error, dead_at IS NOT NULL AS dead, delivered_at FROM {SCHEMA}.outbox WHERE id = $1",
        doomed,
    )
    assert dict(row) == {
        "attempts": 3,
        "last_error": "ConnectionError: refused at attempt 3",
        "dead": True,
        "delivered_at": None,
    }


async def test_a_message_without_handler_is_retried_and_kept_with_the_reason(app_engine, admin) -> None:
    message_id = await _enqueue(app_engine, _tenant(), "billing.statement", {})
    dispatcher = OutboxDispatcher(app_engine, SCHEMA, {}, max_attempts=1)
    assert await dispatcher.run() == 1
    row = await admin.fetchrow(
        f"SELECT last_error, dead_at IS NOT NULL AS dead FROM {SCHEMA}.outbox WHERE id = $1", message_id
    )
    assert dict(row) == {"last_error": "LookupError: no handler for topic 'billing.statement'", "dead": True}


async def test_a_dispatcher_that_dies_mid_batch_leaves_the_message_to_be_delivered_again_with_the_same_id(
    app_engine, admin
) -> None:
    """At least once: the handler's side effect happened, the settle did not; the message id lets it skip the rerun."""
    message_id = await _enqueue(app_engine, _tenant(), "meter.usage", {"units": 5})
    started = asyncio.Event()
    seen: list[tuple[uuid.UUID, int]] = []

    async def hangs(message: Message) -> None:
        seen.append((message.id, message.attempt))
        started.set()
        await asyncio.sleep(60)

    dying = asyncio.create_task(OutboxDispatcher(app_engine, SCHEMA, {"meter.usage": hangs}).run())
    await started.wait()
    dying.cancel()
    with pytest.raises(asyncio.CancelledError):
        await dying

    async def records(message: Message) -> None:
        seen.append((message.id, message.attempt))

    assert await OutboxDispatcher(app_engine, SCHEMA, {"meter.usage": records}).run() == 1
    assert seen == [(message_id, 1), (message_id, 1)]


async def test_the_application_role_reaches_its_tenant_s_messages_only(app_engine, admin) -> None:
    mine, theirs = _tenant(), _tenant()
    await _enqueue(app_engine, mine, "alert.raised", {"who": "mine"})
    await _enqueue(app_engine, theirs, "alert.raised", {"who": "theirs"})
    maker = create_session_maker(app_engine)
    async with tenant_session(maker, mine) as session:
        seen = (await session.execute(text(f"SELECT payload FROM {SCHEMA}.outbox"))).scalars().all()
    assert seen == [{"who": "mine"}]
    async with tenant_session(maker, None) as session:
        assert (await session.execute(text(f"SELECT count(*) FROM {SCHEMA}.outbox"))).scalar() == 0

    # Writing a message for another tenant than the transaction's is refused by the policy.
    async def forge() -> None:
        async with tenant_session(maker, mine) as session:
            await outbox.enqueue(session, theirs, "alert.raised", {"who": "forged"})

    with pytest.raises(DBAPIError, match="row-level security"):
        await forge()
    assert await admin.fetchval(f"SELECT count(*) FROM {SCHEMA}.outbox") == 2


async def test_a_stopped_dispatcher_finishes_its_batch_and_takes_no_other(app_engine, admin) -> None:
    """SIGTERM in a worker sets the stop event: the batch under way is delivered, none is claimed after."""
    tenant = _tenant()
    ids = [await _enqueue(app_engine, tenant, "meter.usage", {"n": i}) for i in range(5)]
    stop = asyncio.Event()
    delivered: list[uuid.UUID] = []

    async def slow(message: Message) -> None:
        stop.set()  # the stop arrives while the first batch is under way
        await asyncio.sleep(0.05)
        delivered.append(message.id)

    dispatcher = OutboxDispatcher(app_engine, SCHEMA, {"meter.usage": slow}, batch_size=3)
    await asyncio.wait_for(dispatcher.run_until(stop), 10)
    assert len(delivered) == 3
    pending = await admin.fetch(f"SELECT id FROM {SCHEMA}.outbox WHERE delivered_at IS NULL")
    assert {r["id"] for r in pending} == set(ids) - set(delivered)
    assert len(pending) == 2
