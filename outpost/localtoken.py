"""`outpost token`: an access token from the running local stack's real issuer.

It uses the demo service's client credentials (client_credentials grant through the edge), which
`outpost up` bootstrapped into Vault and wrote to a 0600 file in the state dir. The secret is sent
only in the request; it is never printed.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from outpost.errors import OutpostError


def _read_json(path: Path, what: str) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise OutpostError(f"{path}: missing ({what})", hint="start the stack: ./dev up") from None
    except ValueError:
        raise OutpostError(f"{path}: not valid JSON ({what})", hint="restart ./dev up") from None


def fetch_local_token(state_file: Path, scope: str = "inference models:read") -> str:
    """Return an access token (JWT) for the demo service from the stack in `state_file`."""
    state = _read_json(state_file, "the running stack's state file")
    creds = _read_json(Path(state["demo_credentials_file"]), "demo credentials")
    url = f"{state['edge']['url']}/oauth/token"
    try:
        resp = httpx.post(
            url,
            data={"grant_type": "client_credentials", "scope": scope},
            auth=(creds["client_id"], creds["client_secret"]),
            timeout=10.0,
        )
    except httpx.HTTPError as exc:
        raise OutpostError(f"{url}: {type(exc).__name__}", hint="is ./dev up running?") from None
    if resp.status_code != 200:
        try:
            reason = resp.json().get("error_description") or resp.json().get("detail")
        except ValueError:
            reason = resp.text[:200]
        raise OutpostError(f"token request refused ({resp.status_code}): {reason}")
    return resp.json()["access_token"]
