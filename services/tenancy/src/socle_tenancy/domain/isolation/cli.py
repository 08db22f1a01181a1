"""``socle-isolation-report``: run the isolation evidence report, or verify a report's signature.

    socle-isolation-report [run] [--json report.json] [--html report.html] [--sample 4]
                           [--service-url tenancy=http://127.0.0.1:8101 ...]
    socle-isolation-report verify report.json

Reads ``SOCLE_<SERVICE>_DATABASE_URL`` (application roles) of every service and
``SOCLE_TENANCY_REPORT_SIGNING_KEY`` from the environment; for the API probes, the issuer,
the platform client's secret and the services' URLs (``--service-url``, else
``SOCLE_TENANCY_ISOLATION_SERVICE_URLS``). In development, what is absent is taken from the
running ``make up`` stack (``socle_core.local_stack``). Exit codes: 0 no violation /
signature valid, 1 violations found / signature invalid, 2 the report could not run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path

from pydantic import SecretStr

from socle_core.local_stack import LocalStackError, fill_from_local_stack
from socle_core.logging import configure_logging
from socle_tenancy.domain.isolation import signing
from socle_tenancy.domain.isolation.html import render
from socle_tenancy.domain.isolation.services import DEFAULT_SAMPLE, SERVICES, ReportConfig, run_report

#: What the report reads from the environment (and a local stack can give).
SETTINGS = (
    *(f"SOCLE_{s.upper()}_DATABASE_URL" for s in SERVICES),
    "SOCLE_TENANCY_ENVIRONMENT",
    "SOCLE_TENANCY_REPORT_SIGNING_KEY",
    "SOCLE_TENANCY_OIDC_ISSUER",
    "SOCLE_TENANCY_KEYCLOAK_CLIENT_SECRET",
    "SOCLE_TENANCY_ISOLATION_SERVICE_URLS",
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="socle-isolation-report", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command")
    run = commands.add_parser("run", help="run every check and write the signed report")
    run.add_argument("--json", type=Path, help="where to write the JSON report (default: standard output)")
    run.add_argument("--html", type=Path, help="where to write the HTML page")
    run.add_argument("--sample", type=int, default=DEFAULT_SAMPLE, help="tenants of the registry to probe (>= 2)")
    run.add_argument(
        "--service-url", action="append", default=[], metavar="SERVICE=URL", help="a running service, for API probes"
    )
    verify = commands.add_parser("verify", help="check a JSON report's signature")
    verify.add_argument("report", type=Path)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in {"run", "verify", "-h", "--help"}:
        args.insert(0, "run")
    options = _parser().parse_args(args)
    configure_logging("tenancy", "WARNING", json=True)  # the report is the output (on stdout without --json)
    try:
        fill_from_local_stack(SETTINGS if options.command == "run" else ["SOCLE_TENANCY_REPORT_SIGNING_KEY"])
    except LocalStackError as exc:
        print(f"socle-isolation-report : {exc}", file=sys.stderr)
        return 2
    if options.command == "verify":
        return _verify(options.report)
    return _run(options)


def _run(options: argparse.Namespace) -> int:
    if options.sample < 2:
        print("--sample must be at least 2 (probes need a pair of tenants)", file=sys.stderr)
        return 2
    urls = {}
    for item in options.service_url:
        service, sep, url = item.partition("=")
        if not sep or not url.startswith(("http://", "https://")):
            print(f"--service-url {item!r}: expected SERVICE=http(s)://host:port", file=sys.stderr)
            return 2
        urls[service] = url
    if not urls and os.environ.get("SOCLE_TENANCY_ISOLATION_SERVICE_URLS"):
        try:
            urls = dict(json.loads(os.environ["SOCLE_TENANCY_ISOLATION_SERVICE_URLS"]))
        except (ValueError, TypeError):
            print("SOCLE_TENANCY_ISOLATION_SERVICE_URLS : un objet JSON {service: URL} est attendu", file=sys.stderr)
            return 2
    config = ReportConfig.from_environment(sample_size=options.sample, service_urls=urls)
    try:
        report = asyncio.run(run_report(config))
    except (signing.SigningKeyError, ValueError, OSError) as exc:
        print(f"socle-isolation-report: {exc}", file=sys.stderr)
        print(_LOCAL_STACK_HINT, file=sys.stderr)
        return 2
    text = json.dumps(report, indent=2, ensure_ascii=False)
    if options.json:
        options.json.write_text(text + "\n", encoding="utf-8")
    else:
        print(text)
    if options.html:
        options.html.write_text(render(report), encoding="utf-8")
    counts = report["counts"]
    print(
        f"verdict: {report['verdict']} — {counts['violations']} violation(s), {counts['tenant_owned_tables']} "
        f"tenant-owned table(s), {counts['database_pair_probes']} database pair probe(s), "
        f"{counts['api_probes']} API probe(s)",
        file=sys.stderr,
    )
    for violation in report["violations"]:
        print(f"  VIOLATION [{violation['check']}] {violation['subject']}: {violation['detail']}", file=sys.stderr)
    return 1 if report["violations"] else 0


_LOCAL_STACK_HINT = (
    "En développement, lancez d'abord `make up` depuis le dépôt : les réglages absents sont alors "
    "pris de la plateforme locale (.socle/stack.json)."
)


def _verify(path: Path) -> int:
    key = os.environ.get("SOCLE_TENANCY_REPORT_SIGNING_KEY")
    if not key:
        print("définissez SOCLE_TENANCY_REPORT_SIGNING_KEY : la clé qui a signé le rapport", file=sys.stderr)
        print(_LOCAL_STACK_HINT, file=sys.stderr)
        return 2
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        print(f"cannot read {path}: {exc}", file=sys.stderr)
        return 2
    valid, why = signing.verify(report, SecretStr(key))
    print(f"{path}: {why}", file=sys.stderr if not valid else sys.stdout)
    return 0 if valid else 1
