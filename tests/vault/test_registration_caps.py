"""Registration you can afford: floods from one address or with one app key are capped, answered
429 with Retry-After (problem+json carrying the OAuth error members), before anything reaches
Vault; a spoofed X-Forwarded-For does not buy a new bucket. Real OpenBao, real uvicorn."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from origin.identity.limits import ClientAddress, TokenBuckets
from outpost import devicekey
from outpost.devicekey import DeviceKey
from tests.vault.conftest import (
    TOKEN_ENDPOINT,
    DevVault,
    ServedApp,
    build_app,
    identity_settings,
    identity_stack,
)


def register(url: str, api_key: str, **headers: str) -> httpx.Response:
    with httpx.Client(timeout=10) as client:
        return devicekey.register(
            client, f"{url}/oauth/token", api_key, DeviceKey(), htu=TOKEN_ENDPOINT, headers=headers
        )


@pytest.fixture
def capped(dev_vault: DevVault, origin_creds) -> Iterator[ServedApp]:
    settings = identity_settings(
        register_per_address=3,
        register_address_window=3600,
        register_per_app=5,
        register_app_window=3600,
    )
    # uvicorn believes X-Forwarded-For from loopback (where the local edge runs): the tests
    # play the edge, naming the client address in that header.
    sc, ic = identity_stack(dev_vault.addr, origin_creds, settings)
    with ServedApp(build_app(sc, ic)) as srv:
        yield srv


def test_a_flood_from_one_address_is_capped_with_retry_after(
    capped: ServedApp, dev_vault: DevVault
):
    key = dev_vault.boot.demo_api_key
    hdr = {"X-Forwarded-For": "198.51.100.7"}
    assert [register(capped.url, key, **hdr).status_code for _ in range(3)] == [200] * 3
    refused = register(capped.url, key, **hdr)
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.headers["cache-control"] == "no-store"
    assert 1000 <= int(refused.headers["retry-after"]) <= 1200  # one registration per 1200 s
    body = refused.json()
    assert body["type"] == "urn:outpost:problem:registration-rate-limited"
    assert body["status"] == 429 and body["request_id"]
    assert body["error"] == "temporarily_unavailable" and body["error_description"]
    # Another address still registers (the app's own cap has room for it).
    assert register(capped.url, key, **{"X-Forwarded-For": "198.51.100.8"}).status_code == 200
    metrics = httpx.get(f"{capped.url}/metrics").text
    assert 'outpost_registrations_limited_total{cap="address"} 1.0' in metrics


def test_a_flood_with_one_app_key_from_many_addresses_is_capped(
    capped: ServedApp, dev_vault: DevVault
):
    key = dev_vault.boot.demo_api_key
    codes = [
        register(capped.url, key, **{"X-Forwarded-For": f"203.0.113.{i}"}).status_code
        for i in range(8)
    ]
    assert codes == [200] * 5 + [429] * 3
    last = register(capped.url, key, **{"X-Forwarded-For": "203.0.113.200"})
    assert last.status_code == 429 and "app" in last.json()["detail"]


def test_wrong_keys_do_not_spend_the_apps_cap(capped: ServedApp, dev_vault: DevVault):
    """An attacker without the key cannot lock the app's real installs out."""
    for i in range(8):
        bad = register(capped.url, "opk.demo-app.wrong", **{"X-Forwarded-For": f"192.0.2.{i}"})
        assert bad.status_code == 401
    ok = register(capped.url, dev_vault.boot.demo_api_key, **{"X-Forwarded-For": "192.0.2.99"})
    assert ok.status_code == 200, ok.text


def test_forwarded_for_from_an_untrusted_peer_is_ignored(dev_vault: DevVault, origin_creds):
    """The address is uvicorn's: X-Forwarded-For counts only from FORWARDED_ALLOW_IPS peers
    (loopback by default, where the local edge runs); trusting nobody, the peer is the client."""
    settings = identity_settings(register_per_address=2, register_address_window=3600)
    sc, ic = identity_stack(dev_vault.addr, origin_creds, settings)
    with ServedApp(build_app(sc, ic), forwarded_allow_ips="192.0.2.1") as srv:
        key = dev_vault.boot.demo_api_key
        codes = [
            register(srv.url, key, **{"X-Forwarded-For": f"10.9.{i}.1"}).status_code
            for i in range(4)
        ]
    assert codes == [200, 200, 429, 429]


def test_buckets_refill_over_the_window():
    now = [0.0]
    buckets = TokenBuckets(clock=lambda: now[0])
    assert [buckets.take("k", 2, 10) for _ in range(3)] == [None, None, 5]
    now[0] = 5.0
    assert buckets.take("k", 2, 10) is None
    assert buckets.take("k", 2, 10) == 5


def test_buckets_are_bounded():
    buckets = TokenBuckets(max_keys=100)
    for i in range(1000):
        buckets.take(f"addr:{i}", 1, 60)
    assert len(buckets._buckets) == 100


def test_client_address_buckets():
    addr = ClientAddress()
    # One IPv6 host owns a /64: all of it is one bucket; v4-mapped is the v4 address.
    assert addr.bucket("2001:db8:1:2::1") == addr.bucket("2001:db8:1:2:ffff::9")
    assert addr.bucket("2001:db8:1:2::1") != addr.bucket("2001:db8:1:3::1")
    assert addr.bucket("::ffff:198.51.100.7") == addr.bucket("198.51.100.7") == "addr:198.51.100.7"
    assert addr.bucket("x" * 500) == "addr:" + "x" * 64
