"""Check a tenant declaration against the official reference, beyond what JSON Schema can.

The schema (``tenants/schema/tenant-declaration.schema.json``) checks the shape; this checks
the facts: the EPCI exists, each declared commune is one of *its* members, no commune is
declared twice, no e-mail domain is claimed by two tenants (a Keycloak organisation domain
must be unique), each first admin's address is under a domain the tenant (or the EPCI)
owns. Run it after schema validation; each issue carries a JSON Pointer to the culprit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .catalogue import ReferenceCatalogue, UnknownCommune, UnknownEpci
from .codes import siren_problem


@dataclass(frozen=True, slots=True)
class DeclarationIssue:
    pointer: str
    """JSON Pointer (RFC 6901) into the declaration, e.g. ``/communes/2/insee``."""
    message: str

    def __str__(self) -> str:
        return f"{self.pointer or '/'} : {self.message}"


def _domain(email: str) -> str:
    return email.rpartition("@")[2].lower()


def check_declaration(declaration: Mapping[str, Any], catalogue: ReferenceCatalogue) -> list[DeclarationIssue]:
    """Every way the declaration contradicts the reference or itself; empty if none."""
    issues: list[DeclarationIssue] = []
    epci_decl: Mapping[str, Any] = declaration.get("epci", {})
    siren = str(epci_decl.get("siren", ""))
    epci_members: set[str] | None = None
    problem = siren_problem(siren)
    if problem is not None:
        issues.append(DeclarationIssue("/epci/siren", problem))
    else:
        try:
            epci_members = set(catalogue.epci(siren).member_insee)
        except UnknownEpci as exc:
            issues.append(DeclarationIssue("/epci/siren", str(exc)))

    owners: dict[str, str] = {}

    def claim(domains: Sequence[str], pointer: str) -> None:
        for index, domain in enumerate(domains):
            here = f"{pointer}/{index}"
            key = domain.lower()
            if key in owners:
                issues.append(
                    DeclarationIssue(here, f"le domaine de messagerie {domain} est déjà revendiqué en {owners[key]}")
                )
            else:
                owners[key] = here

    tenant: Mapping[str, Any] = epci_decl.get("tenant", {})
    epci_domains = [d.lower() for d in tenant.get("email_domains", [])]
    claim(tenant.get("email_domains", []), "/epci/tenant/email_domains")
    admin = tenant.get("first_admin_email")
    if admin and _domain(admin) not in epci_domains:
        issues.append(
            DeclarationIssue(
                "/epci/tenant/first_admin_email",
                f"{admin} n'est pas sous les email_domains de l'EPCI {epci_domains}",
            )
        )

    seen: dict[str, int] = {}
    for index, commune_decl in enumerate(declaration.get("communes", [])):
        pointer = f"/communes/{index}"
        insee = str(commune_decl.get("insee", ""))
        if insee in seen:
            issues.append(
                DeclarationIssue(
                    f"{pointer}/insee",
                    f"commune {insee} déjà déclarée en /communes/{seen[insee]}",
                )
            )
        else:
            seen[insee] = index
        try:
            commune = catalogue.commune(insee)
        except UnknownCommune as exc:
            issues.append(DeclarationIssue(f"{pointer}/insee", str(exc)))
        else:
            if epci_members is not None and insee not in epci_members:
                issues.append(
                    DeclarationIssue(
                        f"{pointer}/insee",
                        f"la commune {insee} {commune.name} est membre de l'EPCI "
                        f"{commune.epci_siren} ({catalogue.epci(commune.epci_siren).name}), "
                        f"pas de {siren}",
                    )
                )
        domains = commune_decl.get("email_domains", [])
        claim(domains, f"{pointer}/email_domains")
        admin = commune_decl.get("first_admin_email")
        allowed = {d.lower() for d in domains} | set(epci_domains)
        if admin and _domain(admin) not in allowed:
            issues.append(
                DeclarationIssue(
                    f"{pointer}/first_admin_email",
                    f"{admin} n'est ni sous les email_domains de la commune ni sous ceux de l'EPCI",
                )
            )

    key: Mapping[str, Any] = declaration.get("allocation_key", {})
    weights: Mapping[str, float] = key.get("weights", {})
    if key.get("method") == "weighted" and not any(w > 0 for w in weights.values()):
        issues.append(DeclarationIssue("/allocation_key/weights", "au moins un poids doit être supérieur à 0"))
    return issues
