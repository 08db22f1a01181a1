"""The tenancy app served by uvicorn on a free port, for commands that talk HTTP to it."""

from __future__ import annotations

import os
import subprocess
import sys

from socle_devstack.stack import REPO_ROOT
from tests.support.apps import served
from tests.support.local_stack import NO_LOCAL_STACK

#: The tenancy app served over HTTP (the shared helper, under the name these tests use).
serve = served


def socle_tenants(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The real command, in its own process, with only the environment given (plus PATH).

    A stack ``make up`` runs in the checkout is not found unless ``env`` names one (``SOCLE_STATE_DIR``).
    """
    return subprocess.run(
        [sys.executable, "-m", "socle_tenancy.domain.declarations", *args],
        env={"PATH": os.environ.get("PATH", ""), "SOCLE_STATE_DIR": NO_LOCAL_STACK, **env},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
