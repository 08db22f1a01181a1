"""``socle-tenants offboard TENANT --export-dir DIR [--confirm]``.

Without ``--confirm``: a rehearsal. The bundle is written and verified; nothing changes.
With ``--confirm``: the tenant moves to ``offboarding`` (its organization disabled), the
bundle is written and verified (or, on a re-run, the verified bundle of the interrupted run
is reused), the tenant's rows are deleted in every service, a fresh count proves none
remain, then the API deletes its Keycloak organization and marks it ``deleted``.
Every step is safe to repeat: after a crash, run the same command again.
"""

from __future__ import annotations

import argparse
import json
import os
import uuid
from pathlib import Path
from typing import Any

from socle_tenancy.domain.declarations.api import TenancyApi
from socle_tenancy.domain.declarations.cli import Output, UsageError, add_connection_arguments, connect
from socle_tenancy.domain.offboarding import bundle


def add_offboard_command(commands: Any) -> None:
    offboard = commands.add_parser(
        "offboard", help="export a tenant's full bundle, then (with --confirm) delete its data and organization"
    )
    offboard.add_argument("tenant", help="the tenant: its id, key (commune-30321) or INSEE code")
    offboard.add_argument("--export-dir", required=True, type=Path, help="the bundle goes to DIR/<tenant key>/")
    offboard.add_argument("--confirm", action="store_true", help="really delete, once the export is verified")
    offboard.add_argument("--reason", default="offboarding requested by the EPCI", help="recorded on the tenant")
    offboard.add_argument("--output", choices=["text", "json"], default="text", help="json: one document on stdout")
    add_connection_arguments(offboard)
    offboard.set_defaults(handler=offboard_tenant)


async def _bundle(
    api: TenancyApi, tenant: dict[str, Any], urls: dict[str, str], bundle_dir: Path, out: Output
) -> dict[str, Any]:
    """The verified bundle: the interrupted run's if it was taken during offboarding, else a new one."""
    if (bundle_dir / "manifest.json").exists():
        previous = json.loads((bundle_dir / "manifest.json").read_text(encoding="utf-8"))
        if previous.get("tenant", {}).get("id") != tenant["id"]:
            raise UsageError(f"{bundle_dir} holds the bundle of another tenant: choose another --export-dir")
        if tenant["status"] == "offboarding" and previous.get("status_at_export") == "offboarding":
            manifest = bundle.verify_bundle(bundle_dir)
            out.line(f"reusing the verified bundle exported at {manifest['exported_at']} (an earlier run stopped)")
            return manifest
    out.line(f"exporting {tenant['key']} to {bundle_dir}")
    registry = await api.get(f"/v1/tenants/{tenant['id']}")
    identity = await api.get(f"/v1/tenants/{tenant['id']}/offboarding/identity")
    return await bundle.export_bundle(tenant, registry, identity, urls, bundle_dir, lambda m: out.line(f"  {m}"))


async def offboard_tenant(args: argparse.Namespace, out: Output) -> int:
    try:
        urls = bundle.database_urls(os.environ)
    except bundle.BundleError as exc:
        raise UsageError(str(exc)) from exc
    report: dict[str, Any] = {"confirm": args.confirm}
    async with connect(args) as api:
        tenant = (await api.get(f"/v1/tenants/{args.tenant}"))["tenant"]
        tenant_id = uuid.UUID(tenant["id"])
        report["tenant"] = {k: tenant[k] for k in ("id", "key", "name")}
        bundle_dir = Path(args.export_dir) / tenant["key"]
        if tenant["status"] != "deleted":
            if args.confirm and tenant["status"] != "offboarding":
                tenant = await api.post(f"/v1/tenants/{tenant_id}/offboarding", {"reason": args.reason})
                out.line(f"{tenant['key']} is now offboarding: its Keycloak organization is disabled")
            try:
                manifest = await _bundle(api, tenant, urls, bundle_dir, out)
            except bundle.BundleError as exc:
                out.line(f"error: {exc}")
                out.document({**report, "error": str(exc)})
                return 1
            report["bundle"] = {"path": str(bundle_dir), "bundle_sha256": manifest["bundle_sha256"]}
            out.line(f"bundle verified: {len(manifest['files'])} file(s), sha256 {manifest['bundle_sha256']}")
            for entry in manifest["files"]:
                out.line(f"  {entry['path']:<40} {entry['rows']:>8} row(s)  {entry['sha256'][:16]}…")
            if not args.confirm:
                out.line("nothing was deleted: run again with --confirm to delete the tenant's data")
                out.document(report)
                return 0
            try:
                report["deleted"] = await bundle.delete_rows(urls, tenant_id, manifest, lambda m: out.line(f"  {m}"))
            except bundle.BundleError as exc:
                out.line(f"error: {exc}")
                out.document({**report, "error": str(exc)})
                return 1
        else:
            out.line(f"{tenant['key']} is already deleted: checking that nothing remains")
        proof = await bundle.remaining_rows(urls, tenant_id)
        left = {table: p["rows"] for table, p in proof.items() if p["rows"] and not p["retained"]}
        if left:
            out.line(f"error: rows remain after deletion: {left}; run the command again")
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
        out.line(f"proof for {tenant['key']} (counted in fresh transactions after deletion):")
        for table, entry in proof.items():
            kept = "  (kept: legal retention of the audit log)" if entry["retained"] else ""
            out.line(f"  {table:<40} {entry['rows']:>8} row(s) remaining{kept}")
        out.line(f"  {'keycloak organization':<40} {report['proof']['keycloak_organization']}")
        out.line(f"  {'tenant status':<40} {tenant['status']}")
        if bundle_dir.is_dir():
            bundle._write_json(bundle_dir.with_name(bundle_dir.name + ".proof.json"), report)
        out.document(report)
        return 0 if identity["organization"] is None else 1
