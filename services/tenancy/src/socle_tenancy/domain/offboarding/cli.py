"""``socle-tenants offboard TENANT --export-dir DIR [--confirm]`` and ``socle-tenants import BUNDLE``.

Offboarding without ``--confirm``: a rehearsal. The bundle is written and verified; nothing
changes. With ``--confirm``: the tenant moves to ``offboarding`` (its organization disabled),
the bundle is written and verified (or, on a re-run, the verified bundle of the interrupted
run is reused), the tenant's rows are deleted in every service, a fresh count proves none
remain, then the API deletes its Keycloak organization and marks it ``deleted``. Each run
writes a new bundle folder, ``DIR/<key>-<UTC time>/`` (0700, files 0600): none is ever
overwritten.

Import is the way back, into this platform or another EPCI's: the bundle's checksums are
verified (and its ``bundle_sha256`` when given), the registry row comes back (``importing``),
then the audit chain and every table's rows, then the organization and its members (new
accounts without password, invited by e-mail); the commune is ``active`` again. A commune
that exists on the platform is never replaced. Every step is safe to repeat: after a crash,
run the same command again.
"""

from __future__ import annotations

import argparse
import json
import os
import uuid
from pathlib import Path
from typing import Any

from socle_tenancy.command import Output, UsageError, add_connection_arguments, connect
from socle_tenancy.domain.declarations.api import ApiError, TenancyApi
from socle_tenancy.domain.offboarding import bundle


def add_offboard_command(commands: Any) -> None:
    offboard = commands.add_parser(
        "offboard", help="export a tenant's full bundle, then (with --confirm) delete its data and organization"
    )
    offboard.add_argument("tenant", help="the tenant: its id, key (commune-30321) or INSEE code")
    offboard.add_argument(
        "--export-dir", required=True, type=Path, help="the bundle goes to a new folder DIR/<tenant key>-<UTC time>/"
    )
    offboard.add_argument("--confirm", action="store_true", help="really delete, once the export is verified")
    offboard.add_argument("--reason", default="offboarding requested by the EPCI", help="recorded on the tenant")
    offboard.add_argument("--output", choices=["text", "json"], default="text", help="json: one document on stdout")
    add_connection_arguments(offboard)
    offboard.set_defaults(handler=offboard_tenant)


def add_import_command(commands: Any) -> None:
    restore = commands.add_parser(
        "import", help="restore a commune from its offboarding bundle into this platform (checksums verified)"
    )
    restore.add_argument("bundle", type=Path, help="the bundle folder, e.g. exports/commune-30181-20261201T093000Z")
    restore.add_argument(
        "--bundle-sha256", help="the bundle_sha256 of the offboarding proof: the bundle must be that one"
    )
    restore.add_argument("--output", choices=["text", "json"], default="text", help="json: one document on stdout")
    add_connection_arguments(restore)
    restore.set_defaults(handler=import_tenant)


def _database_urls() -> dict[str, str]:
    try:
        return bundle.database_urls(os.environ)
    except bundle.BundleError as exc:
        raise UsageError(str(exc)) from exc


def _resumable(export_dir: Path, tenant: dict[str, Any]) -> Path | None:
    """The newest bundle of an interrupted confirmed run: taken while the tenant was offboarding."""
    if tenant["status"] != "offboarding":
        return None
    for candidate in reversed(bundle.bundles_of(export_dir, tenant)):
        manifest = json.loads((candidate / "manifest.json").read_text(encoding="utf-8"))
        if manifest.get("status_at_export") == "offboarding":
            return candidate
    return None


async def _bundle(
    api: TenancyApi, tenant: dict[str, Any], urls: dict[str, str], export_dir: Path, out: Output
) -> tuple[Path, dict[str, Any]]:
    """The verified bundle: the interrupted run's if it was taken during offboarding, else a new one."""
    previous = _resumable(export_dir, tenant)
    if previous is not None:
        manifest = bundle.verify_bundle(previous)
        out.line(f"reprise du lot vérifié exporté le {manifest['exported_at']} (un passage précédent s'est arrêté)")
        return previous, manifest
    bundle.private_dir(export_dir)
    bundle_dir = export_dir / bundle.bundle_name(tenant["key"])
    out.line(f"export de {tenant['key']} vers {bundle_dir}")
    registry = await api.get(f"/v1/tenants/{tenant['id']}")
    identity = await api.get(f"/v1/tenants/{tenant['id']}/offboarding/identity")
    manifest = await bundle.export_bundle(tenant, registry, identity, urls, bundle_dir, lambda m: out.line(f"  {m}"))
    return bundle_dir, manifest


