"""Liveness, readiness and what readiness really checks.

``/health/live`` says the process answers. ``/health/ready`` says it can do its job: the
database answers as the application role and the identity provider's keys can be fetched.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from litestar import Response, get
from litestar.datastructures import State
from litestar.openapi.datastructures import ResponseSpec
from sqlalchemy import text

from socle_core.access import public
from socle_core.errors import PROBLEM_JSON, ProblemDetails, problem_body

ReadinessCheck = Callable[[State], Awaitable[None]]


async def check_database(state: State) -> None:
    async with state.db_engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


async def check_identity_provider(state: State) -> None:
    await state.token_verifier.ensure_keys()


DEFAULT_CHECKS: dict[str, ReadinessCheck] = {
    "database": check_database,
    "identity_provider": check_identity_provider,
}


@get(
    "/health/live", include_in_schema=True, tags=["health"], sync_to_thread=False, access=public("vivacité du service")
)
def live() -> dict[str, str]:
    return {"status": "ok"}


@get(
    "/health/ready",
    tags=["health"],
    access=public("disponibilité du service et de ses dépendances"),
    responses={
        503: ResponseSpec(
            ProblemDetails,
            description="Not ready: the failing checks",
            media_type=PROBLEM_JSON,
            generate_examples=False,
        )
    },
)
async def ready(state: State) -> Response[dict[str, Any]]:
    checks: dict[str, ReadinessCheck] = state.readiness_checks
    results: dict[str, dict[str, Any]] = {}

    async def run(name: str, check: ReadinessCheck) -> None:
        started = time.perf_counter()
        try:
            await asyncio.wait_for(check(state), timeout=5)
            results[name] = {"status": "ok"}
        except Exception as exc:  # readiness reports every failure, it never raises
            results[name] = {"status": "failing", "error": f"{type(exc).__name__}: {exc}"[:300]}
        results[name]["duration_ms"] = round((time.perf_counter() - started) * 1000, 1)

    await asyncio.gather(*(run(name, check) for name, check in checks.items()))
    if all(r["status"] == "ok" for r in results.values()):
        return Response({"status": "ready", "checks": results})
    failing = ", ".join(sorted(n for n, r in results.items() if r["status"] != "ok"))
    body = problem_body(503, "not-ready", "Service pas prêt", f"vérifications en échec : {failing}", "/health/ready")
    body["checks"] = results
    return Response(body, status_code=503, media_type=PROBLEM_JSON)
