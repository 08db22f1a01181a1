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
import os
import sys
from pathlib import Path
from typing import Any

from socle_core.local_stack import LocalStackError, fill_from_local_stack
from socle_reference import default_catalogue
from socle_tenancy.command import (
    API_ENV,
    AUTH_ENV,
    ISSUER_ENV,
    SECRET_ENV,
    Output,
    add_connection_arguments,
    connect,
    run,
)
from socle_tenancy.domain.declarations import services
from socle_tenancy.domain.offboarding.bundle import SERVICES
from socle_tenancy.domain.offboarding.cli import add_import_command, add_offboard_command


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


def main(argv: list[str] | None = None) -> int:
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
        return run(_apply(args, out), out)
    return run(args.handler(args, out), out)


if __name__ == "__main__":
    sys.exit(main())
