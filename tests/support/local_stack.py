"""A local-stack description (``stack.json`` and ``secrets.json``) of the test session's servers.

What ``make up`` leaves in ``.socle/`` while it runs, pointing at servers the tests started, so
the command-line tools can be run as a developer runs them: with no setting in their environment.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from socle_core.local_stack import write_stack_file
from socle_devstack.stack import DATABASE, Database

#: ``SOCLE_STATE_DIR`` for a command that must not find a local stack (e.g. one ``make up`` runs in the checkout).
NO_LOCAL_STACK = "/nonexistent/socle-state"


def describe_local_stack(
    state_dir: Path, database: Database, issuer: str, service_urls: dict[str, str], name: str = DATABASE
) -> Path:
    """Write the description of a stack made of these servers, run by this process; returns ``state_dir``.

    ``name``: the database, when not the suite's own (one with the same roles and passwords).
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    secrets = state_dir / "secrets.json"
    secrets.write_text(json.dumps(database.credentials.passwords))
    secrets.chmod(0o600)
    write_stack_file(
        state_dir,
        supervisor_pid=os.getpid(),
        issuer=issuer,
        service_urls=service_urls,
        database_host=database.host,
        database_port=database.port,
        database_name=name,
    )
    return state_dir
