"""The example production values of Socle's Keycloak (codecentric ``keycloakx`` chart).

Keycloak is not part of the ``socle`` chart: the operator deploys it with these values as the
starting point (docs/operations/helm.md). The public Ingress must not route to the admin console,
the master realm or the management endpoints; the console has its own internal Ingress.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
VALUES = ROOT / "infra" / "keycloak" / "production" / "keycloakx-values.yaml"
SOCLE_PRODUCTION = ROOT / "helm" / "socle" / "ci" / "production-values.yaml"
PUBLIC_PATHS = {"/realms/socle/", "/resources/", "/robots.txt"}


@pytest.fixture(scope="module")
def values() -> dict[str, Any]:
    return dict(yaml.safe_load(VALUES.read_text()))


def _env(values: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: str(item["value"]) for item in yaml.safe_load(values["extraEnv"])}


def test_the_public_ingress_routes_only_the_realm_and_its_assets(values) -> None:
    ingress = values["ingress"]
    assert ingress["enabled"] is True
    paths = [p["path"] for rule in ingress["rules"] for p in rule["paths"]]
    assert set(paths) == PUBLIC_PATHS
    for path in paths:
        assert not path.startswith(("/admin", "/realms/master", "/metrics", "/health")), path
        assert path != "/"
    assert ingress.get("servicePort", "http") == "http"  # never the management port


def test_the_admin_console_is_on_an_internal_host_of_its_own(values) -> None:
    env = _env(values)
    public, admin = urlsplit(env["KC_HOSTNAME"]).hostname, urlsplit(env["KC_HOSTNAME_ADMIN"]).hostname
    assert public != admin
    console = values["ingress"]["console"]
    assert console["enabled"] is True
    assert console["ingressClassName"] != values["ingress"]["ingressClassName"]
    assert console["annotations"]["nginx.ingress.kubernetes.io/whitelist-source-range"]
    assert {rule["host"] for rule in console["rules"]} == {admin}
    assert {rule["host"] for rule in values["ingress"]["rules"]} == {public}
    assert "/admin/" in {p["path"] for rule in console["rules"] for p in rule["paths"]}


def test_management_endpoints_stay_off_the_listener_and_the_issuer_matches_the_socle_chart(values) -> None:
    env = _env(values)
    assert env["KC_HTTP_MANAGEMENT_PORT"] == "9000"
    assert env["KC_HEALTH_ENABLED"] == env["KC_METRICS_ENABLED"] == "true"
    assert values["http"]["relativePath"] == "/"
    issuer = yaml.safe_load(SOCLE_PRODUCTION.read_text())["global"]["oidc"]["issuer"]
    assert issuer == f"{env['KC_HOSTNAME']}/realms/socle"
    assert f"{urlsplit(issuer).path}/" in PUBLIC_PATHS  # discovery, keys, tokens: under the public prefix
