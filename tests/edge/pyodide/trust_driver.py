"""Runs inside Pyodide (see run_trust.mjs): the cases test_trust_in_pyodide.py prepared, checked by
the edge's modules on the Workers platform. Returns one JSON document."""

from __future__ import annotations

import json
import sys
import time


async def run(cases_file: str) -> str:
    from edge.auth.attestation import AttestationVerifier
    from edge.auth.dpop import DpopError, DpopVerifier
    from edge.config import DpopSettings, parse_attestation
    from edge.runtime.workers import WorkersPlatform

    with open(cases_file) as fh:
        cases = json.load(fh)
    platform = WorkersPlatform()
    dpop = DpopVerifier(DpopSettings(), platform)
    out: dict = {"python": sys.version.split()[0], "dpop": {}, "attestation": {}}

    async def check(case: dict) -> str:
        try:
            await dpop.check_request(route_class="inference", **case)
        except DpopError as err:
            return err.error
        return "ok"

    for name, case in cases["dpop"]:  # in order: the replay comes after the first use
        out["dpop"][name] = await check(case)

    timed = cases["timed"]
    start = time.perf_counter()
    accepted = [await check(case) for case in timed]
    out["ms_per_proof"] = (time.perf_counter() - start) * 1000 / len(timed)
    out["timed_accepted"] = accepted.count("ok")

    attestation = AttestationVerifier(parse_attestation(cases["attestation_settings"]), platform)
    for name, token in cases["attestation"]:
        result = await attestation.check("inference", token)
        out["attestation"][name] = result.result
    return json.dumps(out)
