"""JSON logs: one object per line, context bound, secrets redacted."""

from __future__ import annotations

import json
import logging

import structlog

from socle_core.logging import configure_logging


def _lines(capsys) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]


def test_events_are_json_with_service_and_bound_context(capsys) -> None:
    configure_logging("tenancy")
    structlog.contextvars.bind_contextvars(request_id="req-123", tenant_id="t-1")
    try:
        structlog.get_logger("x").info("onboarding_step", step="organization")
    finally:
        structlog.contextvars.clear_contextvars()
    (event,) = _lines(capsys)
    assert event["event"] == "onboarding_step"
    assert event["service"] == "tenancy"
    assert event["request_id"] == "req-123"
    assert event["tenant_id"] == "t-1"
    assert event["level"] == "info"
    assert "timestamp" in event


def test_secrets_are_redacted_in_keys_values_and_stdlib_records(capsys) -> None:
    configure_logging("identity")
    log = structlog.get_logger("x")
    log.info(
        "call",
        authorization="Bearer abc.def.ghi",
        headers={"Cookie": "sid=1", "Accept": "json"},
        client_secret="s3cr3t",
        url="postgresql+asyncpg://app:hunter2@db/socle",
    )
    log.info("sent Authorization: Bearer eyJhbGciOi.payload.sig")
    logging.getLogger("sqlalchemy").warning("connect postgresql://owner:pa55word@db:5432/socle failed")
    output = capsys.readouterr().out
    for secret in ("abc.def.ghi", "sid=1", "s3cr3t", "hunter2", "eyJhbGciOi", "pa55word"):
        assert secret not in output
    events = [json.loads(line) for line in output.splitlines()]
    assert events[0]["headers"]["Accept"] == "json"
    assert events[2]["service"] == "identity"
    assert "[REDACTED]" in events[2]["event"]
