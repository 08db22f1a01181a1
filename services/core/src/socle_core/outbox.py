# ruff: noqa: S608  (the only name interpolated into SQL is a schema checked by _schema)
"""Side effects after commit: a transactional outbox per service schema (ADR 0018).

A service that must tell the outside world about a change (a metering event, a webhook,
an alert) does not call it from the request: it writes a message with ``Outbox.enqueue``
in the request's transaction. The message exists only if the transaction commits, so a
rollback drops it with the change it described.

``OutboxDispatcher`` then claims committed messages in batches (``FOR UPDATE SKIP
LOCKED``: dispatchers on several replicas never take the same message), calls the handler
registered for each topic, and marks the message delivered, or retries it later with an
exponential backoff, or dead-letters it after ``max_attempts`` with the last error kept.
Delivery is at least once: a dispatcher that dies after the handler's side effect but
before its commit leaves the message to be delivered again, so handlers use the message id
as their idempotency key.

The table is tenant-owned and under row-level security like every tenant table: the
application role can only insert and see its current tenant's messages. The dispatcher
serves every tenant, so it reads and settles messages through two ``SECURITY DEFINER``
functions owned by the schema owner (``outbox_claim``, ``outbox_settle``), the only way
past the tenant policy, and neither can insert or change a payload. ``create_outbox``
creates all of it in a service's migration.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
import structlog
from alembic import op
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from socle_core.migrations import tenant_owned_table
from socle_core.provisioning import ServiceRoles
from socle_core.tenant import TenantId, _issue

log = structlog.get_logger("socle.outbox")

TABLE = "outbox"
#: Longest error text kept on a message: enough for an exception's message, not a whole body.
MAX_ERROR_CHARS = 2000


@dataclass(frozen=True)
class Message:
    """One committed message handed to its topic's handler; ``id`` is the idempotency key."""

    id: uuid.UUID
    tenant: TenantId
    topic: str
    payload: dict[str, Any]
    attempt: int
    created_at: datetime


Handler = Callable[[Message], Awaitable[None]]


def _schema(schema: str) -> str:
    if not schema.isidentifier() or schema.lower() != schema:
        raise ValueError(f"not a service schema: {schema!r}")
    return schema


class Outbox:
    """The writing side, used by a service's domain code inside its unit of work."""

    def __init__(self, schema: str) -> None:
        self.schema = _schema(schema)

    async def enqueue(
        self, session: AsyncSession, tenant: TenantId, topic: str, payload: Mapping[str, Any]
    ) -> uuid.UUID:
        """Write a message in the session's transaction (never committed here) and return its id.

        The tenant must be the transaction's own: the table's policy refuses any other.
        """
        message_id = uuid.uuid4()
        await session.execute(
            text(
                f'INSERT INTO "{self.schema}".{TABLE} (tenant_id, id, topic, payload) '
                "VALUES (:tenant, :id, :topic, CAST(:payload AS jsonb))"
            ),
            {"tenant": tenant.uuid, "id": message_id, "topic": topic, "payload": json.dumps(dict(payload))},
        )
        return message_id


