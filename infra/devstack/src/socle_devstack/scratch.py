"""A whole stack on free ports and a scratch state folder, beside any running ``make up``.

What the make-up tests and the start-up benchmark run: ``socle-stack up`` as a child process,
its output read until the ready banner, then ``socle-stack down`` whatever happened.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from socle_devstack.processes import free_port
from socle_devstack.stack import REPO_ROOT, SERVICES

COMMAND = [sys.executable, "-m", "socle_devstack.cli"]
#: How long a start may take before it counts as stuck: generous, because test runs share a
#: loaded machine (on a 2-core one running other suites, starts of 200 s were seen); how fast a
#: start is, ``make bench-up`` measures, against its own target.
READY_TIMEOUT = 600.0


def scratch_env(state: Path, ports: dict[str, int], **extra: str) -> dict[str, str]:
    """The environment of a stack in ``state`` on ``ports`` (services) and free ports for the rest.

    No ``SOCLE_*`` variable of the caller's shell is kept, so a developer's settings cannot leak in.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOCLE_")}
    env.update({f"SOCLE_{s.upper()}_PORT": str(p) for s, p in ports.items()})
    env.update(
        {
            "SOCLE_STATE_DIR": str(state),
            "SOCLE_POSTGRES_PORT": str(free_port()),
            "SOCLE_KEYCLOAK_PORT": str(free_port()),
            "SOCLE_KEYCLOAK_MANAGEMENT_PORT": str(free_port()),
            "SOCLE_SMTP_PORT": str(free_port()),
            **extra,
        }
    )
    return env


def free_service_ports() -> dict[str, int]:
    return {service: free_port() for service in SERVICES}


@dataclass
class StartedStack:
    env: dict[str, str]
    #: Everything ``up`` printed until its banner's last line (or its exit, or the timeout).
    banner: str = ""
    #: Seconds from the start to the "Socle is ready" line, None when it never came.
    ready_after: float | None = None
    #: The ``down`` that ended it, once the block is left.
    down: subprocess.CompletedProcess[str] | None = None
    up: subprocess.Popen[str] | None = field(default=None, repr=False)


def read_until_ready(
    up: subprocess.Popen[str], timeout: float = READY_TIMEOUT, on_line: Callable[[float, str], None] | None = None
) -> tuple[str, float | None]:
    """``up``'s output until its banner's last line, and when the ready line came."""
    started = time.monotonic()
    output: list[str] = []
    ready = None
    assert up.stdout is not None
    for line in up.stdout:
        at = time.monotonic() - started
        output.append(line)
        if on_line is not None:
            on_line(at, line)
        if line.startswith("Socle is ready"):
            ready = at
        if line.startswith("Logs:") or at > timeout:
            break
    return "".join(output), ready


@contextmanager
def running_stack(
    env: dict[str, str], timeout: float = READY_TIMEOUT, on_line: Callable[[float, str], None] | None = None
) -> Iterator[StartedStack]:
    """Start ``socle-stack up`` with ``env``, yield once it printed its banner, always stop it."""
    stack = StartedStack(env)
    stack.up = subprocess.Popen(
        [*COMMAND, "up"], env=env, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        stack.banner, stack.ready_after = read_until_ready(stack.up, timeout, on_line)
        yield stack
    finally:
        stack.down = subprocess.run(
            [*COMMAND, "down"], env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=180
        )
        try:
            stack.up.wait(timeout=90)
        except subprocess.TimeoutExpired:
            stack.up.kill()
            stack.up.wait(timeout=10)
