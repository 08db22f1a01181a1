"""Schemathesis against the OpenAPI document of every service, with real tokens of several roles.

Every service is served by uvicorn with its production protocol on the test servers, the
demo EPCI and three of its communes onboarded through the API, then schemathesis's command
line runs against each service's ``/schema/openapi.json``: no answer may be a 5xx, nor have
a status or a content type the document does not list (checks ``not_a_server_error``,
``status_code_conformance``, ``content_type_conformance``).

Bounded by ``FUZZ_PROFILE``:

- ``suite`` (the default, in ``make test``): per service, schemathesis's coverage phase
  (boundary and invalid values of every parameter and field: NUL, huge integers, wrong types,
  missing fields) with one role and its fuzzing phase with another, ``FUZZ_MAX_EXAMPLES``
  (default 5) cases per operation;
- ``full`` (``make fuzz``): the examples, coverage and fuzzing phases with every role,
  ``FUZZ_MAX_EXAMPLES`` (default 50) cases per operation.

``FUZZ_SEED`` fixes the generation (the same cases on every run unless it changes). The runs
of the selected services start together, ``FUZZ_PARALLEL`` (default: one per core) at a time.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from socle_devstack.stack import SERVICES
from socle_tenancy.domain.isolation import signing
from tests.isolation.servers import bearer, onboard_demo, served_services

PROFILE = os.environ.get("FUZZ_PROFILE", "suite")
MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "50" if PROFILE == "full" else "5"))
SEED = os.environ.get("FUZZ_SEED", "20261201")
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance"
#: schemathesis runs at once (``FUZZ_PARALLEL``): by default one per core.
PARALLEL_RUNS = int(os.environ.get("FUZZ_PARALLEL", str(os.cpu_count() or 2)))

#: (role, phases, seconds, the finished command) of one schemathesis run.
Run = tuple[str, str, float, subprocess.CompletedProcess[str]]
#: Realm roles, and whether the token names the test commune.
ROLES: dict[str, tuple[str, bool]] = {
    "operator": ("operator", False),
    "auditor": ("auditor", False),
    "commune-admin": ("commune-admin", True),
    "commune-agent": ("commune-agent", True),
    "device": ("device", True),
    "partner": ("partner", True),
}
#: The suite's bound: (role of the coverage phase, role of the fuzzing phase) per service.
SUITE_PLAN: dict[str, tuple[str, str]] = {
    "tenancy": ("commune-admin", "operator"),
    "identity": ("commune-admin", "operator"),
    "billing": ("operator", "commune-admin"),
    "ingestion": ("device", "commune-agent"),
    "timeseries": ("partner", "commune-agent"),
    "console": ("commune-admin", "auditor"),
}


def runs_of(service: str) -> list[tuple[str, str]]:
    """(role, phases) of each schemathesis run against a service."""
    if PROFILE == "full":
        return [(role, "examples,coverage,fuzzing") for role in ROLES]
    coverage_role, fuzzing_role = SUITE_PLAN[service]
    return [(coverage_role, "coverage"), (fuzzing_role, "fuzzing")]


@pytest.fixture(scope="module")
def platform(database, keycloak, credentials, kc_admin, tmp_path_factory) -> Iterator[dict[str, Any]]:
    """Every service served, the demo communes onboarded, an hour-long token per role."""
    overrides = {
        "tenancy": {
            "report_signing_key": signing.generate_pem(),
            "audit_heads_signing_key": "fuzz-" + uuid.uuid4().hex * 2,
            "audit_heads_dir": str(tmp_path_factory.mktemp("audit-heads")),
        }
    }
    with served_services(database, keycloak, credentials, overrides=overrides) as urls:
        commune = onboard_demo(urls["tenancy"], bearer(kc_admin, ("operator",)))[0]
        tokens = {
            name: bearer(
                kc_admin, (role,), (commune["key"], uuid.UUID(commune["id"])) if tenant_bound else None, lifespan=3600
            )["Authorization"]
            for name, (role, tenant_bound) in ROLES.items()
        }
        yield {"urls": urls, "tokens": tokens}


def schemathesis(url: str, authorization: str, phases: str, workdir: Path) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "run",
        f"{url}/schema/openapi.json",
        "--header",
        f"Authorization: {authorization}",
        "--checks",
        CHECKS,
        "--phases",
        phases,
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        SEED,
        "--no-shrink",
        "--max-redirects",
        "0",
        "--request-timeout",
        "60",
        "--workers",
        "1",
    ]
    return subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=1800, check=False)


@pytest.fixture(scope="module")
def runs(platform, tmp_path_factory, request) -> Iterator[dict[str, list[Future[Run]]]]:
    """Every service's schemathesis runs, started at once and run ``PARALLEL_RUNS`` at a time.

    Each service has its own server process: runs against different services keep every core
    busy, where one run alternates between the generator's and the server's CPU.
    """

    def run(service: str, role: str, phases: str, workdir: Path) -> Run:
        started = time.monotonic()
        result = schemathesis(platform["urls"][service], platform["tokens"][role], phases, workdir)
        return role, phases, time.monotonic() - started, result

    wanted = {item.callspec.params["service"] for item in request.session.items if item.module is request.module}
    # The n-th run of every service, then the next: the runs going at once hit different servers.
    plan = sorted(
        ((index, s, role, phases) for s in SERVICES if s in wanted for index, (role, phases) in enumerate(runs_of(s))),
        key=lambda step: (step[0], SERVICES.index(step[1])),
    )
    with ThreadPoolExecutor(max_workers=PARALLEL_RUNS) as pool:
        futures: dict[str, list[Future[Run]]] = {s: [] for s in SERVICES if s in wanted}
        for _, service, role, phases in plan:
            workdir = tmp_path_factory.mktemp(f"fuzz-{service}")
            futures[service].append(pool.submit(run, service, role, phases, workdir))
        try:
            yield futures
        finally:
            for future in (f for fs in futures.values() for f in fs):
                future.cancel()


@pytest.mark.timeout(7200 if PROFILE == "full" else 900)
@pytest.mark.parametrize("service", SERVICES)
def test_no_server_error_nor_undocumented_answer(runs, service: str) -> None:
    failed, cases = [], 0
    for future in runs[service]:
        role, phases, seconds, run = future.result()
        generated = re.search(r"(\d+) generated", run.stdout)
        cases += int(generated[1]) if generated else 0
        count = generated[0] if generated else "nothing generated"
        print(f"{service} as {role} ({phases}): {count} in {seconds:.0f} s, exit {run.returncode}")
        if run.returncode != 0:
            failed.append(
                f"--- {service} as {role} ({phases}), exit {run.returncode}\n{run.stdout[-6000:]}{run.stderr[-2000:]}"
            )
    if failed:
        pytest.fail("\n".join(failed), pytrace=False)
    assert cases >= 10, f"schemathesis generated only {cases} cases against {service}"