async def offboard_tenant(args: argparse.Namespace, out: Output) -> int:
    urls = _database_urls()
    report: dict[str, Any] = {"confirm": args.confirm}
    export_dir = Path(args.export_dir)
    async with connect(args) as api:
        tenant = (await api.get(f"/v1/tenants/{args.tenant}"))["tenant"]
        tenant_id = uuid.UUID(tenant["id"])
        report["tenant"] = {k: tenant[k] for k in ("id", "key", "name")}
        if tenant["status"] != "deleted":
            if args.confirm and tenant["status"] != "offboarding":
                tenant = await api.post(f"/v1/tenants/{tenant_id}/offboarding", {"reason": args.reason})
                out.line(f"{tenant['key']} est maintenant en offboarding : son organisation Keycloak est désactivée")
            try:
                bundle_dir, manifest = await _bundle(api, tenant, urls, export_dir, out)
            except bundle.BundleError as exc:
                out.line(f"erreur : {exc}")
                out.document({**report, "error": str(exc)})
                return 1
            report["bundle"] = {"path": str(bundle_dir), "bundle_sha256": manifest["bundle_sha256"]}
            out.line(f"lot vérifié : {len(manifest['files'])} fichier(s), sha256 {manifest['bundle_sha256']}")
            for entry in manifest["files"]:
                out.line(f"  {entry['path']:<40} {entry['rows']:>8} ligne(s)  {entry['sha256'][:16]}…")
            if not args.confirm:
                out.line(
                    "rien n'a été supprimé : relancez avec --confirm pour supprimer les données de la collectivité"
                )
                out.document(report)
                return 0
            try:
                report["deleted"] = await bundle.delete_rows(urls, tenant_id, manifest, lambda m: out.line(f"  {m}"))
            except bundle.BundleError as exc:
                out.line(f"erreur : {exc}")
                out.document({**report, "error": str(exc)})
                return 1
        else:
            out.line(f"{tenant['key']} est déjà supprimée : vérification qu'il ne reste rien")
        proof = await bundle.remaining_rows(urls, tenant_id)
        left = {table: p["rows"] for table, p in proof.items() if p["rows"] and not p["retained"]}
        if left:
            out.line(f"erreur : des lignes restent après la suppression : {left} ; relancez la commande")
            out.document({**report, "proof": proof})
            return 1
        if tenant["status"] != "deleted":
            completion = await api.post(
                f"/v1/tenants/{tenant_id}/offboarding/completion",
                {"reason": args.reason, "bundle_sha256": report["bundle"]["bundle_sha256"]},
            )
            tenant = completion["tenant"]
        identity = await api.get(f"/v1/tenants/{tenant_id}/offboarding/identity")
        report["proof"] = {
            "tables": proof,
            "keycloak_organization": "absent" if identity["organization"] is None else identity["organization"]["id"],
            "tenant_status": tenant["status"],
        }
        out.line(f"preuve pour {tenant['key']} (comptée dans de nouvelles transactions après la suppression) :")
        for table, entry in proof.items():
            kept = "  (conservées : durée légale de conservation du journal d'audit)" if entry["retained"] else ""
            out.line(f"  {table:<40} {entry['rows']:>8} ligne(s) restante(s){kept}")
        out.line(f"  {'organisation Keycloak':<40} {report['proof']['keycloak_organization']}")
        out.line(f"  {'statut de la collectivité':<40} {tenant['status']}")
        _write_proof(export_dir, tenant["key"], report, out)
        out.document(report)
        return 0 if identity["organization"] is None else 1


