"""``socle-tenants``: tenants as code (``apply``), offboarding (``offboard``) and its way back (``import``).

Exit status: 0 done (or nothing to do), 1 the platform refused or failed (the message says
which call and why; what was applied before stays applied and a re-run resumes), 2 the
input is invalid (nothing was changed).

By default the commands act as the person who ran ``socle-login`` (their stored session, so
the audit log names them). ``--client-credentials`` (or ``SOCLE_TENANTS_AUTH=client-credentials``)
acts as the confidential platform client instead, for automation; its secret is read from
``SOCLE_TENANTS_CLIENT_SECRET`` only, never from the command line (it would land in shell
history and ``ps``). In development, settings absent
from the environment are taken from the running ``make up`` stack (``socle_core.local_stack``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from socle_core import login
from socle_core.local_stack import LocalStackError, fill_from_local_stack
from socle_tenancy.domain.declarations import services
from socle_tenancy.domain.declarations.api import (
    DEFAULT_API,
    DEFAULT_CLIENT_ID,
    ApiError,
    ClientCredentials,
    Credentials,
    PersonSession,
    TenancyApi,
)
from socle_tenancy.domain.reference import default_catalogue

SECRET_ENV = "SOCLE_TENANTS_CLIENT_SECRET"
ISSUER_ENV = "SOCLE_TENANTS_ISSUER"
API_ENV = "SOCLE_TENANTS_API"
AUTH_ENV = "SOCLE_TENANTS_AUTH"


class UsageError(Exception):
    """Missing configuration: exit 2 with the message."""


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--api", default=os.environ.get(API_ENV, DEFAULT_API), help=f"tenancy API URL (${API_ENV})")
    parser.add_argument(
        "--issuer",
        default=os.environ.get(ISSUER_ENV, login.DEFAULT_ISSUER),
        help=f"issuer URL of the Keycloak realm (${ISSUER_ENV}, default {login.DEFAULT_ISSUER}: the realm of make up)",
    )
    parser.add_argument(
        "--client-credentials",
        action="store_true",
        default=os.environ.get(AUTH_ENV) == "client-credentials",
        help=f"act as a confidential client (automation), not as the person of socle-login (${AUTH_ENV})",
    )
    parser.add_argument(
        "--client-id",
        default=DEFAULT_CLIENT_ID,
        help=f"with --client-credentials: the confidential client (secret in ${SECRET_ENV})",
    )


def connect(args: argparse.Namespace) -> TenancyApi:
    if not args.issuer:
        raise UsageError(
            f"indiquez l'URL de l'émetteur du realm avec --issuer ou {ISSUER_ENV} "
            "(en développement, lancez d'abord `make up` : elle est alors trouvée d'elle-même)"
        )
    if os.environ.get(AUTH_ENV, "session") not in ("session", "client-credentials"):
        raise UsageError(f"{AUTH_ENV} vaut 'session' (par défaut : la personne de socle-login) ou 'client-credentials'")
    credentials: Credentials = PersonSession()
    if args.client_credentials:
        secret = os.environ.get(SECRET_ENV)
        if not secret:
            raise UsageError(
                f"définissez {SECRET_ENV} (le secret du client {args.client_id!r}) "
                "(en développement, lancez d'abord `make up` : il est alors trouvé de lui-même)"
            )
        credentials = ClientCredentials(secret, args.client_id)
    return TenancyApi(args.api, args.issuer, credentials)


class Output:
    """Readable lines, or one JSON document on stdout with progress on stderr."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json

    def line(self, text: str = "") -> None:
        print(text, file=sys.stderr if self.as_json else sys.stdout, flush=True)

    def document(self, value: dict[str, Any]) -> None:
        if self.as_json:
            print(json.dumps(value, indent=2, ensure_ascii=False, default=str), flush=True)


async def _apply(args: argparse.Namespace, out: Output) -> int:
    path = Path(args.file)
    try:
        declaration = services.load_declaration(path, default_catalogue())
    except services.InvalidDeclaration as exc:
        out.line(f"{path} est invalide ({len(exc.issues)} problème(s)) ; rien n'a été modifié :")
        for issue in exc.issues:
            out.line(f"  {issue}")
        out.document(
            {
                "file": str(path),
                "valid": False,
                "errors": [{"pointer": i.pointer, "message": i.message} for i in exc.issues],
            }
        )
        return 2
    wanted = services.desired_tenants(declaration)
    out.line(f"{path} : EPCI {declaration['epci']['siren']} et {len(wanted) - 1} commune(s), valide.")
    async with connect(args) as api:
        plan = await services.plan(api, declaration)
        report: dict[str, Any] = {"file": str(path), "valid": True, "dry_run": args.dry_run, **plan.as_json()}
        if not plan.changes:
            out.line("Rien à faire : la plateforme correspond à la déclaration.")
        else:
            out.line(f"{len(plan.changes)} modification(s) :")
            for change in plan.changes:
                out.line(f"  {'+' if change.action in ('register_epci', 'onboard') else '~'} {change.summary}")
        for note in plan.notes:
            out.line(f"  remarque : {note}")
        if args.dry_run or not plan.changes:
            if args.dry_run and plan.changes:
                out.line("Simulation : rien n'a été modifié.")
            report["results"] = []
            out.document(report)
            return 0
        report["results"] = await services.apply(api, plan.changes, out.line)
        out.line(f"{len(plan.changes)} modification(s) appliquée(s).")
        out.document(report)
    return 0


def _run(coroutine: Any, out: Output) -> int:
    try:
        return int(asyncio.run(coroutine))
    except UsageError as exc:
        out.line(f"erreur : {exc}")
        return 2
    except ApiError as exc:
        out.line(f"erreur : {exc}")
        for error in exc.problem.get("errors", []) if isinstance(exc.problem.get("errors"), list) else []:
            out.line(f"  {error.get('field', '')} : {error.get('detail', error)}")
        out.document({"error": str(exc), "status": exc.status, "problem": exc.problem})
        return 1


def main(argv: list[str] | None = None) -> int:
    from socle_tenancy.domain.offboarding.bundle import SERVICES
    from socle_tenancy.domain.offboarding.cli import add_import_command, add_offboard_command

    argv = sys.argv[1:] if argv is None else argv
    wanted = [API_ENV, ISSUER_ENV]
    if "--client-credentials" in argv or os.environ.get(AUTH_ENV) == "client-credentials":
        wanted.append(SECRET_ENV)
    if argv[:1] == ["offboard"]:
        wanted += [f"SOCLE_{s.upper()}_DATABASE_URL" for s in SERVICES]
    try:
        fill_from_local_stack(wanted)  # before the parser: its defaults read the environment
    except LocalStackError as exc:
        print(f"erreur : {exc}", file=sys.stderr)
        return 2
    parser = argparse.ArgumentParser(prog="socle-tenants", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    apply = commands.add_parser("apply", help="create or update what a tenant declaration says (idempotent)")
    apply.add_argument("file", help="the declaration, e.g. tenants/demo/cc-pays-de-sommieres.json")
    apply.add_argument("--dry-run", action="store_true", help="show the difference, change nothing")
    apply.add_argument("--output", choices=["text", "json"], default="text", help="json: one document on stdout")
    add_connection_arguments(apply)
    add_offboard_command(commands)
    add_import_command(commands)
    args = parser.parse_args(argv)
    out = Output(args.output == "json")
    if args.command == "apply":
        return _run(_apply(args, out), out)
    return _run(args.handler(args, out), out)


if __name__ == "__main__":
    sys.exit(main())
