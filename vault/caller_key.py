"""The caller key: what the edge signs its caller proofs with and the origins check them with.

One KV v2 record, `secret/outpost/origin/caller` (readable by the origin's policy, like its other
secrets): `kid` and `key` (standard base64 of 32 random bytes), plus `previous_kid` and
`previous_key` while a rotation overlaps. Origins accept both; the edge signs with the current
one (`OUTPOST_EDGE_CALLER_KEY` = `edge_setting(record)`).

Rotation (docs/vault.md): `rotate` makes a new current key and keeps the old one as previous;
once every origin has refreshed its snapshot (`refresh_interval`, 60 s by default) the edges get
the new key; once every edge signs with it (and `caller_proof_max_age_seconds` has passed),
`retire_previous` drops the old one. Every write is check-and-set, so two operators cannot lose a
key between them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import hvac
import hvac.exceptions

from origin.caller import SECRET_NAME, new_key, parse_record

KV_MOUNT = "secret"
PATH = f"outpost/origin/{SECRET_NAME}"


def _read(client: hvac.Client) -> tuple[dict[str, Any], int] | None:
    try:
        resp = client.secrets.kv.v2.read_secret_version(
            path=PATH, mount_point=KV_MOUNT, raise_on_deleted_version=True
        )
    except hvac.exceptions.InvalidPath:
        return None
    return dict(resp["data"]["data"]), int(resp["data"]["metadata"]["version"])


def _write(client: hvac.Client, record: Mapping[str, Any], cas: int) -> None:
    client.secrets.kv.v2.create_or_update_secret(
        path=PATH, secret=dict(record), cas=cas, mount_point=KV_MOUNT
    )


def edge_setting(record: Mapping[str, Any]) -> str:
    """The edge's `caller_key` setting for the record's current key: `<kid>:<base64 key>`."""
    parse_record(record)  # raises ValueError (naming no value) when malformed
    return f"{record['kid']}:{record['key']}"


def current_setting(client: hvac.Client) -> str:
    """The edge's setting for the current key (read only); LookupError when there is none."""
    found = _read(client)
    if found is None:
        raise LookupError(f"no caller key at {KV_MOUNT}/{PATH}: run the bootstrap first")
    return edge_setting(found[0])


def ensure(client: hvac.Client, created: list[str]) -> str:
    """Create the record unless a well-formed one exists; the edge's setting for it."""
    found = _read(client)
    if found is not None:
        try:
            return edge_setting(found[0])
        except ValueError:
            pass  # malformed: replaced below (origins refused every proof with it anyway)
    kid, key = new_key()
    record = {"kid": kid, "key": key}
    _write(client, record, cas=found[1] if found else 0)
    created.append(f"kv {PATH}")
    return edge_setting(record)


def rotate(client: hvac.Client) -> str:
    """A new current key; the current one becomes the previous (a previous one is dropped).
    Returns the edge's new setting."""
    found = _read(client)
    if found is None:
        raise LookupError(f"no caller key at {KV_MOUNT}/{PATH}: run the bootstrap first")
    current, version = found
    parse_record(current)
    kid, key = new_key()
    record = {
        "kid": kid,
        "key": key,
        "previous_kid": current["kid"],
        "previous_key": current["key"],
    }
    _write(client, record, cas=version)
    return edge_setting(record)


def retire_previous(client: hvac.Client) -> bool:
    """Drop the previous key (once every edge signs with the current one); False when there
    was none."""
    found = _read(client)
    if found is None or not found[0].get("previous_kid"):
        return False
    current, version = found
    _write(client, {"kid": current["kid"], "key": current["key"]}, cas=version)
    return True
