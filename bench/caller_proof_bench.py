"""What the caller proof (edge/upstream/proof.py, origin/caller.py) costs (never run as a test).

1. Per request, in this process: the edge signing one proof, the origin checking it, and, for
   the design notes' comparison, what checking a signed token (an EdDSA JWT through PyJWT and
   `cryptography`, the alternative to an HMAC) costs instead; as microseconds and ratios
   measured in one run.
2. With `--e2e`: throughput through a real edge to a real origin (dev OpenBao, tiny embeddings
   model, every request a cache miss, `--clients` keep-alive clients), with the proof on (origin
   requires it, edge signs) and off, in alternating windows of `--seconds`, `--rounds` times;
   the median of the per-round ratios and their spread.

    ./dev bench caller-proof [--e2e] [--seconds 5] [--rounds 5] [--clients 32] [--out FILE]
    (or .venv/bin/python bench/caller_proof_bench.py ...)

Writes bench/results/caller_proof.json (or --out). Servers and load share this machine's cores:
compare the ratios of one run, not absolute figures across runs.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import secrets
import statistics
import sys
import tempfile
import time
import timeit
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.lib import components, procs, rawhttp, results  # noqa: E402
from bench.lib.issuer import BenchIssuer  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "caller_proof.json"


def micro(repeat: int = 5, number: int = 20_000) -> dict:
    """Microseconds per sign, per check, and per EdDSA token check (best of `repeat`)."""
    import jwt
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from edge.upstream.proof import ProofSigner
    from origin.caller import CallerVerifier, new_key

    kid, key = new_key()
    record = {"kid": kid, "key": key}
    signer = ProofSigner(kid, base64.b64decode(key), time.time)
    check = CallerVerifier(lambda: record, required=True, max_age=120)
    target, rid, subject = "/v1/embeddings", secrets.token_hex(16), "sub:device:app:" + "a" * 43
    header = signer.header("POST", target, rid, subject).encode()
    check.verify(header, "POST", target.encode(), rid.encode())  # warm the key cache

    private = ed25519.Ed25519PrivateKey.generate()
    token = jwt.encode(
        {"sub": subject, "aud": "outpost", "exp": time.time() + 600}, private, "EdDSA"
    )
    public = private.public_key()

    def best(fn, n: int = number) -> float:  # type: ignore[no-untyped-def]
        return min(timeit.repeat(fn, number=n, repeat=repeat)) / n * 1e6

    sign_us = best(lambda: signer.header("POST", target, rid, subject))
    verify_us = best(lambda: check.verify(header, "POST", target.encode(), rid.encode()))
    token_us = best(
        lambda: jwt.decode(token, public, algorithms=["EdDSA"], audience="outpost"),
        n=number // 10,
    )
    return {
        "sign_us": round(sign_us, 2),
        "verify_us": round(verify_us, 2),
        "eddsa_token_verify_us": round(token_us, 2),
        "token_verify_over_hmac_verify": round(token_us / verify_us, 1),
    }


def e2e(seconds: float, rounds: int, clients: int, work: Path) -> dict:
    """Through a real edge to a real origin, proof on and off, alternating windows."""
    import hvac

    from outpost.modelkit.tiny import build_tiny_embeddings
    from vault import caller_key
    from vault.bootstrap import bootstrap
    from vault.server import ensure_state, start_dev_vault

    models = work / "models"
    build_tiny_embeddings(models / "emb", version=1, seed=0)
    token = secrets.token_hex(16)
    vault = start_dev_vault(procs.free_port(), token, work / "bao.log")
    servers: list[procs.Server] = []
    issuer = BenchIssuer()
    try:
        root = hvac.Client(url=vault.addr, token=token, timeout=5)
        paths = ensure_state(work / "vault")
        bootstrap(root, paths=paths)
        key = caller_key.ensure(root, [])
        vault_env = {
            "OUTPOST_VAULT_ADDR": vault.addr,
            "OUTPOST_VAULT_APPROLE_FILE": str(paths.origin_approle),
        }
        edges = {}
        for name, proof in (("off", False), ("on", True)):
            oport, eport = procs.free_port(), procs.free_port()
            origin_env = procs.clean_env(
                {**vault_env, "OUTPOST_ORIGIN_CALLER_PROOF_REQUIRED": str(proof).lower()}
            )
            servers.append(
                procs.start_server(
                    components.origin_argv(oport, models),
                    oport,
                    "/v2/health/ready",
                    work / f"origin-{name}.log",
                    env=origin_env,
                )
            )
            settings = {"caller_key": key} if proof else {}
            edge_env = procs.clean_env(components.edge_env(issuer.url, issuer.jwks_url, **settings))
            servers.append(
                procs.start_server(
                    components.edge_argv(eport, f"http://127.0.0.1:{oport}"),
                    eport,
                    "/healthz",
                    work / f"edge-{name}.log",
                    env=edge_env,
                )
            )
            edges[name] = eport
        auth = {"authorization": f"Bearer {issuer.token()}"}

        def request_for(port: int, run: str):  # type: ignore[no-untyped-def]
            def build(i: int) -> bytes:  # a new input each time: every request is a miss
                body = json.dumps({"model": "emb", "input": f"{run} request {i}"}).encode()
                return rawhttp.request_bytes(port, "/v1/embeddings", body, auth)

            return build

        rows = []
        for r in range(rounds):
            order = ["off", "on"] if r % 2 == 0 else ["on", "off"]
            row = {}
            for name in order:
                port = edges[name]
                done = asyncio.run(
                    rawhttp.closed_loop(
                        port, request_for(port, f"{r}-{name}"), clients, seconds, warmup=0.5
                    )
                )
                assert done.errors == 0, f"{name}: {done.errors} errors"
                row[name] = done.ok / done.elapsed
            rows.append(row)
        ratios = [row["on"] / row["off"] for row in rows]
        return {
            "clients": clients,
            "seconds": seconds,
            "rounds": [{k: round(v, 1) for k, v in row.items()} for row in rows],
            "ratio_on_over_off_median": round(statistics.median(ratios), 3),
            "ratio_spread": [round(min(ratios), 3), round(max(ratios), 3)],
        }
    finally:
        for server in servers:
            server.stop()
        issuer.close()
        vault.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--e2e", action="store_true", help="also measure through real processes")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    out = {**results.stamp("caller-proof"), "per_request": micro()}
    print(json.dumps(out["per_request"]))
    if args.e2e:
        with tempfile.TemporaryDirectory() as tmp:
            out["through_the_edge"] = e2e(args.seconds, args.rounds, args.clients, Path(tmp))
        print(json.dumps(out["through_the_edge"]))
    results.write_json(args.out, out)


if __name__ == "__main__":
    main()
