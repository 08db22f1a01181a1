"""What the API probes compare: the values that identify the target's rows, never common words.

The answers here are real answers of the tenancy service's shape (the audit log's 404 to
another tenant, an owner's audit entries after an accepted invitation); the end-to-end runs
against served services are in ``test_report.py``.
"""

from __future__ import annotations

import uuid

import httpx

from socle_tenancy.domain.isolation.api_probes import find_leaks, identifying_values

TARGET = "399ca757-96c8-495c-a455-ceb6a1699f06"
ENTRY_HASH = "9f2c0a7d41e8b3c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d"
USER = str(uuid.uuid4())
#: The target's own view of its chain after its first admin set a password through Keycloak's account console.
OWNER_VIEW = {
    "items": [
        {
            "seq": 7,
            "actor": USER,
            "action": "login",
            "target": "client:account",
            "outcome": "success",
            "details": {"client_id": "account", "keycloak_type": "LOGIN", "user_id": USER},
            "hash": ENTRY_HASH,
        }
    ],
    "next_cursor": None,
}
REFUSAL = {
    "type": "urn:socle:problem:not-found",
    "title": "Not Found",
    "status": 404,
    "detail": "no audit log of this tenant for this account",
    "instance": f"/v1/audit/entries?tenant={TARGET}",
}


def _answer(body: dict[str, object], status: int = 404) -> httpx.Response:
    request = httpx.Request("GET", f"http://tenancy.test/v1/audit/entries?tenant={TARGET}")
    return httpx.Response(status, json=body, request=request, headers={"content-type": "application/problem+json"})


def test_ids_hashes_and_named_members_identify_the_rows_common_words_do_not() -> None:
    values = identifying_values(OWNER_VIEW)
    assert values[USER] == "items[0].actor"
    assert values[ENTRY_HASH] == "items[0].hash"
    assert values["client:account"] == "items[0].target"
    assert values["account"] == "items[0].details.client_id"
    assert "success" not in values
    assert "LOGIN" not in values
    assert "login" not in values


def test_the_refusal_of_another_tenants_audit_log_leaks_nothing_after_an_accepted_invitation() -> None:
    """The issue's false alarm: ``account`` of the refusal text is not the entry's ``client_id``."""
    refusal = _answer(REFUSAL)
    baseline = _answer({**REFUSAL, "instance": f"/v1/audit/entries?tenant={uuid.uuid4()}"}).text
    assert find_leaks(refusal, identifying_values(OWNER_VIEW), common=set(), baseline=baseline) == []
    # Without the baseline the word stands alone in both texts; still no id, hash or target of the entry leaks.
    assert [leak["value"] for leak in find_leaks(refusal, identifying_values(OWNER_VIEW), common=set())] == ["account"]


def test_a_real_leak_names_the_value_where_the_owner_holds_it_and_where_the_answer_holds_it() -> None:
    leaky = _answer({**REFUSAL, "detail": f"entry {ENTRY_HASH} of {USER} is not yours"})
    leaks = find_leaks(leaky, identifying_values(OWNER_VIEW), common=set(), baseline=_answer(REFUSAL).text)
    assert sorted(leaks, key=lambda leak: leak["value"]) == sorted(
        [
            {
                "value": USER,
                "owner_view": "membre items[0].actor de la vue du propriétaire",
                "found_in": "membre detail de la réponse",
            },
            {
                "value": ENTRY_HASH,
                "owner_view": "membre items[0].hash de la vue du propriétaire",
                "found_in": "membre detail de la réponse",
            },
        ],
        key=lambda leak: leak["value"],
    )  # the user id is random: the order of the two values is not the point


def test_values_the_prober_holds_too_or_that_it_asked_for_are_not_leaks() -> None:
    echo = _answer({**REFUSAL, "detail": f"no audit log of {TARGET} for {USER}"})
    view = {**OWNER_VIEW, "tenant_id": TARGET}
    assert find_leaks(echo, identifying_values(view), common={USER}) == []
