"""`outpost up --lan`: a phone on the same network reaches the edge, and only the edge.

There is no phone here, so the test builds one: two network namespaces joined by a veth pair
(`tests/stack/netns.py`). The stack runs in the "server" namespace exactly as `outpost up --lan`
runs on a laptop; the client runs in the "phone" namespace and reaches the edge only through the
server's LAN address. No traffic leaves the machine.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from outpost.lan import qr_matrix_from_text, qr_text
from tests.conftest import ROOT, free_port
from tests.stack import netns

pytestmark = pytest.mark.skipif(netns.available() is not None, reason=str(netns.available()))


def _outpost_up(argv_prefix: list[str], state_dir: Path, *args: str) -> subprocess.Popen[bytes]:
    log = open(state_dir / "up.log", "ab")  # noqa: SIM115 (closed with the process below)
    env_cmd = [
        "env",
        f"OUTPOST_STACK_STATE_DIR={state_dir}",
        "HF_HUB_OFFLINE=1",
    ]
    return subprocess.Popen(
        [*argv_prefix, *env_cmd, sys.executable, "-m", "outpost", "up", *args],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )


def _wait_for(path: Path, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"outpost up exited {proc.returncode}:\n{log.read_text()[-4000:]}")
        if path.exists():
            return json.loads(path.read_text())
        time.sleep(0.3)
    raise AssertionError(f"outpost up not ready after {timeout}s:\n{log.read_text()[-4000:]}")


def _drawn_qr(log: str) -> str:
    """The QR code block `outpost up` printed: the run of lines made only of half blocks."""
    lines = log.splitlines()
    heading = next(
        (i for i, line in enumerate(lines) if "From a phone on this network" in line), None
    )
    if heading is None:  # not printed yet
        return ""
    block = []
    for line in lines[heading + 1 :]:
        if line and set(line) <= set("█▀▄ "):
            block.append(line)
        else:
            break
    return "\n".join(block)


def test_a_phone_on_the_lan_registers_and_embeds_through_the_edge_and_reaches_nothing_else(
    tmp_path: Path,
) -> None:
    from outpost.modelkit.tiny import build_tiny_embeddings

    models = tmp_path / "models"
    build_tiny_embeddings(models / "minilm")
    state = tmp_path / "state"
    state.mkdir()
    vault_port, origin_port, edge_port = free_port(), free_port(), free_port()
    with netns.lan("i28") as net:
        proc = _outpost_up(
            net.run_in(net.server, []),
            state,
            "--lan",
            *("--vault-port", str(vault_port), "--origin-ports", str(origin_port)),
            *("--edge-port", str(edge_port), "--models-dir", str(models), "--skip-model-build"),
        )
        try:
            stack = _wait_for(state / "stack.json", proc, state / "up.log", timeout=180)
            lan_url = f"http://{netns.SERVER_IP}:{edge_port}"
            assert stack["edge"]["public_url"] == lan_url
            assert stack["edge"]["url"] == f"http://127.0.0.1:{edge_port}"
            assert stack["issuer"] == lan_url
            assert [o["url"] for o in stack["origins"]] == [f"http://127.0.0.1:{origin_port}"]
            assert all(o["grpc"].startswith("127.0.0.1:") for o in stack["origins"])

            # The QR code in the terminal encodes the LAN URL (printed just after stack.json is
            # written: wait for the whole block).
            want = qr_matrix_from_text(str(qr_text(lan_url)))
            deadline = time.monotonic() + 30
            drawn = _drawn_qr((state / "up.log").read_text())
            while qr_matrix_from_text(drawn) != want and time.monotonic() < deadline:
                time.sleep(0.2)
                drawn = _drawn_qr((state / "up.log").read_text())
            assert qr_matrix_from_text(drawn) == want

            phone = subprocess.run(
                net.run_in(
                    net.phone,
                    [
                        sys.executable,
                        "-m",
                        "tests.stack.phone_client",
                        lan_url,
                        stack["demo_credentials_file"],
                        str(origin_port),
                        str(vault_port),
                    ],
                ),
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert phone.returncode == 0, phone.stderr[-3000:]
            seen = json.loads(phone.stdout)
        finally:
            proc.send_signal(signal.SIGINT)
            code = proc.wait(60)
    assert code == 0, (state / "up.log").read_text()[-3000:]

    assert seen["healthz"] == 200
    # Discovery, done through the LAN address, points the phone back at the LAN address.
    assert seen["discovery"] == {
        "issuer": lan_url,
        "token_endpoint": f"{lan_url}/oauth/token",
        "jwks_uri": f"{lan_url}/.well-known/jwks.json",
    }
    assert seen["jwks_keys"] >= 1
    assert seen["token_status"] == 200 and seen["token_iss"] == lan_url
    assert seen["token_type"] == "DPoP"  # bound to the phone's key
    print(f"phone: registered in {seen['register_ms']} ms, embedded in {seen['embedding_ms']} ms")
    assert seen["embedding_status"] == 200 and seen["embedding_model"] == "minilm"
    assert seen["embedding_dims"] > 0
    # Only the edge is on the LAN: the origins and Vault answer on the server's loopback only.
    assert seen["origin_port_open"] is False
    assert seen["vault_port_open"] is False


def test_lan_mode_without_a_network_is_one_clear_error_before_anything_starts(
    tmp_path: Path,
) -> None:
    with netns.namespace(f"i28nonet{free_port()}") as isolated:
        proc = _outpost_up(
            ["ip", "netns", "exec", isolated],
            tmp_path,
            "--lan",
            "--skip-model-build",
            *("--vault-port", str(free_port())),
        )
        code = proc.wait(60)
    log = (tmp_path / "up.log").read_text()
    assert code == 1
    assert "no LAN address found" in log and "hint:" in log and "--host" in log
    assert "Traceback" not in log
    assert not (tmp_path / "vault").exists()  # nothing was started
