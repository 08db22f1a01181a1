"""The shape of a service's worker process: background work outside the API replicas.

A service's ``python -m socle_<service>.worker`` builds its jobs (and outbox dispatchers)
and hands them to ``serve``, which runs them until SIGTERM or SIGINT: the signal sets the
stop event, work under way (a job's run, a dispatcher's batch) is finished, the locks are
released, and the process exits 0. Kubernetes sends SIGTERM before it kills a pod, so a
worker Deployment gets the same graceful stop as ``make up``'s Ctrl-C.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable

import structlog

log = structlog.get_logger("socle.worker")


async def serve(work: Callable[[asyncio.Event], Awaitable[None]], *, name: str) -> None:
    """Run ``work(stop)`` until a stop signal; ``work`` must return soon after ``stop`` is set."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def request_stop(signum: int) -> None:
        log.info("worker_stopping", worker=name, signal=signal.Signals(signum).name)
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, request_stop, signum)
    log.info("worker_started", worker=name)
    try:
        await work(stop)
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
    log.info("worker_stopped", worker=name)
