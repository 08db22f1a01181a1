"""One-time passwords as an authenticator app computes them (RFC 6238 TOTP over RFC 4226 HOTP).

Keycloak keeps a TOTP secret as text and keys the HMAC with its UTF-8 bytes (the app is given
those bytes in base32), so the tests compute codes from the text the realm stores.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct
import time
from urllib.parse import parse_qs, urlsplit

PERIOD = 30


def totp(secret: str, at: float | None = None, *, digits: int = 6, period: int = PERIOD) -> str:
    """The code of ``secret`` (the realm's stored text) for the period holding ``at`` (now by default)."""
    counter = int((time.time() if at is None else at) // period)
    digest = hmac.new(secret.encode(), struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10**digits).zfill(digits)


def fresh_totp(secret: str, used: set[str]) -> str:
    """A code not used yet: Keycloak refuses a code twice, so wait for the next period when needed."""
    while (code := totp(secret)) in used:
        time.sleep(max(0.2, PERIOD - time.time() % PERIOD))
    used.add(code)
    return code


def secret_of(uri: str) -> str:
    """The secret as Keycloak keeps it, read back from an ``otpauth://`` URI (what an app would scan)."""
    parts = urlsplit(uri)
    assert (parts.scheme, parts.netloc) == ("otpauth", "totp"), uri
    key = parse_qs(parts.query)["secret"][0]
    return base64.b32decode(key + "=" * (-len(key) % 8)).decode()
