"""``socle-isolation-report``: run the isolation evidence report, verify one, or print the public key.

    socle-isolation-report [run] [--json report.json] [--html report.html] [--sample 4]
                           [--service-url tenancy=http://127.0.0.1:8101 ...]
    socle-isolation-report verify report.json --public-key report-key.pem
    socle-isolation-report public-key > report-key.pem

``run`` reads ``SOCLE_<SERVICE>_DATABASE_URL`` (application roles) of every service and the
Ed25519 private key ``SOCLE_TENANCY_REPORT_SIGNING_KEY`` from the environment; ``verify``
needs only the public key. Exit codes of ``run``: 0 pass, 1 violations, 3 incomplete (no
violation, but gaps), 2 the report could not run; of ``verify``: 0 valid, 1 invalid, 2 unreadable.
In development, what is absent is taken from the running ``make up`` stack
(``socle_core.local_stack``); the API probes also read the issuer, the platform client's secret
and the services' URLs (``--service-url``, else ``SOCLE_TENANCY_ISOLATION_SERVICE_URLS``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

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

EXIT_CODES = {"pass": 0, "fail": 1, "incomplete": 3}
VERDICTS = {"pass": "RÉUSSI", "fail": "ÉCHEC", "incomplete": "INCOMPLET"}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="socle-isolation-report", description="Rapport de preuve d'isolation des collectivités de Socle."
    )
    commands = parser.add_subparsers(dest="command")
    run = commands.add_parser("run", help="exécuter tous les contrôles et écrire le rapport signé")
    run.add_argument("--json", type=Path, help="où écrire le rapport JSON (par défaut : la sortie standard)")
    run.add_argument("--html", type=Path, help="où écrire la page HTML")
    run.add_argument(
        "--sample", type=int, default=DEFAULT_SAMPLE, help="collectivités du registre à sonder (au moins 2)"
    )
    run.add_argument(
        "--service-url",
        action="append",
        default=[],
        metavar="SERVICE=URL",
        help="un service en marche, pour les sondes d'API",
    )
    verify = commands.add_parser("verify", help="vérifier la signature d'un rapport JSON avec la clé publique")
    verify.add_argument("report", type=Path)
    verify.add_argument("--public-key", type=Path, required=True, help="la clé publique Ed25519 (PEM) de la plateforme")
    commands.add_parser("public-key", help="afficher la clé publique (PEM) de SOCLE_TENANCY_REPORT_SIGNING_KEY")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in {"run", "verify", "public-key", "-h", "--help"}:
        args.insert(0, "run")
    options = _parser().parse_args(args)
    configure_logging("tenancy", "WARNING", json=True)  # the report is the output (on stdout without --json)
    try:
        fill_from_local_stack(SETTINGS if options.command == "run" else ["SOCLE_TENANCY_REPORT_SIGNING_KEY"])
    except LocalStackError as exc:
        print(f"socle-isolation-report : {exc}", file=sys.stderr)
        return 2
    if options.command == "verify":
        return _verify(options.report, options.public_key)
    if options.command == "public-key":
        return _public_key()
    return _run(options)


def _error(message: str) -> int:
    print(f"socle-isolation-report : {message}", file=sys.stderr)
    return 2


def _run(options: argparse.Namespace) -> int:
    if options.sample < 2:
        return _error("--sample doit valoir au moins 2 (les sondes demandent une paire de collectivités)")
    urls = {}
    for item in options.service_url:
        service, sep, url = item.partition("=")
        if not sep or not url.startswith(("http://", "https://")):
            return _error(f"--service-url {item!r} : attendu SERVICE=http(s)://hôte:port")
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
        return _error(f"{exc}\n{_LOCAL_STACK_HINT}")
    text = json.dumps(report, indent=2, ensure_ascii=False)
    if options.json:
        options.json.write_text(text + "\n", encoding="utf-8")
    else:
        print(text)
    if options.html:
        options.html.write_text(render(report), encoding="utf-8")
    _summary(report)
    return EXIT_CODES[report["verdict"]]


def _summary(report: dict[str, Any]) -> None:
    counts = report["counts"]
    print(
        f"verdict : {report['verdict']} ({VERDICTS[report['verdict']]}) — {counts['violations']} violation(s), "
        f"{counts['gaps']} lacune(s), {counts['tenant_owned_tables']} table(s) de collectivité, "
        f"{counts['database_pair_probes']} sonde(s) de base de données par paire, {counts['api_probes']} sonde(s) "
        f"d'API, {counts['api_probes_skipped']} non faite(s)",
        file=sys.stderr,
    )
    for violation in report["violations"]:
        who = ""
        if violation.get("prober"):
            who = f" (sondeur {violation['prober']['key']}, cible {violation['target']['key']})"
        print(
            f"  VIOLATION [{violation['check']}] {violation['subject']} : {violation['detail']}{who}", file=sys.stderr
        )
        if violation.get("request"):
            print(f"    requête : {violation['request']}", file=sys.stderr)
        if violation.get("evidence"):
            evidence = json.dumps(violation["evidence"], ensure_ascii=False)
            print(f"    preuve : {evidence}", file=sys.stderr)
    for gap in report["gaps"]:
        print(f"  LACUNE [{gap['check']}] {gap['subject']} : {gap['reason']}", file=sys.stderr)


_LOCAL_STACK_HINT = (
    "En développement, lancez d'abord `make up` depuis le dépôt : les réglages absents sont alors "
    "pris de la plateforme locale (.socle/stack.json)."
)


def _public_key() -> int:
    key = os.environ.get("SOCLE_TENANCY_REPORT_SIGNING_KEY")
    environment = os.environ.get("SOCLE_TENANCY_ENVIRONMENT", "development")
    try:
        private = signing.check_key(SecretStr(key) if key else None, environment)
    except signing.SigningKeyError as exc:
        return _error(str(exc))
    print(signing.public_key_pem(private), end="")
    print(f"identifiant de clé : {signing.key_id(private)}", file=sys.stderr)
    return 0


def _verify(path: Path, public_key: Path) -> int:
    try:
        public = signing.public_key_from_pem(public_key.read_text(encoding="utf-8"))
    except OSError as exc:
        return _error(f"impossible de lire la clé publique {public_key} : {exc}")
    except signing.SigningKeyError as exc:
        return _error(f"{public_key} : {exc}")
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return _error(f"impossible de lire {path} : {exc}")
    valid, why = signing.verify(report, public)
    print(f"{path} : {why}", file=sys.stdout if valid else sys.stderr)
    return 0 if valid else 1