def _write_proof(export_dir: Path, key: str, report: dict[str, Any], out: Output) -> None:
    """The proof beside the bundles, a file of its own: an earlier proof is never overwritten."""
    if not export_dir.is_dir():
        return
    proof_file = export_dir / f"{bundle.bundle_name(key)}.proof.json"
    try:
        bundle.write_json(proof_file, report)
    except bundle.BundleError as exc:
        out.line(f"remarque : {exc}")
        return
    out.line(f"preuve écrite dans {proof_file}")


async def import_tenant(args: argparse.Namespace, out: Output) -> int:
    urls = _database_urls()
    bundle_dir = Path(args.bundle)
    report: dict[str, Any] = {"bundle": str(bundle_dir)}
    try:
        manifest = bundle.verify_bundle(bundle_dir, args.bundle_sha256)
    except bundle.BundleError as exc:
        out.line(f"erreur : lot refusé, rien n'a été importé : {exc}")
        out.document({**report, "error": str(exc)})
        return 1
    report["bundle_sha256"] = manifest["bundle_sha256"]
    out.line(f"lot vérifié : {len(manifest['files'])} fichier(s), sha256 {manifest['bundle_sha256']}")
    registry = json.loads((bundle_dir / "registry" / "tenant.json").read_text(encoding="utf-8"))["tenant"]
    identity = json.loads((bundle_dir / "keycloak" / "organization.json").read_text(encoding="utf-8"))
    wanted = {
        k: registry.get(k)
        for k in (
            "id",
            "kind",
            "key",
            "name",
            "siren",
            "insee_code",
            "population",
            "population_year",
            "population_reference",
            "email_domains",
        )
    }
    tenant_id = uuid.UUID(str(wanted["id"]))
    audit = next((f["rows"] for f in manifest["files"] if f.get("table") == f"tenancy.{bundle.AUDIT_TABLE}"), 0)
    async with connect(args) as api:
        try:
            started = await api.post(
                "/v1/tenants/imports", {"bundle_sha256": manifest["bundle_sha256"], "tenant": wanted}
            )
        except ApiError as exc:
            out.line(f"erreur : {exc}")
            out.document({**report, "error": str(exc), "status": exc.status, "problem": exc.problem})
            return 1
        tenant = started["tenant"]
        report["tenant"] = {k: tenant[k] for k in ("id", "key", "name")}
        if tenant["status"] == "active":
            out.line(f"{tenant['key']} a déjà été importée depuis ce lot : rien à faire")
        else:
            verb = "reprise de l'import de" if not started["created"] else "import de"
            out.line(f"{verb} {tenant['key']} ({tenant['name']}) sous l'EPCI de cette plateforme")
        try:
            report["rows"] = await bundle.restore_rows(
                urls, tenant_id, manifest, bundle_dir, lambda m: out.line(f"  {m}")
            )
        except bundle.BundleError as exc:
            out.line(f"erreur : {exc}")
            out.document({**report, "error": str(exc)})
            return 1
        completion = await api.post(
            f"/v1/tenants/{tenant_id}/import/completion",
            {
                "bundle_sha256": manifest["bundle_sha256"],
                "audit_entries": audit,
                "organization": identity.get("organization"),
                "members": identity.get("members", []),
            },
        )
        verdict = await api.post("/v1/audit/verify", {"tenant": str(tenant_id)})
    report |= {
        "tenant_status": completion["tenant"]["status"],
        "organization_id": completion["organization_id"],
        "members": completion["members"],
        "skipped_members": completion["skipped_members"],
        "audit_chain": verdict,
    }
    out.line(f"organisation Keycloak {completion['organization_id']}, {len(completion['members'])} membre(s) :")
    for member in completion["members"]:
        how = "compte créé, invitation envoyée" if member["created"] else "compte existant"
        if member["invitation_error"]:
            how = f"compte créé, invitation non envoyée ({member['invitation_error']})"
        out.line(f"  {member['email']:<40} {', '.join(member['roles']) or '—':<16} {how}")
    for note in completion["skipped_members"]:
        out.line(f"  non restauré : {note}")
    intact = verdict.get("verdict") == "intact"
    out.line(f"chaîne d'audit : {'vérifiée' if intact else 'ROMPUE'} ({verdict.get('entries')} entrée(s))")
    out.line(f"{completion['tenant']['key']} est {completion['tenant']['status']}")
    out.document(report)
    return 0 if intact else 1
