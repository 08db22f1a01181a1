"""Reading, exporting and verifying the audit log with the application role.

Every read runs in the chain's tenant context: RLS shows a session one tenant's chain and
head only, so an auditor's read opens a system tenant context per tenant (logged with its
reason). Verification can also hold the chains to anchors kept outside the database
(signed heads, earlier exports): the only check a consistent rewrite by the database's
owner or superuser cannot pass.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Select, Text, cast, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from socle_core.audit import PLATFORM_TENANT
from socle_core.auth import Principal, system_tenant
from socle_core.db import tenant_session
from socle_core.errors import InvalidInput
from socle_core.tenant import TenantId
from socle_tenancy.db.models import AuditEntry, AuditHead, Tenant
from socle_tenancy.domain.audit.chain import TIME_FORMAT, Anchor, ChainChecker, ChainEntry, Finding, Head

_COLUMNS = (
    AuditEntry.tenant_id,
    AuditEntry.seq,
    func.to_char(func.timezone("UTC", AuditEntry.recorded_at), TIME_FORMAT).label("recorded_at_text"),
    AuditEntry.recorded_at,
    AuditEntry.actor,
    AuditEntry.action,
    AuditEntry.target,
    AuditEntry.outcome,
    AuditEntry.details,
    cast(AuditEntry.details, Text).label("details_text"),
    AuditEntry.prev_hash,
    AuditEntry.hash,
)


def actor_of(principal: Principal) -> str:
    """Who acted, as the audit log names them: the token's subject (a Keycloak user or service account)."""
    return principal.actor


@dataclass(frozen=True)
class Filters:
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    action: str | None = None


def _filtered(tenant: uuid.UUID, filters: Filters) -> Select[Any]:
    query = select(*_COLUMNS).where(AuditEntry.tenant_id == tenant)
    if filters.since is not None:
        query = query.where(AuditEntry.recorded_at >= filters.since)
    if filters.until is not None:
        query = query.where(AuditEntry.recorded_at < filters.until)
    if filters.action is not None:
        # ``onboarding`` matches every ``onboarding.*`` action; ``grants.create`` matches itself.
        query = query.where((AuditEntry.action == filters.action) | AuditEntry.action.startswith(f"{filters.action}."))
    return query


def entry_of(row: Any) -> ChainEntry:
    return ChainEntry(
        tenant_id=row.tenant_id,
        seq=row.seq,
        recorded_at=row.recorded_at_text,
        actor=row.actor,
        action=row.action,
        target=row.target,
        outcome=row.outcome,
        details_text=row.details_text,
        prev_hash=bytes(row.prev_hash),
        hash=bytes(row.hash),
    )


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"seq:{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, value = raw.partition(":")
        if prefix != "seq":
            raise ValueError(prefix)
        return int(value)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        detail = "ce curseur n'a pas été donné par cette API : passez tel quel le next_cursor de la page précédente"
        raise InvalidInput(detail, errors=[{"location": "query", "field": "query.cursor", "detail": detail}]) from exc


_CLOSE_REFUSAL_WINDOWS = text("SELECT tenancy.close_refusal_windows(:chain)")


async def close_refusal_windows(session: AsyncSession, tenant: uuid.UUID) -> None:
    """Append the summaries of the chain's refusal windows that are over, so a read counts every refusal."""
    await session.execute(_CLOSE_REFUSAL_WINDOWS, {"chain": tenant})


async def list_entries(
    session: AsyncSession, tenant: uuid.UUID, filters: Filters, *, limit: int, cursor: str | None
) -> tuple[list[Any], str | None]:
    """One page of a chain, newest first; the cursor continues below the last entry returned."""
    query = _filtered(tenant, filters)
    if cursor is not None:
        query = query.where(AuditEntry.seq < decode_cursor(cursor))
    rows = list((await session.execute(query.order_by(AuditEntry.seq.desc()).limit(limit + 1))).all())
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, encode_cursor(rows[-1].seq) if more and rows else None


async def stream_entries(
    maker: async_sessionmaker[AsyncSession], tenant: TenantId, filters: Filters
) -> AsyncIterator[Any]:
    """A chain's entries in chain order, read through a server-side cursor in the tenant's context."""
    async with tenant_session(maker, tenant) as session:
        result = await session.stream(_filtered(tenant.uuid, filters).order_by(AuditEntry.seq))
        async for row in result:
            yield row


@dataclass
class Verdict:
    ok: bool
    chains: int
    entries: int
    findings: list[Finding] = field(default_factory=list)
    checked_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))


#: Chains that have a partition, whatever the heads say (a chain whose head row vanished is still checked).
_PARTITIONED_CHAINS = text(
    """
    SELECT (regexp_match(pg_get_expr(c.relpartbound, c.oid), '([0-9a-f]{8}-[0-9a-f-]{27})'))[1]::uuid AS chain_id
    FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
    WHERE i.inhparent = 'tenancy.audit_entries'::regclass
    """
)


async def known_chains(maker: async_sessionmaker[AsyncSession]) -> set[uuid.UUID]:
    """Every chain there is or should be: partitions, registered tenants and the platform.

    A chain's head exists only once it has an entry, and then so does its partition.
    """
    async with maker() as session, session.begin():
        registered = set((await session.scalars(select(Tenant.id))).all())
        partitioned = {r for r in (await session.scalars(_PARTITIONED_CHAINS)).all() if r is not None}
    return registered | partitioned | {PLATFORM_TENANT}


async def chain_head(session: AsyncSession, chain: uuid.UUID) -> AuditHead | None:
    """The chain's head, read in a session in the chain's context (RLS shows no other)."""
    return await session.get(AuditHead, chain)


def anchors_by_chain(anchors: Iterable[Anchor]) -> dict[uuid.UUID, dict[int, list[Anchor]]]:
    grouped: dict[uuid.UUID, dict[int, list[Anchor]]] = defaultdict(lambda: defaultdict(list))
    for anchor in anchors:
        grouped[anchor.tenant_id][anchor.seq].append(anchor)
    return grouped


async def verify(
    maker: async_sessionmaker[AsyncSession],
    tenants: Sequence[uuid.UUID] | None = None,
    anchors: Iterable[Anchor] = (),
) -> Verdict:
    """Recompute every chain (or the named ones) from its stored fields; any finding fails the verdict.

    Chains are those with a partition, every registered tenant, the platform and every chain
    an anchor names: a chain whose head row was removed, or whose tenant and partition were
    dropped, is still checked. Each must still hold its anchors (signed heads, an export).
    """
    anchored = anchors_by_chain(anchors)
    if tenants is None:
        tenants = sorted(await known_chains(maker) | set(anchored))
    findings: list[Finding] = []
    total = 0
    for tenant in tenants:
        context = system_tenant(tenant, reason="verify the audit chain")
        async with tenant_session(maker, context) as session:
            head = await chain_head(session, tenant)
            checker = ChainChecker(
                tenant,
                Head(int(head.last_seq), bytes(head.last_hash)) if head is not None else None,
                anchors=anchored.get(tenant, {}),
            )
            result = await session.stream(_filtered(tenant, Filters()).order_by(AuditEntry.seq))
            async for row in result:
                checker.feed(entry_of(row))
        findings.extend(checker.finish())
        total += checker.entries
    return Verdict(ok=not findings, chains=len(tenants), entries=total, findings=findings)
