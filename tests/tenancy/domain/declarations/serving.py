"""The tenancy app served by uvicorn on a free port, for commands that talk HTTP to it."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from litestar import Litestar

from socle_devstack.processes import free_port
from socle_devstack.stack import REPO_ROOT


@contextmanager
def serve(app: Litestar) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the tenancy app did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def socle_tenants(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The real command, in its own process, with only the environment given (plus PATH)."""
    return subprocess.run(
        [sys.executable, "-m", "socle_tenancy.domain.declarations", *args],
        env={"PATH": os.environ.get("PATH", ""), **env},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
