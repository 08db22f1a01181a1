"""Validate a declaration, compare it with the platform through the API, apply the difference.

Validation runs first and completely: the JSON Schema (shape), then ``check_declaration``
(facts from the official reference), then what the API cannot store (fractional quotas,
names with control or text-reordering characters).
Every issue carries a JSON Pointer. Nothing is called on the API before the file is valid.

The plan only ever adds or updates. A commune left out of the file is not offboarded:
suspension and offboarding are explicit acts (``socle-tenants offboard``).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from socle_core.schemas import check_label
from socle_reference import DeclarationIssue, ReferenceCatalogue, check_declaration
from socle_tenancy.domain.declarations.api import TenancyApi
from socle_tenancy.domain.declarations.schemas import Change, DesiredTenant, Plan

SCHEMA_FILE = Path("tenants") / "schema" / "tenant-declaration.schema.json"
QUOTA_FIELDS = ("max_devices", "max_readings_per_day", "storage_gb")
#: Statuses whose settings the API changes; others are reported, never forced.
ONBOARDED = ("active", "suspended")


class InvalidDeclaration(Exception):
    def __init__(self, issues: list[DeclarationIssue]) -> None:
        super().__init__(f"{len(issues)} problème(s)")
        self.issues = issues


@functools.cache
def declaration_schema() -> dict[str, Any]:
    for start in (Path(__file__).resolve().parent, Path.cwd().resolve()):
        for directory in (start, *start.parents):
            candidate = directory / SCHEMA_FILE
            if candidate.is_file():
                return dict(json.loads(candidate.read_text(encoding="utf-8")))
    raise FileNotFoundError(f"{SCHEMA_FILE} not found above the module or the current directory")


def _pointer(path: Any) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in path)


def load_declaration(path: Path, catalogue: ReferenceCatalogue) -> dict[str, Any]:
    """The declaration, or ``InvalidDeclaration`` listing every problem with its pointer."""
    try:
        declaration = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidDeclaration([DeclarationIssue("", f"impossible de lire {path} : {exc.strerror}")]) from exc
    except json.JSONDecodeError as exc:
        raise InvalidDeclaration([DeclarationIssue("", f"pas du JSON : {exc.msg} à la ligne {exc.lineno}")]) from exc
    validator = Draft202012Validator(declaration_schema())
    issues = [
        DeclarationIssue(_pointer(error.absolute_path), error.message)
        for error in sorted(validator.iter_errors(declaration), key=lambda e: list(map(str, e.absolute_path)))
    ]
    if issues:
        raise InvalidDeclaration(issues)
    issues = [*check_declaration(declaration, catalogue), *_display_name_issues(declaration)]
    for pointer, quotas in _quota_blocks(declaration):
        value = quotas.get("storage_gb")
        if value is not None and value != int(value):
            issues.append(
                DeclarationIssue(
                    f"{pointer}/storage_gb", f"{value} Go : la plateforme compte le stockage en Go entiers"
                )
            )
    if issues:
        raise InvalidDeclaration(issues)
    return dict(declaration)


def _display_name_issues(declaration: Mapping[str, Any]) -> list[DeclarationIssue]:
    """The names the API would refuse: control characters, text-reordering characters."""
    epci = declaration["epci"]
    names = [
        ("/epci/display_name", epci.get("display_name")),
        ("/epci/tenant/display_name", epci["tenant"].get("display_name")),
    ]
    names += [(f"/communes/{i}/display_name", c.get("display_name")) for i, c in enumerate(declaration["communes"])]
    issues = []
    for pointer, name in names:
        if name is None:
            continue
        try:
            check_label(name)
        except ValueError as exc:
            issues.append(DeclarationIssue(pointer, str(exc)))
    return issues


def _quota_blocks(declaration: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    blocks = [("/defaults/quotas", declaration.get("defaults", {}).get("quotas", {}))]
    blocks.append(("/epci/tenant/quotas", declaration["epci"]["tenant"].get("quotas", {})))
    blocks += [(f"/communes/{i}/quotas", c.get("quotas", {})) for i, c in enumerate(declaration["communes"])]
    return blocks


def _quotas(*layers: Mapping[str, Any]) -> dict[str, int]:
    merged: dict[str, int] = {}
    for layer in layers:
        merged.update({k: int(v) for k, v in layer.items() if k in QUOTA_FIELDS})
    return merged


def desired_tenants(declaration: Mapping[str, Any]) -> list[DesiredTenant]:
    """The EPCI's own tenant first, then the communes, as the declaration wants them."""
    epci = declaration["epci"]
    tenant = epci["tenant"]
    defaults = declaration.get("defaults", {}).get("quotas", {})
    wanted = [
        DesiredTenant(
            key=f"epci-{epci['siren']}",
            kind="epci",
            code=epci["siren"],
            pointer="/epci/tenant",
            display_name=tenant.get("display_name") or epci["display_name"],
            email_domains=list(tenant["email_domains"]),
            first_admin_email=tenant["first_admin_email"],
            quotas=_quotas(tenant.get("quotas", {})),
        )
    ]
    for index, commune in enumerate(declaration["communes"]):
        wanted.append(
            DesiredTenant(
                key=f"commune-{commune['insee']}",
                kind="commune",
                code=commune["insee"],
                pointer=f"/communes/{index}",
                display_name=commune.get("display_name"),
                email_domains=list(commune.get("email_domains", [])),
                first_admin_email=commune.get("first_admin_email"),
                quotas=_quotas(defaults, commune.get("quotas", {})),
            )
        )
    return wanted


