"""Small process helpers: free ports, waiting for readiness, stopping process groups."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def wait_for(
    predicate: Callable[[], bool],
    timeout: float,
    what: str,
    log_file: Path | None = None,
    process: subprocess.Popen[bytes] | None = None,
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what} exited with code {process.returncode}{log_tail(log_file)}")
        if predicate():
            return
        time.sleep(0.3)
    raise TimeoutError(f"{what} not ready after {timeout:.0f}s{log_tail(log_file)}")


def http_ok(url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return httpx.get(url, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    return check


def log_tail(log_file: Path | None, lines: int = 25) -> str:
    if log_file is None or not log_file.exists():
        return ""
    text = log_file.read_text(errors="replace").splitlines()[-lines:]
    return f"; last lines of {log_file}:\n" + "\n".join(text)


def private_file(path: Path, content: str | None = None, owner: str | None = None) -> None:
    """``path`` with mode 0600 from its creation (written with ``content`` if given), owned by ``owner``."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if content is not None else os.O_APPEND)
    descriptor = os.open(path, flags, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        if content is not None:
            handle.write(content)
    os.chmod(path, 0o600)  # a file that existed before keeps its mode otherwise
    if owner:
        shutil.chown(path, owner)


def spawn(
    cmd: list[str], log_file: Path, env: dict[str, str] | None = None, cwd: Path | None = None, inherit: bool = True
) -> subprocess.Popen[bytes]:
    """Start a process in its own process group, output appended to its log file.

    ``inherit=False`` gives the process exactly ``env`` (services must not see variables of
    their prefix that are not settings, e.g. ``SOCLE_TENANCY_PORT`` meant for ``make up``).
    """
    log_file.parent.mkdir(parents=True, exist_ok=True)
    private_file(log_file)
    with log_file.open("ab") as log:
        return subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})} if inherit else dict(env or {}),
            cwd=cwd,
            start_new_session=True,
        )


def stop_group(pid: int, timeout: float = 20, process: subprocess.Popen[bytes] | None = None) -> None:
    """SIGTERM the process group, then SIGKILL what is left after ``timeout``.

    For a child of ours, pass its ``Popen``: it is reaped as it exits (an unreaped zombie
    would otherwise keep its group alive until the timeout).
    """
    if process is not None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            process.wait(5)
        return
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
