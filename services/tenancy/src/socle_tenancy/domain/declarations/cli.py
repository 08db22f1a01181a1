"""``socle-tenants``: tenants as code (``apply``), offboarding (``offboard``) and its way back (``import``).

Exit status: 0 done (or nothing to do), 1 the platform refused or failed (the message says
which call and why; what was applied before stays applied and a re-run resumes), 2 the
input is invalid (nothing was changed).

The client secret is read from ``SOCLE_TENANTS_CLIENT_SECRET`` only, never from the
command line (it would land in shell history and ``ps``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from socle_tenancy.domain.declarations import services
from socle_tenancy.domain.declarations.api import DEFAULT_API, DEFAULT_CLIENT_ID, ApiError, TenancyApi
from socle_tenancy.domain.reference import default_catalogue

SECRET_ENV = "SOCLE_TENANTS_CLIENT_SECRET"
ISSUER_ENV = "SOCLE_TENANTS_ISSUER"
API_ENV = "SOCLE_TENANTS_API"


class UsageError(Exception):
    """Missing configuration: exit 2 with the message."""


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--api", default=os.environ.get(API_ENV, DEFAULT_API), help=f"tenancy API URL (${API_ENV})")
    parser.add_argument(
        "--issuer", default=os.environ.get(ISSUER_ENV), help=f"issuer URL of the Keycloak realm (${ISSUER_ENV})"
    )
    parser.add_argument(
        "--client-id", default=DEFAULT_CLIENT_ID, help="confidential client (secret in $" + SECRET_ENV + ")"
    )


def connect(args: argparse.Namespace) -> TenancyApi:
    secret = os.environ.get(SECRET_ENV)
    if not args.issuer:
        raise UsageError(f"give the realm's issuer URL with --issuer or {ISSUER_ENV}")
    if not secret:
        raise UsageError(f"set {SECRET_ENV} to the secret of the {args.client_id!r} client")
    return TenancyApi(args.api, args.issuer, secret, client_id=args.client_id)


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
        out.line(f"{path} is invalid ({len(exc.issues)} problem(s)); nothing was changed:")
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
    out.line(f"{path}: EPCI {declaration['epci']['siren']} and {len(wanted) - 1} commune(s), valid.")
    async with connect(args) as api:
        plan = await services.plan(api, declaration)
        report: dict[str, Any] = {"file": str(path), "valid": True, "dry_run": args.dry_run, **plan.as_json()}
        if not plan.changes:
            out.line("Nothing to do: the platform matches the declaration.")
        else:
            out.line(f"{len(plan.changes)} change(s):")
            for change in plan.changes:
                out.line(f"  {'+' if change.action in ('register_epci', 'onboard') else '~'} {change.summary}")
        for note in plan.notes:
            out.line(f"  note: {note}")
        if args.dry_run or not plan.changes:
            if args.dry_run and plan.changes:
                out.line("Dry run: nothing was changed.")
            report["results"] = []
            out.document(report)
            return 0
        report["results"] = await services.apply(api, plan.changes, out.line)
        out.line(f"Applied {len(plan.changes)} change(s).")
        out.document(report)
    return 0


def _run(coroutine: Any, out: Output) -> int:
    try:
        return int(asyncio.run(coroutine))
    except UsageError as exc:
        out.line(f"error: {exc}")
        return 2
    except ApiError as exc:
        out.line(f"error: {exc}")
        for error in exc.problem.get("errors", []) if isinstance(exc.problem.get("errors"), list) else []:
            out.line(f"  {error.get('field', '')}: {error.get('detail', error)}")
        out.document({"error": str(exc), "status": exc.status, "problem": exc.problem})
        return 1


def main(argv: list[str] | None = None) -> int:
    from socle_tenancy.domain.offboarding.cli import add_import_command, add_offboard_command

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