def _onboarding(want: DesiredTenant, existing: Mapping[str, Any] | None) -> Change:
    body: dict[str, Any] = {}
    if want.first_admin_email:
        body["first_admin_email"] = want.first_admin_email
    if want.email_domains:
        body["email_domains"] = want.email_domains
    if want.display_name:
        body["display_name"] = want.display_name
    if want.quotas:
        body["quotas"] = want.quotas
    path = f"/v1/epcis/{want.code}/onboarding" if want.kind == "epci" else f"/v1/tenants/{want.code}/onboarding"
    verb = "reprendre l'onboarding de" if existing else "onboarding de"
    details = [f"premier administrateur {want.first_admin_email}" if want.first_admin_email else ""]
    details.append(f"domaines {', '.join(want.email_domains)}" if want.email_domains else "")
    details.append(", ".join(f"{k}={v}" for k, v in want.quotas.items()))
    summary = f"{verb} {want.key}" + (" : " + " ; ".join(d for d in details if d) if any(details) else "")
    return Change("onboard", want.key, summary, "POST", path, body, after=body)


async def plan(api: TenancyApi, declaration: Mapping[str, Any]) -> Plan:
    """What the API must be asked to make the platform match the declaration."""
    result = Plan()
    existing = {t["key"]: t async for t in api.tenants()}
    siren = declaration["epci"]["siren"]
    registered = next((t for t in existing.values() if t["kind"] == "epci"), None)
    if registered is None:
        result.changes.append(
            Change(
                "register_epci",
                f"epci-{siren}",
                f"enregistrer l'EPCI {siren} ({declaration['epci']['display_name']}) d'après la liste officielle",
                "POST",
                "/v1/epcis",
                {"siren": siren},
            )
        )
    elif registered["siren"] != siren:
        result.notes.append(
            f"cette plateforme appartient à l'EPCI {registered['siren']} ({registered['name']}) : "
            f"une déclaration de l'EPCI {siren} ne peut pas y être appliquée"
        )
        return result

    for want in desired_tenants(declaration):
        tenant = existing.get(want.key)
        if tenant is None or tenant["status"] == "invited":
            result.changes.append(_onboarding(want, tenant))
            continue
        if tenant["status"] not in ONBOARDED:
            result.notes.append(
                f"{want.key} est au statut {tenant['status']} : laissée en l'état (une collectivité partie n'est pas "
                "ramenée)"
            )
            continue
        patch: dict[str, Any] = {}
        if want.display_name and want.display_name != tenant["name"]:
            patch["name"] = want.display_name
        if want.email_domains and sorted(want.email_domains) != sorted(tenant["email_domains"]):
            patch["email_domains"] = want.email_domains
        if patch:
            before = {k: tenant["name" if k == "name" else "email_domains"] for k in patch}
            summary = f"modifier {want.key} : " + " ; ".join(f"{k} {before[k]!r} → {v!r}" for k, v in patch.items())
            result.changes.append(
                Change("update_tenant", want.key, summary, "PATCH", f"/v1/tenants/{tenant['id']}", patch, before, patch)
            )
        if want.quotas:
            current = await api.get(f"/v1/tenants/{tenant['id']}/quotas")
            quota_patch = {k: v for k, v in want.quotas.items() if current.get(k) != v}
            if quota_patch:
                before = {k: current.get(k) for k in quota_patch}
                summary = f"modifier les quotas de {want.key} : " + ", ".join(
                    f"{k} {before[k]} → {v}" for k, v in quota_patch.items()
                )
                result.changes.append(
                    Change(
                        "update_quotas",
                        want.key,
                        summary,
                        "PATCH",
                        f"/v1/tenants/{tenant['id']}/quotas",
                        quota_patch,
                        before,
                        quota_patch,
                    )
                )
    result.notes.append(
        "allocation_key et allocation_weight ne sont pas appliqués : ils relèvent de la facturation, qui n'a pas "
        "encore d'API pour eux"
    )
    return result


async def apply(api: TenancyApi, changes: list[Change], progress: Callable[[str], None]) -> list[dict[str, Any]]:
    """Make the calls in order (the EPCI before its tenant, tenants before their settings)."""
    results = []
    for index, change in enumerate(changes, start=1):
        progress(f"[{index}/{len(changes)}] {change.summary} ...")
        response = await api.request(change.method, change.path, json=change.body)
        body = response.json()
        tenant = body.get("tenant", body) if isinstance(body, dict) else {}
        results.append(
            {"action": change.action, "tenant": change.tenant, "status": response.status_code, "id": tenant.get("id")}
        )
        progress(f"[{index}/{len(changes)}] fait ({response.status_code})")
    return results
