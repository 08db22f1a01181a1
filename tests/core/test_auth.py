"""Bearer-token verification against the real Keycloak realm.

Real tokens come from the realm's client-credentials grant; "forged" tokens are signed with
an extra key the realm publishes in its JWKS, so that each claim check is exercised alone
with an otherwise valid signature.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import uuid

import httpx
import pytest

from socle_core.auth import InvalidToken, TokenVerifier, principal_from_claims
from tests.support.tokens import SigningKey, b64, claims_for, unsigned, unverified_claims


@pytest.fixture(scope="session")
def forging_key(kc_admin) -> SigningKey:
    key = SigningKey.generate()
    key.kid = kc_admin.add_rsa_key(key.private_pem, key.certificate_pem, priority=1)
    return key


@pytest.fixture
async def verifier(keycloak):
    v = TokenVerifier(keycloak.issuer, "socle-api", leeway_seconds=5, min_refresh_interval_seconds=0)
    yield v
    await v.aclose()


@pytest.fixture(scope="session")
def tenant_client(kc_admin):
    tenant = uuid.uuid4()
    client = kc_admin.create_client(organization=("commune-35238", tenant), roles=("device",))
    return client, tenant


async def _rejected(verifier: TokenVerifier, token: str, reason: str) -> None:
    with pytest.raises(InvalidToken, match=reason):
        await verifier.verify(token)


async def test_a_token_issued_by_the_realm_is_accepted_and_names_its_tenant(verifier, kc_admin, tenant_client) -> None:
    client, tenant = tenant_client
    token = kc_admin.token(client)["access_token"]
    claims = await verifier.verify(token)
    principal = principal_from_claims(claims)
    assert principal.client_id == client.client_id
    assert principal.tenant is not None
    assert principal.tenant.uuid == tenant
    assert principal.organization == "commune-35238"
    assert "device" in principal.roles


async def test_expired_token_is_refused(keycloak, kc_admin) -> None:
    client = kc_admin.create_client(access_token_lifespan=3)
    strict = TokenVerifier(keycloak.issuer, "socle-api", leeway_seconds=0)
    try:
        await strict.ensure_keys()  # key fetching must not eat into the token's short life
        token = kc_admin.token(client)["access_token"]
        claims = await strict.verify(token)  # valid right now
        await asyncio.sleep(max(0.0, claims["exp"] - time.time()) + 1.1)
        await _rejected(strict, token, "expiré")
    finally:
        await strict.aclose()


async def test_wrong_audience_is_refused(verifier, kc_admin) -> None:
    client = kc_admin.create_client(audience=None)
    await _rejected(verifier, kc_admin.token(client)["access_token"], "audience")


async def test_wrong_issuer_is_refused(verifier, forging_key, keycloak) -> None:
    token = forging_key.sign(claims_for(keycloak.url + "/realms/master"))
    await _rejected(verifier, token, "émetteur")


async def test_validly_signed_forged_token_with_right_claims_is_accepted(verifier, forging_key, keycloak) -> None:
    """Control for the forged-token tests: only the claim under test makes them fail."""
    claims = await verifier.verify(forging_key.sign(claims_for(keycloak.issuer)))
    assert claims["sub"] == "forged-subject"


async def test_tampered_payload_breaks_the_signature(verifier, kc_admin, tenant_client) -> None:
    client, _ = tenant_client
    token = kc_admin.token(client)["access_token"]
    header, _, signature = token.split(".")
    claims = unverified_claims(token)
    claims["organization"] = {"commune-other": {"tenant_id": [str(uuid.uuid4())]}}
    await _rejected(verifier, f"{header}.{b64(json.dumps(claims).encode())}.{signature}", "signature")


async def test_alg_none_is_refused(verifier, keycloak) -> None:
    await _rejected(verifier, unsigned(claims_for(keycloak.issuer)), "algorithme de signature 'none'")


async def test_hs256_signed_with_the_realm_public_key_is_refused(verifier, keycloak, forging_key) -> None:
    async with httpx.AsyncClient() as client:
        jwks = (await client.get(f"{keycloak.issuer}/protocol/openid-connect/certs")).json()
    public = json.dumps(jwks["keys"][0]).encode()
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": jwks["keys"][0]["kid"]}).encode())
    body = b64(json.dumps(claims_for(keycloak.issuer)).encode())
    mac = hmac.new(public, f"{head}.{body}".encode(), hashlib.sha256).digest()
    await _rejected(verifier, f"{head}.{body}.{b64(mac)}", "algorithme de signature 'HS256'")
    pem_mac = hmac.new(forging_key.certificate_pem.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    await _rejected(verifier, f"{head}.{body}.{b64(pem_mac)}", "algorithme de signature 'HS256'")


async def test_unknown_kid_triggers_exactly_one_jwks_refresh(keycloak, forging_key) -> None:
    verifier = TokenVerifier(keycloak.issuer, "socle-api", min_refresh_interval_seconds=60)
    try:
        await verifier.refresh_keys()
        before = verifier.refresh_count
        other = SigningKey.generate()
        other.kid = "not-a-realm-key"
        for _ in range(3):
            await _rejected(verifier, other.sign(claims_for(keycloak.issuer)), "clé inconnue")
        assert verifier.refresh_count == before  # refreshed just now: the interval holds it back
    finally:
        await verifier.aclose()
    eager = TokenVerifier(keycloak.issuer, "socle-api", min_refresh_interval_seconds=0)
    try:
        await eager.refresh_keys()
        before = eager.refresh_count
        await _rejected(eager, other.sign(claims_for(keycloak.issuer)), "clé inconnue")
        assert eager.refresh_count == before + 1
    finally:
        await eager.aclose()


@pytest.mark.parametrize("parameter", ["jku", "x5u", "jwk"])
async def test_key_location_injected_in_the_header_is_refused(verifier, forging_key, keycloak, parameter) -> None:
    value = {"kty": "RSA"} if parameter == "jwk" else "https://attacker.example/keys"
    token = forging_key.sign(claims_for(keycloak.issuer), **{parameter: value})
    await _rejected(verifier, token, parameter)


async def test_not_yet_valid_token_is_refused_beyond_the_leeway(verifier, forging_key, keycloak) -> None:
    await _rejected(
        verifier, forging_key.sign(claims_for(keycloak.issuer, nbf=int(time.time()) + 120)), "pas encore valide"
    )
    within = await verifier.verify(forging_key.sign(claims_for(keycloak.issuer, nbf=int(time.time()) + 2)))
    assert within["sub"] == "forged-subject"


async def test_id_token_is_not_an_access_token(verifier, forging_key, keycloak) -> None:
    await _rejected(verifier, forging_key.sign(claims_for(keycloak.issuer, typ="ID")), "n'est pas un jeton d'accès")


async def test_token_without_expiry_is_refused(verifier, forging_key, keycloak) -> None:
    claims = claims_for(keycloak.issuer)
    del claims["exp"]
    await _rejected(verifier, forging_key.sign(claims), "pas de date d'expiration")


async def test_garbage_is_refused_with_a_clear_reason(verifier) -> None:
    await _rejected(verifier, "not-a-jwt", "n'est pas un JWT signé")
    await _rejected(verifier, "e30.e30.", "algorithme de signature None")


# -- a tenant named in a path, header or body must be the token's ---------------------------


def _principal_of(alias: str, tenant: uuid.UUID):
    return principal_from_claims({"sub": "s", "organization": {alias: {"tenant_id": [str(tenant)]}}})


def test_own_tenant_is_recognised_by_id_in_any_case_or_by_alias() -> None:
    tenant = uuid.uuid4()
    principal = _principal_of("commune-35238", tenant)
    for named in (tenant, str(tenant), str(tenant).upper(), f" {tenant} ", "commune-35238"):
        assert principal.names_own_tenant(named)
    for named in (uuid.uuid4(), "commune-30321", "", "COMMUNE-35238"):
        assert not principal.names_own_tenant(named)


def test_another_tenant_is_reported_then_not_found(monkeypatch) -> None:
    import socle_core.auth
    from socle_core.errors import NotFound

    seen: list = []
    monkeypatch.setattr(socle_core.auth, "on_cross_tenant_attempt", seen.append)
    tenant, other = uuid.uuid4(), uuid.uuid4()
    principal = _principal_of("commune-35238", tenant)
    assert principal.require_same_tenant(tenant).uuid == tenant
    with pytest.raises(NotFound, match="aucun tenant de ce nom"):
        principal.require_same_tenant(other, where="path", path="/v1/tenants/x")
    assert [(a.named, a.where, a.path, a.tenant_id) for a in seen] == [
        (str(other), "path", "/v1/tenants/x", str(tenant))
    ]


def test_tenant_fields_of_a_json_body() -> None:
    from socle_core.auth import _tenant_fields

    assert _tenant_fields(b'{"tenant_id": "a", "tenant": "b", "name": "c"}') == [("tenant_id", "a"), ("tenant", "b")]
    assert _tenant_fields(b'{"tenant_id": 7}') == [("tenant_id", "7")]
    assert _tenant_fields(b'{"name": "no tenant here"}') == []
    assert _tenant_fields(b'[{"tenant_id": "a"}]') == []  # not an object: the handler validates it
    assert _tenant_fields(b'{"tenant_id": ') == []  # not JSON: the handler refuses it
    assert _tenant_fields(b'{"tenant": {"id": "a"}}') == []  # not a scalar: the handler's schema decides
