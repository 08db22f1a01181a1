"""Identity's background jobs run on one replica at a time, in the service or in its worker command."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg
from litestar.testing import AsyncTestClient

from socle_devstack.stack import DATABASE, _with_database, service_env
from socle_identity.app import create_app
from socle_identity.config import IdentitySettings
from socle_identity.jobs import LOCKS
from tests.support.apps import settings_kwargs

JOBS = {"identity.placement", "identity.audit_feed", "identity.invitations"}
#: Long intervals: these tests are about who holds each job, not what a run does.
INTERVALS = {"placement_sync_interval_seconds": 3600, "audit_feed_interval_seconds": 3600}


class Worker:
    """``python -m socle_identity.worker`` as a Deployment's pod runs it, its JSON log in a file."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "socle_identity.worker"], env=env, stdout=out, stderr=subprocess.STDOUT
            )

    def events(self) -> list[dict[str, object]]:
        lines = self.log.read_text().splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def acquired(self) -> set[str]:
        return {str(e["job"]) for e in self.events() if e.get("event") == "job_lock_acquired"}

    def wait_for(self, what: str, condition, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if self.process.poll() is not None:
                raise AssertionError(f"the worker exited ({self.process.returncode}): {self.log.read_text()[-2000:]}")
            assert time.monotonic() < deadline, f"{what}: {self.log.read_text()[-2000:]}"
            time.sleep(0.1)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=30)


@contextmanager
def worker(env: dict[str, str], log: Path) -> Iterator[Worker]:
    running = Worker(env, log)
    try:
        yield running
    finally:
        if running.process.poll() is None:
            running.process.kill()
            running.process.wait()


def _worker_env(database, keycloak, credentials) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.upper().startswith("SOCLE_")}
    return {
        **clean,
        **service_env(
            "identity",
            database,
            keycloak.issuer,
            environment="test",
            extra={
                "SOCLE_IDENTITY_KEYCLOAK_CLIENT_SECRET": credentials["platform_client"],
                "SOCLE_IDENTITY_PLACEMENT_SYNC_INTERVAL_SECONDS": "3600",
                "SOCLE_IDENTITY_AUDIT_FEED_INTERVAL_SECONDS": "3600",
                "SOCLE_IDENTITY_INVITATION_SYNC_INTERVAL_SECONDS": "3600",
                "SOCLE_IDENTITY_JOBS_STANDBY_SECONDS": "0.2",
                "SOCLE_IDENTITY_LOG_JSON": "true",
            },
        ),
    }


def test_two_workers_run_each_job_once_and_one_takes_over_all_after_the_other_s_sigterm(
    database, keycloak, credentials, tmp_path: Path
) -> None:
    env = _worker_env(database, keycloak, credentials)
    with worker(env, tmp_path / "a.log") as a, worker(env, tmp_path / "b.log") as b:
        a.wait_for("the jobs are taken", lambda: a.acquired() | b.acquired() == JOBS)
        for each in (a, b):
            each.wait_for(
                "both workers run", lambda each=each: any(e["event"] == "worker_started" for e in each.events())
            )
        time.sleep(1.0)  # five standby tries of each
        assert a.acquired() | b.acquired() == JOBS
        assert a.acquired() & b.acquired() == set(), "no job runs in both workers"
        leaving, staying = (a, b) if a.acquired() else (b, a)

        assert leaving.stop() == 0
        released = {str(e["job"]) for e in leaving.events() if e.get("event") == "job_lock_released"}
        assert released == leaving.acquired()
        assert leaving.events()[-1]["event"] == "worker_stopped"

        staying.wait_for("the other worker takes every job over", lambda: staying.acquired() == JOBS)
        assert staying.stop() == 0
        assert staying.events()[-1]["event"] == "worker_stopped"


async def _lock_holders(database) -> int:
    """How many sessions of identity's job locks hold an advisory lock."""
    admin = await asyncpg.connect(_with_database(database.admin_dsn, DATABASE))
    try:
        return await admin.fetchval(
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
            "WHERE l.locktype = 'advisory' AND l.granted AND a.application_name = $1",
            LOCKS,
        )
    finally:
        await admin.close()


async def test_two_service_replicas_hold_each_background_job_once(
    clean_socle_env, database, keycloak, credentials
) -> None:
    """Before the runner, each replica ran every job; now the second replica's jobs stand by."""
    settings = IdentitySettings(
        **settings_kwargs(
            "identity",
            database,
            keycloak,
            keycloak_client_secret=credentials["platform_client"],
            invitation_sync_interval_seconds=3600,
            jobs_standby_seconds=0.2,
            **INTERVALS,
        )
    )
    async with AsyncTestClient(create_app(settings)), AsyncTestClient(create_app(settings)):
        for _ in range(100):
            if await _lock_holders(database) == len(JOBS):
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.6)  # the other replica's standby tries
        assert await _lock_holders(database) == len(JOBS)
    assert await _lock_holders(database) == 0


async def test_jobs_in_process_off_leaves_the_jobs_to_the_worker_and_keeps_the_endpoints(
    clean_socle_env, database, keycloak, credentials
) -> None:
    settings = IdentitySettings(
        **settings_kwargs(
            "identity",
            database,
            keycloak,
            keycloak_client_secret=credentials["platform_client"],
            invitation_sync_interval_seconds=3600,
            jobs_in_process=False,
            **INTERVALS,
        )
    )
    async with AsyncTestClient(create_app(settings)) as client:
        await asyncio.sleep(0.5)
        assert await _lock_holders(database) == 0
        assert client.app.state.audit_feed is not None