class OutboxDispatcher:
    """Delivers committed messages of one schema to the handlers registered per topic.

    Each batch is one transaction: the claimed rows stay locked while their handlers run
    and are settled in the same transaction, so a dispatcher that crashes mid-batch leaves
    them to the next one. Safe to run on every replica.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        schema: str,
        handlers: Mapping[str, Handler],
        *,
        batch_size: int = 50,
        max_attempts: int = 8,
        backoff_seconds: float = 1.0,
        max_backoff_seconds: float = 600.0,
        handler_timeout_seconds: float = 30.0,
        poll_seconds: float = 1.0,
    ) -> None:
        if batch_size < 1 or max_attempts < 1:
            raise ValueError("batch_size and max_attempts must be at least 1")
        self.engine = engine
        self.schema = _schema(schema)
        self.handlers = dict(handlers)
        self.batch_size = batch_size
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.handler_timeout_seconds = handler_timeout_seconds
        self.poll_seconds = poll_seconds

    async def run(self) -> int:
        """Deliver one batch; the number of messages settled (delivered, retried or dead-lettered)."""
        async with self.engine.connect() as connection, connection.begin():
            rows = (
                await connection.execute(
                    text(f'SELECT * FROM "{self.schema}".outbox_claim(:batch)'), {"batch": self.batch_size}
                )
            ).all()
            for row in rows:
                message = Message(
                    id=row.id,
                    # Checked by the table's policy when the message was written in this tenant's context.
                    tenant=_issue(row.tenant_id),
                    topic=row.topic,
                    payload=row.payload,
                    attempt=row.attempts + 1,
                    created_at=row.created_at,
                )
                await self._deliver(connection, message)
        return len(rows)

    async def run_until(self, stop: asyncio.Event) -> None:
        """Deliver batches until ``stop`` is set; the batch under way when it is set is finished."""
        while not stop.is_set():
            try:
                settled = await self.run()
            except (OSError, SQLAlchemyError) as exc:  # the database is away: the messages wait for it
                log.error("outbox_batch_failed", schema=self.schema, error=str(exc))
                settled = 0
            if settled < self.batch_size:
                with suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.poll_seconds)

    async def _deliver(self, connection: AsyncConnection, message: Message) -> None:
        handler = self.handlers.get(message.topic)
        error: str | None = None
        try:
            if handler is None:
                raise LookupError(f"no handler for topic {message.topic!r}")
            await asyncio.wait_for(handler(message), self.handler_timeout_seconds)
        except Exception as exc:  # any failure of a handler is the message's, recorded on it
            error = (f"{type(exc).__name__}: {exc}")[:MAX_ERROR_CHARS]
        retry_in: float | None = None
        if error is not None and message.attempt < self.max_attempts:
            retry_in = min(self.max_backoff_seconds, self.backoff_seconds * 2 ** (message.attempt - 1))
        await connection.execute(
            text(f'SELECT "{self.schema}".outbox_settle(:id, :error, :retry_in)'),
            {"id": message.id, "error": error, "retry_in": retry_in},
        )
        if error is None:
            log.info("outbox_delivered", topic=message.topic, message_id=str(message.id), attempt=message.attempt)
        elif retry_in is None:
            log.error("outbox_dead_lettered", topic=message.topic, message_id=str(message.id), error=error)
        else:
            log.warning("outbox_retry", topic=message.topic, message_id=str(message.id), error=error, retry_in=retry_in)


def create_outbox(schema: str) -> None:
    """In a service's Alembic migration: the outbox table, its policies and dispatch functions."""
    schema = _schema(schema)
    roles = ServiceRoles.for_service(schema)
    tenant_owned_table(
        TABLE,
        schema,
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("payload", sa.dialects.postgresql.JSONB(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("clock_timestamp()")
        ),
        sa.Column(
            "available_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("clock_timestamp()")
        ),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("dead_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("topic ~ '^[a-z][a-z0-9_.-]{0,99}$'", name="topic"),
        sa.CheckConstraint("NOT (delivered_at IS NOT NULL AND dead_at IS NOT NULL)", name="settled_once"),
    )
    qualified = f'"{schema}".{TABLE}'
    op.execute(
        f"CREATE INDEX ix_{TABLE}_pending ON {qualified} (available_at, created_at) "
        "WHERE delivered_at IS NULL AND dead_at IS NULL"
    )
    # The owner, through the two functions below only, reaches every tenant's messages.
    op.execute(f'CREATE POLICY outbox_dispatch ON {qualified} FOR ALL TO "{roles.owner}" USING (true)')
    op.execute(
        f'CREATE FUNCTION "{schema}".outbox_claim(p_batch integer) '
        "RETURNS TABLE (id uuid, tenant_id uuid, topic text, payload jsonb, attempts integer, "
        "created_at timestamptz) "
        "LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$ "
        f"SELECT o.id, o.tenant_id, o.topic, o.payload, o.attempts, o.created_at FROM {qualified} o "
        "WHERE o.delivered_at IS NULL AND o.dead_at IS NULL AND o.available_at <= clock_timestamp() "
        "ORDER BY o.available_at, o.created_at LIMIT p_batch FOR UPDATE SKIP LOCKED $$"
    )
    op.execute(
        f'CREATE FUNCTION "{schema}".outbox_settle(p_id uuid, p_error text, p_retry_in double precision) '
        "RETURNS void LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$ "
        f"UPDATE {qualified} SET attempts = attempts + 1, last_error = p_error, "
        "delivered_at = CASE WHEN p_error IS NULL THEN clock_timestamp() END, "
        "dead_at = CASE WHEN p_error IS NOT NULL AND p_retry_in IS NULL THEN clock_timestamp() END, "
        "available_at = CASE WHEN p_retry_in IS NULL THEN available_at "
        "ELSE clock_timestamp() + make_interval(secs => p_retry_in) END "
        "WHERE id = p_id AND delivered_at IS NULL AND dead_at IS NULL $$"
    )
    for function in ("outbox_claim(integer)", "outbox_settle(uuid, text, double precision)"):
        op.execute(f'REVOKE ALL ON FUNCTION "{schema}".{function} FROM PUBLIC')
        op.execute(f'GRANT EXECUTE ON FUNCTION "{schema}".{function} TO "{roles.app}"')


def drop_outbox(schema: str) -> None:
    """The downgrade of ``create_outbox``."""
    schema = _schema(schema)
    op.execute(f'DROP FUNCTION "{schema}".outbox_settle(uuid, text, double precision)')
    op.execute(f'DROP FUNCTION "{schema}".outbox_claim(integer)')
    op.drop_table(TABLE, schema=schema)
