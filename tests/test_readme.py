"""Every command of README.md runs as written, from a fresh clone in a private folder, as root.

The clone (the checkout's files, committed or not) lies in a new 0700 folder, as a checkout
in root's home does: the embedded PostgreSQL's user cannot enter it. ``make up`` starts there
on moved ports (``SOCLE_<NAME>_PORT``, as the README says); every other command then runs in
the clone with no ``SOCLE_*`` variable and no ``uv`` on ``PATH``, as typed in a second
terminal: the tools find the stack's ports and secrets in its ``.socle/`` by themselves.

Which commands: every line of the README's ``bash``/``sh`` code blocks (without its
``# comment``); every code span of a table's ``command`` column; every other code span that
starts with ``make ``; and every ``METHOD /path`` code span of a table's ``tenancy API``
column, called on the tenancy service with an operator's token. ``make up``, ``make down`` and
``make clean`` run at their place in the stack's life (first, then last, in that order); the
others in the README's order. ``EXEMPT`` says why a command cannot run here and what runs it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from socle_devstack.demo import DEMO_USERS
from socle_devstack.postgres import CLUSTERS, remove_cluster
from socle_devstack.scratch import free_service_ports, read_until_ready, scratch_env
from socle_devstack.stack import REPO_ROOT
from tests.support.browser import approve_device_login
from tests.support.processes import processes_mentioning

README = REPO_ROOT / "README.md"
LIFECYCLE = ("make up", "make down", "make clean")
EXEMPT = {
    "make test": "the whole suite, of which this test is a part: CI runs it (.ci/run)",
    "make bench-up": "a benchmark against a time target: it needs the machine to itself (tests/bench/bench_up.py)",
}
#: What some commands must print (or write), beyond exiting 0.
EXPECTED = {
    "make help": "tenants-apply",
    "make tenants-apply FILE=tenants/demo/cc-pays-de-sommieres.json ARGS=--dry-run": "Rien à faire",
    "make tenants-offboard TENANT=commune-30352 EXPORT_DIR=exports/": "rien n'a été supprimé",
    "make tenants-offboard TENANT=commune-30352 EXPORT_DIR=exports/ CONFIRM=1": "preuve pour commune-30352",
    "make isolation-report JSON=report.json HTML=report.html": "verdict : pass (RÉUSSI) — 0 violation(s)",
    "make audit-verify": "intact:",
}
SPAN = re.compile(r"`([^`]+)`")
API_CALL = re.compile(r"^(GET|POST|PUT|PATCH|DELETE) (/\S*)$")


@dataclass(frozen=True)
class Command:
    text: str
    #: "shell", or "tenancy" for a call of the tenancy API.
    kind: str = "shell"


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def readme_commands(text: str) -> list[Command]:
    """The README's commands, in order, each once."""
    found: list[Command] = []
    fence: str | None = None
    header: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("```"):
            fence = line[3:].strip() if fence is None else None
            continue
        if fence is not None:
            command = re.sub(r"\s+#.*$", "", line).strip()
            if fence in {"bash", "sh", "shell"} and command:
                found.append(Command(command))
            continue
        if not line.startswith("|"):
            header = None
            found += [Command(span) for span in SPAN.findall(line) if span.startswith("make ")]
            continue
        cells = _cells(line)
        if header is None:
            header = [cell.lower() for cell in cells]
            continue
        if set("".join(cells)) <= {"-", ":", " "}:
            continue
        for name, cell in zip(header, cells, strict=False):
            spans = SPAN.findall(cell)
            if name == "command":
                found += [Command(span) for span in spans]
            elif name == "tenancy api":
                found += [Command(span, "tenancy") for span in spans]
            else:
                found += [Command(span) for span in spans if span.startswith("make ")]
    return list(dict.fromkeys(found))


def test_the_commands_are_read_from_code_blocks_command_columns_and_make_spans() -> None:
    commands = readme_commands(README.read_text())
    shell = [c.text for c in commands if c.kind == "shell"]
    assert shell[:2] == ["make up", "make test"]
    assert {"make down", "make clean", "make help", "make bench-up", *EXPECTED} <= set(shell)
    assert [c.text for c in commands if c.kind == "tenancy"] == ["POST /v1/isolation/reports", "POST /v1/audit/verify"]
    assert set(EXEMPT) <= set(shell)  # no stale exemption
    assert not [c for c in shell if "proconnect" in c or c.startswith(("SOCLE_", ".socle"))]


def clone_working_tree(into: Path) -> Path:
    """A git clone of the checkout, with its uncommitted changes (tracked or new, not ignored) on top."""
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(REPO_ROOT), str(into)], check=True)
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source, target = REPO_ROOT / name, into / name
        if source.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
        elif not source.exists():
            target.unlink(missing_ok=True)
    return into


def reader_env() -> dict[str, str]:
    """A second terminal of a fresh machine: no ``SOCLE_*`` setting, no uv, no virtual environment.

    What ``uv run`` gave this test process (``VIRTUAL_ENV``, ``UV*``, the checkout's
    ``.venv/bin`` first on ``PATH``) goes, and so does ``~/.local/bin``, where uv lives.
    """
    local_bin = Path.home() / ".local" / "bin"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOCLE_", "UV", "VIRTUAL_ENV"))}
    kept = (p for p in env.get("PATH", "").split(os.pathsep) if not Path(p).is_relative_to(REPO_ROOT))
    env["PATH"] = os.pathsep.join(p for p in kept if Path(p) != local_bin)
    return env


