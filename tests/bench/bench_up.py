"""How long `make up` takes to reach ready on this machine, against the 90 s target.

Run: ``uv run python tests/bench/bench_up.py`` (or ``make bench-up``). Downloads must be cached
(the Keycloak distribution, the provider jar, the Python packages): run ``make up`` or
``make test`` once before. Everything runs on free ports in scratch folders, so it works
beside a running ``make up``.

Three measurements in the same run:

- **baseline**: the bare Keycloak distribution started in dev mode from a fresh copy (no realm
  import, no provider), until its master realm answers: the part of a start no Socle code can
  shorten;
- **cold**: ``socle-stack up`` on an empty state folder (new database cluster, new Keycloak
  instance, realm import, migrations, services, demo EPCI), until its banner says ready;
- **warm**: ``socle-stack up`` again on the state the cold run left (what a developer sees
  each morning).

It prints each phase of the cold and warm starts (time of each ``[socle]`` line), the totals,
their ratio to the baseline, and exits 1 when a start exceeds the target.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

from socle_devstack.keycloak import ensure_distribution, require_java
from socle_devstack.processes import free_port, http_ok, spawn, stop_group, wait_for
from socle_devstack.scratch import free_service_ports, running_stack, scratch_env

TARGET_SECONDS = 90.0


def baseline_keycloak(scratch: Path) -> float:
    """Seconds for the bare Keycloak distribution to answer, from a fresh copy."""
    require_java()
    home = scratch / "keycloak"
    shutil.copytree(ensure_distribution(), home, symlinks=True)
    port, management = free_port(), free_port()
    started = time.monotonic()
    process = spawn(
        [
            str(home / "bin" / "kc.sh"),
            "start-dev",
            f"--http-port={port}",
            "--http-host=127.0.0.1",
            f"--http-management-port={management}",
        ],
        scratch / "keycloak.log",
        # The same JVM options as the stack's Keycloak, so only Socle's own work differs.
        env={"JAVA_OPTS_APPEND": "-Xms256m -Xmx768m -XX:TieredStopAtLevel=1"},
    )
    try:
        wait_for(
            http_ok(f"http://127.0.0.1:{port}/realms/master/.well-known/openid-configuration"),
            300,
            "bare Keycloak",
            scratch / "keycloak.log",
            process,
        )
        return time.monotonic() - started
    finally:
        stop_group(process.pid, timeout=30, process=process)


def stack_start(state: Path, label: str) -> tuple[float, list[tuple[float, str]]]:
    """Seconds from ``socle-stack up`` to its ready banner, with the time of each of its lines."""
    phases: list[tuple[float, str]] = []

    def phase(at: float, line: str) -> None:
        if line.startswith("[socle]"):
            phases.append((at, line.removeprefix("[socle] ").strip()))
            print(f"  {label} {at:6.1f} s  {phases[-1][1]}", flush=True)

    with running_stack(scratch_env(state, free_service_ports()), timeout=600, on_line=phase) as stack:
        pass
    if stack.ready_after is None:
        raise SystemExit(f"the {label} start never reached ready:\n{stack.banner}\nlogs: {state / 'logs'}")
    return stack.ready_after, phases


def main() -> int:
    scratch = Path(tempfile.mkdtemp(prefix="socle-bench-up-"))
    scratch.chmod(0o755)  # the embedded PostgreSQL runs as its own user when run as root
    try:
        print("baseline: bare Keycloak (fresh copy of the distribution, dev mode)...", flush=True)
        baseline = baseline_keycloak(scratch / "baseline")
        print(f"  baseline {baseline:6.1f} s", flush=True)
        state = scratch / "state"
        state.mkdir()
        print("cold: socle-stack up on an empty state folder", flush=True)
        cold, _ = stack_start(state, "cold")
        print("warm: socle-stack up again on the state it left", flush=True)
        warm, phases = stack_start(state, "warm")
        # The demo EPCI was applied by the cold start and kept: the warm start finds nothing to do.
        if not any("already applied: nothing to do" in line for _, line in phases):
            raise SystemExit("the warm start did not find the demo EPCI the cold start applied")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print()
    print(f"{'start':<10}{'seconds':>9}{'x baseline':>12}{'target':>9}  verdict")
    worst = 0.0
    for name, seconds in (("baseline", baseline), ("cold", cold), ("warm", warm)):
        verdict = "" if name == "baseline" else ("ok" if seconds <= TARGET_SECONDS else "OVER TARGET")
        target = "" if name == "baseline" else f"{TARGET_SECONDS:.0f}"
        print(f"{name:<10}{seconds:>9.1f}{seconds / baseline:>12.2f}{target:>9}  {verdict}")
        if name != "baseline":
            worst = max(worst, seconds)
    print(
        f"bench-up: cold_s={cold:.1f} warm_s={warm:.1f} baseline_s={baseline:.1f} "
        f"cold_ratio={cold / baseline:.2f} target_s={TARGET_SECONDS:.0f}"
    )
    return 0 if worst <= TARGET_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main())
