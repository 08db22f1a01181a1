"""The billing client's retries and error mapping, with httpx.MockTransport (the real billing
service is exercised by test_metering_account.py)."""

from __future__ import annotations

import json

import httpx
import pytest

from socle_tenancy.config import TenancySettings
from socle_tenancy.domain.onboarding import billing as billing_module
from socle_tenancy.domain.onboarding.billing import BillingClient, BillingConflict, BillingError

ACCOUNT = {"tenant_id": "t1", "tenant_key": "commune-30321", "kind": "commune", "status": "open"}


async def _token() -> str:
    return "platform-token"


def client(handler, monkeypatch: pytest.MonkeyPatch, **overrides) -> BillingClient:
    monkeypatch.setattr(billing_module, "BACKOFF_SECONDS", (0.0,))
    settings = TenancySettings(
        environment="test",
        database_url="postgresql+asyncpg://u:p@127.0.0.1:1/socle",
        oidc_issuer="http://sso.test/realms/socle",
        **{"billing_url": "http://billing.test", **overrides},
    )
    return BillingClient(settings, _token, transport=httpx.MockTransport(handler))


async def test_a_5xx_is_retried_and_the_put_is_the_same_each_time(clean_socle_env, monkeypatch) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(502 if len(seen) == 1 else 201, json=ACCOUNT)

    billing = client(handler, monkeypatch)
    assert await billing.open_metering_account("t1", "commune-30321", "commune") == ACCOUNT
    await billing.aclose()
    assert len(seen) == 2
    for request in seen:
        assert (request.method, str(request.url)) == ("PUT", "http://billing.test/v1/metering-accounts/t1")
        assert request.headers["authorization"] == "Bearer platform-token"
        assert json.loads(request.content) == {"tenant_key": "commune-30321", "kind": "commune"}


async def test_a_conflict_is_not_retried_and_keeps_billings_detail(clean_socle_env, monkeypatch) -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(409, json={"status": 409, "detail": "the key is another tenant's"})

    billing = client(handler, monkeypatch)
    with pytest.raises(BillingConflict, match="the key is another tenant's"):
        await billing.open_metering_account("t1", "commune-30321", "commune")
    await billing.aclose()
    assert len(calls) == 1


async def test_refused_credentials_fail_at_once_and_a_dead_billing_after_every_attempt(
    clean_socle_env, monkeypatch
) -> None:
    calls = []

    def refused(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(403, json={"detail": "this action needs one of the roles: operator"})

    billing = client(refused, monkeypatch)
    with pytest.raises(BillingError, match=r"403.*operator") as raised:
        await billing.open_metering_account("t1", "commune-30321", "commune")
    assert raised.value.status == 503
    assert len(calls) == 1
    await billing.aclose()

    def dead(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    billing = client(dead, monkeypatch, billing_attempts=4)
    with pytest.raises(BillingError, match="after 4 attempt"):
        await billing.open_metering_account("t1", "commune-30321", "commune")
    await billing.aclose()
