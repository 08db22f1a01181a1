"""Building a real service app against the test servers."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from litestar import Litestar

from socle_core.server import UVICORN_OPTIONS
from socle_devstack.keycloak import KeycloakServer
from socle_devstack.processes import free_port
from socle_devstack.stack import Database


def settings_kwargs(service: str, database: Database, keycloak: KeycloakServer, **overrides: Any) -> dict[str, Any]:
    return {
        "environment": "test",
        "database_url": database.url(service, "app"),
        "migration_database_url": database.url(service, "owner"),
        "oidc_issuer": keycloak.issuer,
        "log_json": True,
        **overrides,
    }


@contextmanager
def served(app: Litestar) -> Iterator[str]:
    """Serve an app with uvicorn in a thread on a free local port (lifespan included); yields its base URL.

    With the services' own protocol and limits (``socle_core.server``), as the devstack and the image run them.
    """
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", **UVICORN_OPTIONS)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the app did not start on port {port}")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
