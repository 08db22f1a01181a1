"""Database engine and sessions that carry the tenant context.

The tenant context is a transaction setting, never a connection setting: at the start of
every transaction the session runs ``set_config('app.tenant_id', <tenant or ''>, true)``.
The value dies with the transaction, so a pooled connection can never carry one tenant's
context into another tenant's request. Row-level security policies read it back.

One transaction per request: ``provide_db_session`` yields the session to the handler,
commits when the handler returned normally and rolls back when it raised. Services only
``flush()``; they never commit.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Request
from litestar.datastructures import State
from litestar.types import Scope
from sqlalchemy import event, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session, SessionTransaction

from socle_core.settings import ServiceSettings
from socle_core.tenant import TenantId

TENANT_SETTING = "app.tenant_id"
_TENANT_KEY = "socle_tenant_id"


class TenantScopedSession(Session):
    """A Session whose every transaction starts by setting the tenant context."""


@event.listens_for(TenantScopedSession, "after_begin")
def _apply_tenant_context(session: Session, _tx: SessionTransaction, connection: Connection) -> None:
    tenant = session.info.get(_TENANT_KEY)
    value = str(tenant) if isinstance(tenant, TenantId) else ""
    connection.execute(text("SELECT set_config(:name, :value, true)"), {"name": TENANT_SETTING, "value": value})


def create_engine(settings: ServiceSettings, *, url: str | None = None) -> AsyncEngine:
    """The service's engine; pool sizes from settings, named connections for pg_stat_activity."""
    return create_async_engine(
        url or settings.database_url.get_secret_value(),
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout_seconds,
        pool_pre_ping=True,
        connect_args={
            "server_settings": {
                "application_name": f"socle-{settings.service_name}",
                "statement_timeout": str(settings.db_statement_timeout_ms),
            }
        },
    )


def create_session_maker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, sync_session_class=TenantScopedSession)


def bind_tenant(session: AsyncSession, tenant: TenantId | None) -> None:
    """Set the tenant for the session's next transactions (before the first query)."""
    if session.in_transaction():
        raise RuntimeError("the tenant must be bound before the session's transaction begins")
    if tenant is None:
        session.info.pop(_TENANT_KEY, None)
    else:
        session.info[_TENANT_KEY] = tenant


@asynccontextmanager
async def tenant_session(
    maker: async_sessionmaker[AsyncSession], tenant: TenantId | None
) -> AsyncIterator[AsyncSession]:
    """One unit of work outside a request (workers, CLI): commit on success, roll back on error."""
    async with maker() as session:
        bind_tenant(session, tenant)
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


@asynccontextmanager
async def tenant_context(session: AsyncSession, tenant: TenantId) -> AsyncIterator[AsyncSession]:
    """Switch the session's open transaction to ``tenant``'s context, and back to its own on exit.

    For the rare write a unit of work makes for another tenant than its own, in the same
    transaction (e.g. offboarding recording in the leaving commune's audit chain): the
    ``TenantId`` comes from the auth layer (``system_tenant`` logs why). On an error the
    transaction rolls back, and the setting with it.
    """
    previous = await session.scalar(text("SELECT current_setting(:name, true)"), {"name": TENANT_SETTING})
    await session.execute(_SET_TENANT, {"name": TENANT_SETTING, "value": str(tenant)})
    yield session
    await session.execute(_SET_TENANT, {"name": TENANT_SETTING, "value": previous or ""})


_SET_TENANT = text("SELECT set_config(:name, :value, true)")


async def provide_db_session(state: State, request: Request[Any, Any, Any]) -> AsyncGenerator[AsyncSession, None]:
    """Litestar dependency: the request's one session and transaction.

    Litestar runs the code after ``yield`` once the handler has returned and its response
    is built, before anything is sent, and throws the handler's exception in otherwise:
    so the commit either succeeds before the client hears "success", or the client gets
    the error.
    """
    maker: async_sessionmaker[AsyncSession] = state.db_session_maker
    principal = request.scope.get("user")
    tenant = getattr(principal, "tenant", None)
    async with maker() as session:
        bind_tenant(session, tenant)
        open_sessions: list[AsyncSession] = request.scope.setdefault("state", {}).setdefault(_OPEN_SESSIONS, [])
        open_sessions.append(session)
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        else:
            try:  # a deferred constraint breaks here: the error handler maps it like a flush's
                await session.commit()
            except BaseException:
                await session.rollback()
                raise
        finally:
            if session in open_sessions:
                open_sessions.remove(session)


_OPEN_SESSIONS = "socle.open_db_sessions"


async def close_abandoned_sessions(exc: BaseException, scope: Scope) -> None:
    """``after_exception`` hook: roll back and close sessions whose dependency was never finalised.

    Litestar resolves dependencies in batches and only finalises generator dependencies
    once all of them were resolved: when a later dependency raises, the request's session
    would stay open, its connection checked out in a transaction, until garbage collection.
    """
    open_sessions: list[AsyncSession] = scope.get("state", {}).get(_OPEN_SESSIONS, [])
    while open_sessions:
        session = open_sessions.pop()
        await session.rollback()
        await session.close()
