"""The write contract between ingestion and timeseries (ADR 0019): ``store_readings``.

One call stores one validated batch of one tenant inside the caller's transaction, in three
set-based statements whatever the batch size: the tenant context is checked (or set), the
batch's series are resolved or created, and the readings are inserted with the latest values
moved forward. Row-level security stays in force throughout; ``COPY`` is not used because
PostgreSQL refuses ``COPY FROM`` into a table with RLS. The caller commits, and acknowledges
only after its commit.
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from socle_core.errors import InvalidInput
from socle_core.tenant import TenantId


class Quality(enum.IntEnum):
    """How far a stored value can be trusted; roll-ups and queries may filter on it."""

    GOOD = 0  # measured, within the device model's valid range
    SUSPECT = 1  # measured, but the decoder or the sensor reported a warning
    OUT_OF_RANGE = 2  # measured, outside the valid range, kept because the integration accepts it
    ESTIMATED = 3  # not measured: computed, interpolated or a meter's estimated index


@dataclass(frozen=True, slots=True)
class Reading:
    """One validated value of one metric of one device at one instant."""

    device_id: uuid.UUID
    metric: str
    time: dt.datetime
    value: float
    quality: Quality = Quality.GOOD
    unit: str | None = None


@dataclass(frozen=True, slots=True)
class StoreResult:
    """``inserted`` rows are new; ``duplicates`` were already stored (same series and time), or twice in the batch."""

    inserted: int
    duplicates: int
    series_created: int
    latest_moved: int


class TenantContextMismatch(RuntimeError):
    """The transaction is already bound to another tenant: a programming error, never a caller's input."""


class OutsideStoredPeriods(InvalidInput):
    """A reading falls in no partition: older than the oldest month kept or beyond the months made ahead."""


_CONTEXT = """
SELECT set_config('app.tenant_id', :tenant, true)
WHERE COALESCE(NULLIF(current_setting('app.tenant_id', true), ''), :tenant) = :tenant
"""

# Series of the batch, created where missing (in steady state all exist and nothing is
# attempted). A series another transaction creates meanwhile is in neither half (not
# inserted here, not yet visible to this statement's snapshot): the caller looks it up again.
_SERIES = """
WITH wanted AS (
  SELECT DISTINCT ON (device_id, metric) device_id, metric, unit
  FROM unnest($2::uuid[], $3::text[], $4::text[]) AS w(device_id, metric, unit)
  ORDER BY device_id, metric, unit NULLS LAST
), existing AS (
  SELECT s.id, s.device_id, s.metric FROM timeseries.series s
  JOIN wanted w ON s.tenant_id = $1 AND s.device_id = w.device_id AND s.metric = w.metric
), created AS (
  INSERT INTO timeseries.series (tenant_id, device_id, metric, unit)
  SELECT $1, w.device_id, w.metric, w.unit FROM wanted w
  WHERE NOT EXISTS (SELECT 1 FROM existing e WHERE e.device_id = w.device_id AND e.metric = w.metric)
  ORDER BY w.device_id, w.metric
  ON CONFLICT (tenant_id, device_id, metric) DO NOTHING
  RETURNING id, device_id, metric
)
SELECT id, device_id, metric, true AS created FROM created
UNION ALL
SELECT id, device_id, metric, false FROM existing
"""

_LOOKUP = """
SELECT s.id, s.device_id, s.metric FROM timeseries.series s
JOIN unnest($2::uuid[], $3::text[]) AS w(device_id, metric)
  ON s.tenant_id = $1 AND s.device_id = w.device_id AND s.metric = w.metric
"""

# Rows sorted by key so that concurrent batches lock in the same order (no deadlock), and a
# key repeated in the batch keeps its first value, as a retried key keeps the stored one; the
# latest value of a series moves only to a newer time, never back to late data.
_READINGS = """
WITH inserted AS (
  INSERT INTO timeseries.readings (tenant_id, series_id, time, value, quality)
  SELECT $1, series_id, time, value, quality
  FROM unnest($2::bigint[], $3::timestamptz[], $4::float8[], $5::int2[])
       WITH ORDINALITY AS r(series_id, time, value, quality, position)
  ORDER BY series_id, time, position
  ON CONFLICT DO NOTHING
  RETURNING series_id, time, value, quality
), newest AS (
  SELECT DISTINCT ON (series_id) series_id, time, value, quality FROM inserted ORDER BY series_id, time DESC
), moved AS (
  INSERT INTO timeseries.latest AS l (tenant_id, series_id, time, value, quality)
  SELECT $1, series_id, time, value, quality FROM newest ORDER BY series_id
  ON CONFLICT (tenant_id, series_id) DO UPDATE
    SET time = excluded.time, value = excluded.value, quality = excluded.quality, received_at = excluded.received_at
    WHERE excluded.time > l.time
  RETURNING 1
)
SELECT (SELECT count(*) FROM inserted) AS inserted, (SELECT count(*) FROM moved) AS moved
"""

