"""Importing Keycloak's events into the audit log, exactly once each.

Keycloak stores user and client events (logins, logouts, tokens: ``/events``) and admin
events (changes made through its admin API: ``/admin-events``). A run reads each store in
time order, page by page, from the cursor (the newest event already imported) minus an
overlap, because Keycloak may store an event a little after a newer one. Every page is one
transaction: the event ids are inserted into ``identity.keycloak_imported_events`` (an id
already there means a previous run imported the event: skipped), the new events are appended
to their tenants' chains with ``socle_core.audit.record``, and the cursor moves. A crash
anywhere leaves either all of a page or none of it, so nothing is lost or written twice.

Tenants are looked up (``TenantResolver``) before the transaction opens: no chain lock is
held during a Keycloak call. The identity role may write any registered tenant's chain
(tenancy's migrations list it for this feed, ADR 0007); a tenant the registry does not know
gets no chain, so its events go to the platform chain. Chains are appended in the order of their ids, as every writer
does (ADR 0007), so a run never deadlocks with a request recording for two tenants.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from collections import defaultdict
from typing import Any

import structlog
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from socle_core.audit import PLATFORM_TENANT, record
from socle_core.db import tenant_session
from socle_identity.db.models import KeycloakEventCursor, KeycloakImportedEvent
from socle_identity.domain.audit_feed.schemas import AuditFeedReport, StreamReport
from socle_identity.domain.audit_feed.tenants import TenantResolver
from socle_identity.domain.audit_feed.translation import (
    EVENT_ACTIONS,
    STREAMS,
    Draft,
    Stream,
    admin_event,
    user_event,
)
from socle_identity.keycloak import KeycloakAdminClient

log = structlog.get_logger("socle.identity.audit_feed")

_PATHS: dict[Stream, str] = {"events": "/events", "admin-events": "/admin-events"}


_KNOWN_CHAINS = text("SELECT tenancy.audit_chains_known(CAST(:chains AS uuid[]))")


async def _registered(session: AsyncSession, tenants: set[uuid.UUID]) -> set[uuid.UUID]:
    """The tenants whose chains may be written, among those the events concern.

    An organization whose tenant the registry does not know (made by hand in Keycloak) gets
    no chain: its events go to the platform chain, with the tenants in ``details.tenants``.
    """
    if not tenants:
        return set()
    return set(await session.scalar(_KNOWN_CHAINS, {"chains": sorted(tenants)}) or [])


def _moment(time_ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(time_ms / 1000, dt.UTC)


class AuditFeed:
    """Imports both Keycloak event stores; one run at a time in this process, serialised across processes."""

    def __init__(
        self,
        keycloak: KeycloakAdminClient,
        maker: async_sessionmaker[AsyncSession],
        *,
        page_size: int,
        overlap_seconds: float,
        lookback_seconds: int,
    ) -> None:
        self.keycloak = keycloak
        self.maker = maker
        self.page_size = page_size
        self.overlap_ms = int(overlap_seconds * 1000)
        self.lookback_ms = lookback_seconds * 1000
        self._lock = asyncio.Lock()

    async def run(self) -> AuditFeedReport:
        async with self._lock:
            resolver = TenantResolver(self.keycloak)
            report = AuditFeedReport(streams=[await self._import(stream, resolver) for stream in STREAMS])
        if any(s.imported for s in report.streams):
            log.info("audit_feed_run", **{f"{s.stream.replace('-', '_')}_imported": s.imported for s in report.streams})
        return report

    async def _import(self, stream: Stream, resolver: TenantResolver) -> StreamReport:
        async with self.maker() as session, session.begin():
            cursor = await session.scalar(
                select(KeycloakEventCursor.imported_until_ms).where(KeycloakEventCursor.stream == stream)
            )
        if cursor is None:
            read_from = max(0, int(time.time() * 1000) - self.lookback_ms)
        else:
            read_from = max(0, cursor - self.overlap_ms)
        report = StreamReport(
            stream=stream,
            read_from=_moment(read_from),
            read=0,
            imported=0,
            already_imported=0,
            entries=0,
            imported_until=_moment(cursor) if cursor else None,
        )
        first = 0
        while True:
            page = await self._page(stream, read_from, first)
            report.read += len(page)
            drafts = [d for d in (self._draft(stream, e) for e in page) if d is not None]
            placed = [(d, await resolver.tenants_of(d.subject)) for d in drafts]
            if page:
                await self._write(stream, placed, max(int(e["time"]) for e in page), report)
            if len(page) < self.page_size:
                break
            first += self.page_size
        await self._prune(stream)
        return report

    async def _page(self, stream: Stream, read_from: int, first: int) -> list[dict[str, Any]]:
        params: list[tuple[str, str | int]] = []
        if stream == "events":
            params += [("type", kind) for kind in EVENT_ACTIONS]
        params += [("dateFrom", read_from), ("first", first), ("max", self.page_size), ("direction", "asc")]
        page = (await self.keycloak.request("GET", _PATHS[stream], params=params)).json()
        return [e for e in page if isinstance(e, dict) and isinstance(e.get("time"), int)]

    @staticmethod
    def _draft(stream: Stream, event: dict[str, Any]) -> Draft | None:
        return user_event(event) if stream == "events" else admin_event(event)

    async def _write(
        self, stream: Stream, placed: list[tuple[Draft, list[uuid.UUID]]], newest_ms: int, report: StreamReport
    ) -> None:
        """One page in one transaction: remember the ids, append the new events, move the cursor."""
        unique = {d.event_id: (d, tenants) for d, tenants in placed}
        async with tenant_session(self.maker, None) as session:
            await session.execute(
                insert(KeycloakEventCursor).values(stream=stream, imported_until_ms=0).on_conflict_do_nothing()
            )
            # Serialises runs of several identity replicas: the second waits, then finds the ids taken.
            await session.execute(
                select(KeycloakEventCursor.stream).where(KeycloakEventCursor.stream == stream).with_for_update()
            )
            fresh: set[str] = set()
            if unique:
                rows = [
                    {"stream": stream, "event_id": d.event_id, "event_time_ms": d.time_ms} for d, _ in unique.values()
                ]
                fresh = set(
                    await session.scalars(
                        insert(KeycloakImportedEvent)
                        .values(rows)
                        .on_conflict_do_nothing()
                        .returning(KeycloakImportedEvent.event_id)
                    )
                )
            known = await _registered(session, {t for e in fresh for t in unique[e][1]})
            chains: dict[uuid.UUID, list[tuple[Draft, list[uuid.UUID]]]] = defaultdict(list)
            for event_id in fresh:
                draft, tenants = unique[event_id]
                for chain in [t for t in tenants if t in known] or [PLATFORM_TENANT]:
                    chains[chain].append((draft, tenants))
            for chain in sorted(chains):
                for draft, tenants in sorted(chains[chain], key=lambda item: (item[0].time_ms, item[0].event_id)):
                    details = dict(draft.details)
                    if len(tenants) > 1 or (tenants and chain not in tenants):
                        details["tenants"] = [str(t) for t in tenants]
                    await record(
                        session,
                        chain,
                        actor=draft.actor,
                        action=draft.action,
                        target=draft.target,
                        outcome=draft.outcome,
                        details=details,
                    )
                    report.entries += 1
            imported_until = await session.scalar(
                update(KeycloakEventCursor)
                .where(KeycloakEventCursor.stream == stream)
                .values(
                    imported_until_ms=func.greatest(KeycloakEventCursor.imported_until_ms, newest_ms),
                    updated_at=func.now(),
                )
                .returning(KeycloakEventCursor.imported_until_ms)
            )
        report.imported += len(fresh)
        report.already_imported += len(unique) - len(fresh)
        if imported_until:
            report.imported_until = _moment(int(imported_until))

    async def _prune(self, stream: Stream) -> None:
        """Forget the ids no run reads again (older than the cursor minus twice the overlap)."""
        async with tenant_session(self.maker, None) as session:
            horizon = (
                select(KeycloakEventCursor.imported_until_ms - 2 * self.overlap_ms)
                .where(KeycloakEventCursor.stream == stream)
                .scalar_subquery()
            )
            await session.execute(
                delete(KeycloakImportedEvent).where(
                    KeycloakImportedEvent.stream == stream, KeycloakImportedEvent.event_time_ms < horizon
                )
            )