@pytest.fixture
def private_clone() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="socle-readme-"))
    clone = folder / "socle"
    try:
        yield clone_working_tree(clone)
    finally:
        if (clone / ".socle" / "pids.json").exists():
            subprocess.run(["make", "-s", "down"], cwd=clone, env=reader_env(), timeout=180, check=False)
        remove_cluster(clone / ".socle" / "postgres" / "data")
        shutil.rmtree(folder, ignore_errors=True)


def run_shell(command: str, clone: Path) -> str | None:
    """None when the command did what the README says, else what went wrong."""
    result = subprocess.run(
        ["bash", "-c", command], cwd=clone, env=reader_env(), capture_output=True, text=True, timeout=900, check=False
    )
    output = result.stdout + result.stderr
    if result.returncode != 0:
        return f"exit {result.returncode}:\n{output[-3000:]}"
    if command in EXPECTED and EXPECTED[command] not in output:
        return f"no {EXPECTED[command]!r} in:\n{output[-3000:]}"
    return None


def log_in(command: str, clone: Path) -> str | None:
    """``make login`` as the demo EPCI admin: the device code's page approved in a browser, as a person does."""
    secrets = json.loads((clone / ".socle" / "secrets.json").read_text())
    admin = next(u for u in DEMO_USERS if u.role == "epci-admin")
    login = subprocess.Popen(
        ["bash", "-c", command],
        cwd=clone,
        env=reader_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    shown: list[str] = []
    try:
        assert login.stdout is not None
        for line in login.stdout:
            shown.append(line)
            if "/device?user_code=" in line:
                break
        else:
            return f"no verification link in:\n{''.join(shown)[-3000:]}"
        approve_device_login(
            line.strip(), admin.email, secrets["demo_password"], otp_secret=secrets["demo_totp_secret"]
        )
        rest, _ = login.communicate(timeout=120)
    finally:
        if login.poll() is None:
            os.killpg(login.pid, signal.SIGTERM)
            login.wait(timeout=30)
    if login.returncode != 0:
        return f"exit {login.returncode}:\n{(''.join(shown) + rest)[-3000:]}"
    return None


def call_tenancy(command: str, clone: Path) -> str | None:
    method, path = API_CALL.fullmatch(command).groups()  # type: ignore[union-attr]
    stack = json.loads((clone / ".socle" / "stack.json").read_text())
    secret = json.loads((clone / ".socle" / "secrets.json").read_text())["platform_client"]
    token = httpx.post(
        f"{stack['issuer']}/protocol/openid-connect/token",
        data={"grant_type": "client_credentials", "client_id": "socle-platform", "client_secret": secret},
        timeout=30,
    ).json()["access_token"]
    response = httpx.request(
        method, f"{stack['services']['tenancy']}{path}", headers={"Authorization": f"Bearer {token}"}, timeout=600
    )
    if response.status_code >= 300:
        return f"{response.status_code}: {response.text[:2000]}"
    body = response.json()
    if body.get("verdict") not in {"pass", "intact"}:
        return f"verdict {body.get('verdict')!r}: {response.text[:2000]}"
    return None


@pytest.mark.timeout(3000)
def test_every_readme_command_runs_as_written_from_a_clone_in_a_private_folder(private_clone: Path) -> None:
    clone = private_clone
    assert stat.S_IMODE(clone.parent.stat().st_mode) == 0o700
    commands = readme_commands(README.read_text())
    shell = [c.text for c in commands if c.kind == "shell"]
    assert all(step in shell for step in LIFECYCLE)
    ports = free_service_ports()
    moved = {k: v for k, v in scratch_env(clone / ".socle", ports).items() if k.endswith("_PORT")}
    up_env = {**reader_env(), **moved}  # the state: the clone's own .socle/, the default
    up = subprocess.Popen(
        ["bash", "-c", "make up"],
        cwd=clone,
        env=up_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    failures: dict[str, str] = {}
    try:
        banner, ready = read_until_ready(up, timeout=1500)
        assert ready is not None, banner
        assert f"http://localhost:{ports['console']}/" in banner
        data = clone / ".socle" / "postgres" / "data"
        if os.geteuid() == 0:  # the cluster lives where its user can reach it, linked from .socle/
            assert data.is_symlink(), banner
            assert data.resolve().parent.parent == CLUSTERS
        for command in commands:
            if command.text in LIFECYCLE or command.text in EXEMPT:
                continue
            runner = (
                call_tenancy if command.kind == "tenancy" else log_in if command.text == "make login" else run_shell
            )
            failure = runner(command.text, clone)
            if failure is not None:
                failures[command.text] = failure
        report = json.loads((clone / "report.json").read_text())
        assert report["verdict"] == "pass"
        assert "Verdict : RÉUSSI" in (clone / "report.html").read_text()
        cluster = data.resolve().parent
        for step in ("make down", "make clean"):
            failure = run_shell(step, clone)
            if failure is not None:
                failures[step] = failure
        up.wait(timeout=120)
        assert up.returncode == 0
    finally:
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGTERM)
            up.wait(timeout=60)
    assert failures == {}, "\n\n".join(f"$ {c}\n{f}" for c, f in failures.items())
    time.sleep(1)
    assert processes_mentioning(str(clone)) == []
    assert not (clone / ".socle").exists()
    if os.geteuid() == 0:
        assert not cluster.exists()