Executor = asyncpg.Connection | AsyncConnection | AsyncSession


async def raw_connection(executor: Executor) -> asyncpg.Connection:
    """The asyncpg connection under a SQLAlchemy session or connection (its transaction, not a new one)."""
    if isinstance(executor, asyncpg.Connection):
        return executor
    connection = await executor.connection() if isinstance(executor, AsyncSession) else executor
    raw = await connection.get_raw_connection()
    driver = raw.driver_connection
    if not isinstance(driver, asyncpg.Connection):
        raise TypeError("store_readings needs the asyncpg driver")
    return driver


async def _bind_tenant(executor: Executor, tenant: TenantId) -> asyncpg.Connection:
    """Set the tenant context, or check it is already this tenant's; through SQLAlchemy this begins its transaction."""
    if isinstance(executor, asyncpg.Connection):
        if not executor.is_in_transaction():
            raise RuntimeError(
                "store_readings runs inside the caller's transaction, which commits before acknowledging"
            )
        bound = await executor.fetchval(_CONTEXT.replace(":tenant", "$1"), str(tenant))
    else:
        bound = (await executor.execute(text(_CONTEXT), {"tenant": str(tenant)})).scalar()
    if bound is None:
        raise TenantContextMismatch(f"the transaction is bound to another tenant than {tenant}")
    return await raw_connection(executor)


async def store_readings(executor: Executor, tenant: TenantId, readings: Sequence[Reading]) -> StoreResult:
    """Store a batch of ``tenant``'s readings exactly once, inside the caller's open transaction.

    Duplicates (a series and time already stored, or repeated in the batch) are counted, not
    raised; the first value stored for a key is kept. A reading no partition covers fails the
    whole batch with ``OutsideStoredPeriods`` (ingestion's validation rejects such times first).
    """
    if not readings:
        return StoreResult(0, 0, 0, 0)
    connection = await _bind_tenant(executor, tenant)
    keys = {(r.device_id, r.metric) for r in readings}
    rows = await connection.fetch(
        _SERIES,
        tenant.uuid,
        [r.device_id for r in readings],
        [r.metric for r in readings],
        [r.unit for r in readings],
    )
    series = {(row["device_id"], row["metric"]): row["id"] for row in rows}
    created = sum(1 for row in rows if row["created"])
    missing = keys - series.keys()
    if missing:  # created by a concurrent transaction after this statement's snapshot
        devices, metrics = zip(*missing, strict=True)
        again = await connection.fetch(_LOOKUP, tenant.uuid, list(devices), list(metrics))
        series.update({(row["device_id"], row["metric"]): row["id"] for row in again})
    try:
        counts: asyncpg.Record = await connection.fetchrow(
            _READINGS,
            tenant.uuid,
            [series[(r.device_id, r.metric)] for r in readings],
            [r.time for r in readings],
            [r.value for r in readings],
            [int(r.quality) for r in readings],
        )
    except asyncpg.CheckViolationError as exc:
        if not str(exc).startswith("no partition of relation"):
            raise
        raise _outside(readings) from exc
    inserted = int(counts["inserted"])
    return StoreResult(inserted, len(readings) - inserted, created, int(counts["moved"]))


def _outside(readings: Sequence[Reading]) -> OutsideStoredPeriods:
    """PostgreSQL does not name the row under RLS (it would show its values): name the batch's span."""
    first, last = min(r.time for r in readings).isoformat(), max(r.time for r in readings).isoformat()
    detail = (
        f"un relevé du lot (du {first} au {last}) tombe hors des périodes de stockage : les relevés sont "
        "conservés par mois, du plus ancien mois gardé jusqu'aux mois préparés à l'avance ; rien du lot n'a été "
        "enregistré"
    )
    return OutsideStoredPeriods(detail, errors=[{"location": "body", "field": "body.time", "detail": detail}])


async def create_partitions(executor: Executor, *, months_ahead: int = 3, now: dt.datetime | None = None) -> list[str]:
    """The partition job: make the current month's partition and ``months_ahead`` more; returns those it made.

    Idempotent (an existing month is skipped) and safe to run from several replicas at once.
    Run it as the timeseries application role, at least once a month.
    """
    connection = await raw_connection(executor)
    first = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).date().replace(day=1)
    rows = await connection.fetch(
        "SELECT timeseries.create_readings_partitions($1::date, $2::integer) AS name", first, months_ahead + 1
    )
    return [row["name"] for row in rows]
