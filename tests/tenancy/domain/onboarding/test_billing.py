"""Tenancy's billing client, its retries and error mapping, against the session's real billing service.

Tokens come from the real Keycloak, answers from the real billing service: its 201, its 409
for a tenant whose account has another key, its 403 for a caller without the ``operator`` role; a closed
local port is a real refused connection. Only a 5xx, which a healthy billing never answers on
demand, is injected by ``tests.support.faults.Faults`` in front of the real service.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from socle_devstack.processes import free_port
from socle_tenancy.domain.onboarding import billing as billing_module
from socle_tenancy.domain.onboarding.billing import BillingClient, BillingConflict, BillingError
from socle_tenancy.keycloak import KeycloakAdmin
from tests.support.faults import Faults
from tests.support.fixtures import registered_commune

Token = Callable[[], Awaitable[str]]

#: A well-formed commune key, for calls refused before billing looks at the tenant.
_ANY_KEY = "commune-9B000"


@pytest.fixture
async def platform_token(tenancy_settings) -> AsyncIterator[Token]:
    """The ``socle-platform`` service account's token, fetched from the real Keycloak as onboarding does."""
    keycloak = KeycloakAdmin(tenancy_settings())
    yield keycloak.access_token
    await keycloak.aclose()


@pytest.fixture
def client(tenancy_settings, platform_token, monkeypatch: pytest.MonkeyPatch) -> Callable[..., BillingClient]:
    monkeypatch.setattr(billing_module, "BACKOFF_SECONDS", (0.0,))

    def make(transport: Faults | None = None, token: Token = platform_token, **overrides) -> BillingClient:
        return BillingClient(tenancy_settings(**overrides), token, transport=transport)

    return make


async def test_a_5xx_is_retried_and_the_put_is_the_same_each_time(
    client, billing_url, platform_token, database
) -> None:
    tenant = await registered_commune(database)
    tenant_id, key = str(tenant.id), tenant.alias
    transport = Faults(502, method="PUT", path=f"/v1/metering-accounts/{tenant_id}")
    billing = client(transport)
    account = await billing.open_metering_account(tenant_id, key, "commune")
    await billing.aclose()
    assert (account["tenant_id"], account["tenant_key"], account["kind"], account["status"]) == (
        tenant_id,
        key,
        "commune",
        "open",
    )
    assert [(c.answer, c.injected) for c in transport.calls] == [(502, True), (201, False)]  # then the real billing
    for call in transport.calls:
        request = call.request
        assert (request.method, str(request.url)) == ("PUT", f"{billing_url}/v1/metering-accounts/{tenant_id}")
        assert request.headers["authorization"] == f"Bearer {await platform_token()}"
        assert json.loads(request.content) == {"tenant_key": key, "kind": "commune"}


async def test_a_conflict_is_not_retried_and_keeps_billings_detail(client, database) -> None:
    tenant = await registered_commune(database)
    billing = client()
    await billing.open_metering_account(str(tenant.id), tenant.alias, "commune")
    await billing.aclose()

    transport = Faults()
    billing = client(transport)
    other_key = tenant.alias[:-4] + ("A" if tenant.alias[-4] == "B" else "B") + tenant.alias[-3:]
    with pytest.raises(BillingConflict, match=f"a déjà un compte de consommation pour {tenant.alias}"):
        await billing.open_metering_account(str(tenant.id), other_key, "commune")  # its account has another key
    await billing.aclose()
    assert [c.answer for c in transport.calls] == [409]


async def test_refused_credentials_fail_at_once_and_a_dead_billing_after_every_attempt(client, kc_admin) -> None:
    agent = kc_admin.create_client(roles=("commune-agent",))  # a real token, without the operator role

    async def agent_token() -> str:
        return str(kc_admin.token(agent)["access_token"])

    transport = Faults()
    billing = client(transport, token=agent_token)
    with pytest.raises(BillingError, match=r"403.*operator") as raised:
        await billing.open_metering_account(str(uuid.uuid4()), _ANY_KEY, "commune")
    assert raised.value.status == 503
    assert [c.answer for c in transport.calls] == [403]
    await billing.aclose()

    transport = Faults()
    billing = client(transport, billing_url=f"http://127.0.0.1:{free_port()}", billing_attempts=4)  # nothing listens
    with pytest.raises(BillingError, match="après 4 tentative"):
        await billing.open_metering_account(str(uuid.uuid4()), _ANY_KEY, "commune")
    await billing.aclose()
    assert [c.answer for c in transport.calls] == ["ConnectError"] * 4
