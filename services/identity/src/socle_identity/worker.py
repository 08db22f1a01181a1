"""``python -m socle_identity.worker``: the identity service's background jobs, without its API.

For a deployment that runs the jobs in their own pods (API replicas then set
``SOCLE_IDENTITY_JOBS_IN_PROCESS=false``); each job still runs on one replica at a time,
under its lock. Reads the same settings as the service, stops on SIGTERM or SIGINT once
the runs under way are finished.
"""

from __future__ import annotations

import asyncio

from socle_core.db import create_engine, create_session_maker
from socle_core.jobs import JobRunner
from socle_core.logging import configure_logging
from socle_core.worker import serve
from socle_identity.config import IdentitySettings
from socle_identity.deps import keycloak_client
from socle_identity.jobs import LOCKS, build_jobs, schedule


async def main(settings: IdentitySettings) -> None:
    if settings.keycloak_client_secret is None:
        raise SystemExit("the identity worker needs Keycloak access: set SOCLE_IDENTITY_KEYCLOAK_CLIENT_SECRET")
    engine = create_engine(settings)
    try:
        async with keycloak_client(settings, settings.keycloak_client_secret) as keycloak:
            jobs = schedule(settings, build_jobs(settings, keycloak, create_session_maker(engine)))
            runner = JobRunner(engine, jobs, standby_seconds=settings.jobs_standby_seconds, application_name=LOCKS)
            await serve(runner.run, name="identity")
    finally:
        await engine.dispose()


if __name__ == "__main__":
    settings = IdentitySettings()  # type: ignore[call-arg]
    configure_logging(settings.service_name, settings.log_level, settings.log_json)
    asyncio.run(main(settings))
