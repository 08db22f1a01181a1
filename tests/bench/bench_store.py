"""Rows/s of ``store_readings`` under forced RLS against raw asyncpg COPY without RLS, in the same run.

Run: ``make bench-store`` (or ``uv run python tests/bench/bench_store.py [--batches N] [--rounds R]``). A scratch
PostgreSQL is started on a free port (the test suite's way: provisioned, every migration
applied). Both sides write batches of 1,000 readings of 100 series, one transaction and one
commit per batch, on one connection each, alternating round by round so that a noisy
neighbour on the machine weighs on both alike:

- **store**: ``store_readings`` as ``socle_ingestion_app`` (forced RLS, the tenant context, the
  series resolved, the monthly partition, the latest value moved forward);
- **copy**: ``copy_records_to_table`` into an unpartitioned table of the same columns and
  primary key, without RLS, as the schema owner: the fastest PostgreSQL can take the rows.

It ends with ``bench-store: store_rps=… copy_rps=… ratio=…`` (the medians of the rounds).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import shutil
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg

from socle_core.auth import system_tenant
from socle_core.migrations import upgrade
from socle_devstack.postgres import PostgresServer, debian_bin_dir, embedded_bin_dir
from socle_devstack.processes import free_port
from socle_devstack.stack import REPO_ROOT, SERVICES, Credentials, Database
from socle_timeseries.store import Reading, store_readings

BATCH = 1000
SERIES = 100

RAW_TABLE = """
CREATE TABLE timeseries.bench_raw (
  tenant_id uuid NOT NULL, series_id bigint NOT NULL, time timestamptz NOT NULL,
  value double precision NOT NULL, quality smallint NOT NULL DEFAULT 0,
  received_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, series_id, time)
)
"""


def plain(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


def batches(count: int, start: dt.datetime) -> list[list[Reading]]:
    """``count`` batches of distinct readings: 100 series x 10 instants each, a second apart."""
    devices = [uuid.uuid4() for _ in range(SERIES)]
    per_series = BATCH // SERIES
    return [
        [
            Reading(d, "level", start + dt.timedelta(seconds=b * per_series + i), float(i))
            for d in devices
            for i in range(per_series)
        ]
        for b in range(count)
    ]


async def run_store(url: str, work: list[list[Reading]]) -> float:
    tenant = system_tenant(uuid.uuid4(), reason="bench-store")
    connection = await asyncpg.connect(plain(url))
    try:
        async with connection.transaction():  # the series exist from here on, as in steady state
            await store_readings(connection, tenant, work[0])
        began = time.perf_counter()
        for batch in work[1:]:
            async with connection.transaction():
                result = await store_readings(connection, tenant, batch)
            if result.inserted != BATCH:
                raise SystemExit(f"store_readings inserted {result.inserted} of {BATCH}")
        return (len(work) - 1) * BATCH / (time.perf_counter() - began)
    finally:
        await connection.close()


async def run_copy(url: str, work: list[list[Reading]]) -> float:
    tenant = uuid.uuid4()
    ids = {d: i for i, d in enumerate(sorted({r.device_id for r in work[0]}))}
    records = [[(tenant, ids[r.device_id], r.time, r.value, int(r.quality)) for r in batch] for batch in work]
    connection = await asyncpg.connect(plain(url))
    try:
        began = time.perf_counter()
        for batch in records[1:]:
            async with connection.transaction():
                await connection.copy_records_to_table(
                    "bench_raw",
                    schema_name="timeseries",
                    records=batch,
                    columns=["tenant_id", "series_id", "time", "value", "quality"],
                )
        return (len(records) - 1) * BATCH / (time.perf_counter() - began)
    finally:
        await connection.close()


async def bench(database: Database, batch_count: int, rounds: int) -> tuple[float, float]:
    owner = database.url("timeseries", "owner")
    connection = await asyncpg.connect(plain(owner))
    try:
        await connection.execute(RAW_TABLE)
    finally:
        await connection.close()
    store_rates, copy_rates = [], []
    start = dt.datetime.now(dt.UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    for round_number in range(rounds):
        work = batches(batch_count + 1, start + dt.timedelta(hours=round_number))
        store_rates.append(await run_store(database.url("ingestion", "app"), work))
        copy_rates.append(await run_copy(owner, work))
        print(f"round {round_number + 1}: store {store_rates[-1]:,.0f} rows/s, copy {copy_rates[-1]:,.0f} rows/s")
    return statistics.median(store_rates), statistics.median(copy_rates)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=200, help="batches of 1,000 readings per round and side")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="socle-bench-store-"))
    root.chmod(0o755)
    server = PostgresServer(
        root / "data", free_port(), debian_bin_dir() or embedded_bin_dir(), root / "pg.log", durable=True
    )
    server.start()
    try:
        database = Database("127.0.0.1", server.port, server.admin_dsn, Credentials.load_or_create(None, "bench-"))
        asyncio.run(database.provision())
        for service in SERVICES:
            upgrade(
                REPO_ROOT / "services" / service / "src" / f"socle_{service}" / "db" / "migrations",
                database.url(service, "owner"),
                service,
            )
        store, copy = asyncio.run(bench(database, args.batches, args.rounds))
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
    print(f"bench-store: store_rps={store:.0f} copy_rps={copy:.0f} ratio={store / copy:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
