"""The quota Durable Object (edge/limits/durable.py) as the Worker runs it: real Pyodide, the
real `workers` SDK, the class the Worker's entry exports, reached through DurableStore from two
"isolates". The object's SQLite storage and the namespace binding are FAKES (named so in
quota_driver.py): Cloudflare's network cannot run here."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.edge.conftest import ROOT


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict:
    from edge.vendor import vendor
    from tests.edge.pyodide.test_worker_in_pyodide import sdk_wheel

    node = shutil.which("node")
    assert node, "node is required (see package.json)"
    work = tmp_path_factory.mktemp("quota")
    modules = vendor(work / "python_modules")
    here = Path(__file__).parent
    out = subprocess.run(
        [node, str(here / "run_worker.mjs"), str(ROOT), str(modules), str(sdk_wheel())],
        env={**os.environ, "DRIVER": str(here / "quota_driver.py"), "WORKER_ENV": "{}"},
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_two_isolates_share_one_subjects_buckets(results: dict) -> None:
    assert results["one_subject"] == [True, True, True, False, False, False]


def test_a_refusal_takes_nothing(results: dict) -> None:
    assert results["heavy"] is False
    allowed, remaining = results["after_heavy"]
    assert allowed and remaining == [2, 99]  # both buckets charged once, by the second call


def test_app_buckets_are_shared_and_refusals_give_back(results: dict) -> None:
    assert results["app"] == [True, True, True, True, False, False]
    assert results["given_back"] == 2  # sub:d5's request bucket got its token back
    assert results["objects"] >= 2 and results["statements"] > 0


def test_a_proof_one_isolate_accepted_is_refused_by_another_uncharged(results: dict) -> None:
    assert results["proof"] == [True, True, False, True]
    assert results["proof_remaining"] == 1


def test_proof_ids_past_their_lifetime_are_dropped(results: dict) -> None:
    assert results["expired_reused"] is False  # its lifetime was over: not a replay any more
    assert (results["expired_kept"], results["live_kept"]) == (0, 1)


def test_a_request_its_quota_refuses_stores_no_proof_id(results: dict) -> None:
    assert results["refused_kept"] == [False, 0]


def test_with_app_buckets_a_replay_gives_back_and_a_refusal_stores_nothing(results: dict) -> None:
    assert results["app_replay"] == [True, 1]
    assert results["app_refused_kept"] == [False, 0]
