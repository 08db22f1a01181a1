"""Background jobs that run on exactly one replica at a time (ADR 0018).

Each named job is guarded by a PostgreSQL session-level advisory lock, taken with
``pg_try_advisory_lock`` on a connection of its own (outside the pool, so that the lock
can never be handed to a request with a pooled connection). The replica holding the lock
runs the job every interval; the others stand by and try again every ``standby_seconds``.
The lock dies with its session: when the holder stops, crashes or loses its connection,
PostgreSQL releases it and a standby takes over at its next try.

Before each run the holder checks that its lock connection still answers, and steps back
to standby if not. A run that started just before the connection died may overlap the new
holder's first run, so jobs keep their state in the database and are idempotent (every job
of Socle is). ``running_jobs`` runs them inside a service's lifespan or in a worker
process (``socle_core.worker``); on stop, a run under way is finished, never cancelled.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

log = structlog.get_logger("socle.jobs")

_TRY_LOCK = text("SELECT pg_try_advisory_lock(hashtextextended(:key, 0))")
_UNLOCK = text("SELECT pg_advisory_unlock(hashtextextended(:key, 0))")


@dataclass(frozen=True)
class ScheduledJob:
    """A job's name (its lock), what one run does, and the pause between runs."""

    name: str
    run: Callable[[], Awaitable[Any]]
    interval_seconds: float

    @property
    def lock_key(self) -> str:
        return f"socle-job:{self.name}"


class JobRunner:
    """Keeps each job running on one replica among all that run the same runner."""

    def __init__(
        self,
        engine: AsyncEngine,
        jobs: Sequence[ScheduledJob],
        *,
        standby_seconds: float = 5.0,
        application_name: str = "socle-jobs",
    ) -> None:
        names = [job.name for job in jobs]
        if len(set(names)) != len(names):
            raise ValueError(f"job names must be unique: {names}")
        self.jobs = list(jobs)
        self.standby_seconds = standby_seconds
        self._locks = create_async_engine(
            engine.url,
            poolclass=NullPool,
            connect_args={"server_settings": {"application_name": application_name}},
        )
        #: Names of the jobs this runner holds the lock of right now.
        self.holding: set[str] = set()

    async def run(self, stop: asyncio.Event) -> None:
        """Run every job until ``stop`` is set, then release the locks."""
        try:
            await asyncio.gather(*(self._keep(job, stop) for job in self.jobs))
        finally:
            await self._locks.dispose()

    async def _keep(self, job: ScheduledJob, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                async with self._locks.connect() as connection:
                    autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
                    if await autocommit.scalar(_TRY_LOCK, {"key": job.lock_key}):
                        await self._hold(job, autocommit, stop)
            except (OSError, SQLAlchemyError) as exc:  # the lock's session is gone, and the lock with it
                log.warning("job_lock_lost", job=job.name, error=str(exc))
            finally:
                self.holding.discard(job.name)
            await _wait(stop, self.standby_seconds)

    async def _hold(self, job: ScheduledJob, connection: AsyncConnection, stop: asyncio.Event) -> None:
        self.holding.add(job.name)
        log.info("job_lock_acquired", job=job.name)
        while not await _wait(stop, job.interval_seconds):
            await connection.scalar(text("SELECT 1"))  # still our session, so still our lock
            await _run_once(job)
        await connection.scalar(_UNLOCK, {"key": job.lock_key})
        log.info("job_lock_released", job=job.name)


async def _run_once(job: ScheduledJob) -> None:
    try:
        await job.run()
    except Exception:  # a failed run must not stop the job: logged, and the next run resumes
        log.exception("job_run_failed", job=job.name)


async def _wait(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep ``seconds`` or until ``stop`` is set; whether it is set."""
    with suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    return stop.is_set()


@asynccontextmanager
async def running_jobs(engine: AsyncEngine, jobs: Sequence[ScheduledJob], **options: Any) -> AsyncIterator[JobRunner]:
    """Run the jobs in the background for the duration of the block; on exit, finish runs under way."""
    runner = JobRunner(engine, jobs, **options)
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    try:
        yield runner
    finally:
        stop.set()
        await task
