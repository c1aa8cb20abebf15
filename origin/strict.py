"""One rule for every number and identifier the origin reads from a request.

ASCII only, a full match of a fixed pattern, a bounded length; a value is converted (`int`) only
after its text matched, so nothing a client sends reaches Python's lenient parsers: `int("²")`
raises, `int("\u0661")` (an Arabic-Indic one) is 1, `int("1_000")` is 1000, `int` of 5000
digits raises, and `str.isdigit` takes them all. `re` patterns with explicit ranges (`[0-9]`,
never `\\d`) match ASCII only; `fullmatch` leaves no trailing newline, as `$` would.
"""

from __future__ import annotations

import re

# A model version in a path (`/versions/{v}`) or a gRPC `model_version`: 1 to 999 999 999.
VERSION = re.compile(r"[1-9][0-9]{0,8}")
# A byte count in a header (Content-Length, Inference-Header-Content-Length).
SIZE = re.compile(r"[0-9]{1,15}")
# A refresh token: `ort.<family: 16 random bytes, base64url>.<generation>.<HMAC-SHA256>`.
REFRESH_TOKEN = re.compile(r"ort\.([A-Za-z0-9_-]{22})\.([1-9][0-9]{0,8})\.([A-Za-z0-9_-]{43})")
# A device id: the RFC 7638 SHA-256 thumbprint of the device key, base64url.
DEVICE_ID = re.compile(r"[A-Za-z0-9_-]{43}")
# An app API key: `opk.<app name>.<32 random bytes, base64url>` (outpost/apps.py names apps).
API_KEY = re.compile(r"opk\.([a-z0-9][a-z0-9-]{0,62})\.[A-Za-z0-9_-]{43}")
# A client id or client secret (RFC 6749 appendix A.1-A.2: VSCHAR), bounded.
CLIENT_ID = re.compile(r"[\x20-\x7e]{1,128}")
CLIENT_SECRET = re.compile(r"[\x20-\x7e]{1,256}")
# HTTP Basic credentials (RFC 7617): base64 of at most 2 KB.
BASIC = re.compile(r"[A-Za-z0-9+/]{1,2732}={0,2}")


def version(text: str) -> int | None:
    """A model version number, or None when `text` is not one."""
    return int(text) if VERSION.fullmatch(text) else None


def size(text: str | bytes) -> int | None:
    """A byte count from a header (surrounding spaces allowed), or None."""
    if isinstance(text, bytes):
        text = text.decode("latin-1")
    text = text.strip(" \t")
    return int(text) if SIZE.fullmatch(text) else None
