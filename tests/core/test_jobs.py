"""The job runner on the real PostgreSQL: one replica runs a job, another takes over when it goes."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from socle_core.jobs import JobRunner, ScheduledJob
from socle_devstack.stack import DATABASE, _with_database


@pytest.fixture
async def engine(database) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(database.url("identity", "app"))
    yield engine
    await engine.dispose()


class Replica:
    """One replica's runner of the job ``name``, recording its runs."""

    def __init__(
        self, engine: AsyncEngine, name: str, label: str, *, run_seconds: float = 0.0, standby_seconds: float = 0.1
    ) -> None:
        self.runs: list[str] = []
        self.finished: list[str] = []
        self.run_seconds = run_seconds
        self.label = label
        self.runner = JobRunner(
            engine,
            [ScheduledJob(name, self._run, 0.05)],
            standby_seconds=standby_seconds,
            application_name=f"test-jobs-{label}",
        )
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        self.runs.append(self.label)
        await asyncio.sleep(self.run_seconds)
        self.finished.append(self.label)

    def start(self) -> None:
        self.task = asyncio.create_task(self.runner.run(self.stop))

    async def shutdown(self) -> None:
        self.stop.set()
        assert self.task is not None
        await asyncio.wait_for(self.task, 10)


async def _until(condition: Callable[[], bool], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


def _job_name() -> str:
    return f"test.{uuid.uuid4().hex[:8]}"


async def test_two_runners_of_a_job_run_it_one_at_a_time_and_the_second_takes_over_when_the_first_stops(
    engine,
) -> None:
    name = _job_name()
    first, second = Replica(engine, name, "first"), Replica(engine, name, "second")
    first.start()
    await _until(lambda: len(first.runs) >= 2)
    second.start()
    await asyncio.sleep(0.6)  # several of the second's standby tries
    assert second.runs == []
    assert second.runner.holding == set()
    assert first.runner.holding == {name}

    await first.shutdown()
    runs_of_first = len(first.runs)
    await _until(lambda: len(second.runs) >= 2)
    assert len(first.runs) == runs_of_first
    assert second.runner.holding == {name}
    await second.shutdown()


async def test_the_second_takes_over_when_the_first_s_connection_dies(engine, database) -> None:
    name = _job_name()
    # The first tries again only after the second's next try: the second wins the race for the freed lock.
    first = Replica(engine, name, "dying", standby_seconds=1.0)
    second = Replica(engine, name, "standby")
    first.start()
    await _until(lambda: bool(first.runs))
    second.start()
    admin = await asyncpg.connect(_with_database(database.admin_dsn, DATABASE))
    try:
        killed = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'test-jobs-dying'"
        )
        assert killed == 1
        await _until(lambda: second.runner.holding == {name})
        await _until(lambda: first.runner.holding == set())
        runs_of_first = len(first.runs)
        await _until(lambda: len(second.runs) >= 3)
        await asyncio.sleep(1.5)  # the first is back from its standby, and finds the lock taken
        assert len(first.runs) == runs_of_first
        assert first.runner.holding == set()
    finally:
        await admin.close()
        await first.shutdown()
        await second.shutdown()


async def test_a_stop_finishes_the_run_under_way_and_releases_the_lock(engine, database) -> None:
    name = _job_name()
    replica = Replica(engine, name, "slow", run_seconds=0.8)
    replica.start()
    await _until(lambda: bool(replica.runs))
    await replica.shutdown()
    assert replica.finished == replica.runs == ["slow"]
    admin = await asyncpg.connect(_with_database(database.admin_dsn, DATABASE))
    try:
        held = await admin.fetchval(
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
            "WHERE l.locktype = 'advisory' AND a.application_name = 'test-jobs-slow'"
        )
    finally:
        await admin.close()
    assert held == 0


async def test_a_failing_run_does_not_stop_the_job(engine) -> None:
    calls: list[int] = []

    async def flaky() -> None:
        calls.append(len(calls))
        if len(calls) == 1:
            raise RuntimeError("first run fails")

    stop = asyncio.Event()
    runner = JobRunner(engine, [ScheduledJob(_job_name(), flaky, 0.05)], standby_seconds=0.1)
    task = asyncio.create_task(runner.run(stop))
    await _until(lambda: len(calls) >= 3)
    stop.set()
    await task
