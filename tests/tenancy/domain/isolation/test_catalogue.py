"""How the report reads a policy: which branches are anchored on the tenant context."""

from __future__ import annotations

from socle_tenancy.domain.isolation.catalogue import anchors, classify_policy, sharing_branches

CURRENT = "(NULLIF(current_setting('app.tenant_id'::text, true), ''::text))::uuid"
STRICT = f"(tenant_id = {CURRENT})"
SHARED = "tenancy.shared_with_current_tenant(tenant_id, 'devices'::text, id)"


def _policy(command: str, using: str | None, check: str | None = None, roles: tuple[str, ...] = ("public",)) -> dict:
    return {
        "name": "p",
        "command": command,
        "permissive": True,
        "roles": list(roles),
        "using": using,
        "with_check": check,
    }


def test_the_strict_policy_is_anchored_on_tenant_id() -> None:
    assert anchors(STRICT) == ["tenant_id"]
    assert classify_policy(_policy("ALL", STRICT, STRICT)) == ("tenant_isolation", [])


def test_a_shared_read_policy_is_legitimate_for_select_only() -> None:
    assert classify_policy(_policy("SELECT", SHARED)) == ("shared_read", [])
    kind, problems = classify_policy(_policy("ALL", f"({STRICT} OR {SHARED})", STRICT))
    assert kind == "unanchored"
    assert "USING n'est pas ancré" in problems[0]
    assert sharing_branches([{**_policy("SELECT", SHARED), "kind": "shared_read", "problems": []}]) == [SHARED]


def test_a_grantee_column_may_widen_reads_but_never_writes() -> None:
    both = f"((grantor_tenant_id = {CURRENT}) OR (grantee_tenant_id = {CURRENT}))"
    assert anchors(both) == ["column:grantor_tenant_id", "column:grantee_tenant_id"]
    assert classify_policy(_policy("SELECT", both)) == ("grantee_read", [])


def test_an_escape_hatch_branch_or_a_missing_check_is_a_violation() -> None:
    leaky = f"({STRICT} OR true)"
    assert anchors(leaky) == ["tenant_id", None]
    assert classify_policy(_policy("SELECT", leaky))[0] == "unanchored"
    kind, problems = classify_policy(_policy("INSERT", None, "true"))
    assert kind == "unanchored"
    assert "WITH CHECK" in problems[0]
    assert classify_policy(_policy("UPDATE", "(current_setting('app.tenant_id'::text) IS NOT NULL)"))[0] == "unanchored"


def test_a_policy_for_roles_the_services_never_use_binds_no_application_role() -> None:
    owner_only = _policy("INSERT", None, "true", roles=("socle_tenancy_owner",))
    assert classify_policy(owner_only, {"socle_tenancy_app"}) == ("other_roles", [])
    assert classify_policy(owner_only, {"socle_tenancy_app", "socle_tenancy_owner"})[0] == "unanchored"
