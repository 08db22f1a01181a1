"""The report's signature: HMAC-SHA256 over its canonical JSON, with a key from configuration.

Canonical form: the report without its ``signature`` member, serialized with sorted keys,
no insignificant whitespace, UTF-8. Any edit of any value changes the MAC. The key itself
never appears in the report, only a key id derived from it (to tell which key signed).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from pydantic import SecretStr

from socle_core.settings import DEV_SECRET_MARKER

ALGORITHM = "HMAC-SHA256"
MIN_KEY_LENGTH = 32


class SigningKeyError(ValueError):
    """The signing key is missing, too short, or a development key outside development."""


def check_key(key: SecretStr | None, environment: str) -> SecretStr:
    if key is None or not key.get_secret_value():
        raise SigningKeyError(
            "no report signing key: set SOCLE_TENANCY_REPORT_SIGNING_KEY (at least 32 random characters, "
            "e.g. from a Kubernetes Secret)"
        )
    value = key.get_secret_value()
    if len(value) < MIN_KEY_LENGTH:
        raise SigningKeyError(f"SOCLE_TENANCY_REPORT_SIGNING_KEY must be at least {MIN_KEY_LENGTH} characters long")
    if DEV_SECRET_MARKER in value and environment != "development":
        raise SigningKeyError(
            f"a development-only report signing key is refused when environment={environment}: set a real one"
        )
    return key


def canonical(report: dict[str, Any]) -> bytes:
    body = {k: v for k, v in report.items() if k != "signature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def key_id(key: SecretStr) -> str:
    return hashlib.sha256(b"socle-isolation-report-key:" + key.get_secret_value().encode()).hexdigest()[:16]


def sign(report: dict[str, Any], key: SecretStr) -> dict[str, Any]:
    """The report with its ``signature`` member set."""
    mac = hmac.new(key.get_secret_value().encode(), canonical(report), hashlib.sha256).hexdigest()
    return {**report, "signature": {"algorithm": ALGORITHM, "key_id": key_id(key), "value": mac}}


def verify(report: dict[str, Any], key: SecretStr) -> tuple[bool, str]:
    """Whether the report is exactly what the holder of this key signed, and why not."""
    signature = report.get("signature")
    if not isinstance(signature, dict) or signature.get("algorithm") != ALGORITHM:
        return False, f"the report carries no {ALGORITHM} signature"
    if signature.get("key_id") != key_id(key):
        return False, f"signed with another key (key id {signature.get('key_id')}, this key is {key_id(key)})"
    expected = hmac.new(key.get_secret_value().encode(), canonical(report), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, str(signature.get("value", ""))):
        return False, "the signature does not match: the report was edited after it was signed"
    return True, f"signature valid ({ALGORITHM}, key id {signature['key_id']})"
