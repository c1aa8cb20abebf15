"""What `outpost up --lan` advertises: the URL phones use and the QR code that carries it.

The end-to-end check (a phone in its own network namespace) is `tests/stack/test_lan.py`; these
pin the parts that need no network.
"""

from __future__ import annotations

import qrcode

from outpost import lan
from outpost.stack import StackSettings, url_for


def test_the_drawn_qr_code_is_the_qr_code_of_the_url() -> None:
    url = "http://192.168.1.20:8787"
    reference = qrcode.QRCode(border=2, error_correction=qrcode.constants.ERROR_CORRECT_M)
    reference.add_data(url)
    modules = reference.get_matrix()
    drawn = lan.qr_matrix_from_text(str(lan.qr_text(url)))
    assert drawn[: len(modules)] == modules
    assert lan.qr_matrix_from_text(str(lan.qr_text(url + "0")))[: len(modules)] != modules


def test_urls_for_wildcard_loopback_and_ipv6_hosts() -> None:
    assert url_for("0.0.0.0", 8787) == "http://127.0.0.1:8787"
    assert url_for("::", 8787) == "http://[::1]:8787"
    assert url_for("192.168.1.20", 8787) == "http://192.168.1.20:8787"
    assert lan.is_wildcard("0.0.0.0") and not lan.is_wildcard("127.0.0.1")
    assert lan.is_loopback("127.0.0.2") and lan.is_loopback("localhost")
    assert not lan.is_loopback("192.168.1.20") and not lan.is_loopback("not-an-ip")


def test_the_public_url_is_the_given_one_or_the_edges_own_unless_it_listens_everywhere() -> None:
    assert StackSettings(edge_port=1234).resolve_public_url() == "http://127.0.0.1:1234"
    assert (
        StackSettings(host="192.168.1.20", edge_port=1234).resolve_public_url()
        == "http://192.168.1.20:1234"
    )
    given = StackSettings(lan=True, public_url="http://10.0.0.5:8787/")
    assert given.resolve_public_url() == "http://10.0.0.5:8787"
    everywhere = StackSettings(lan=True, edge_port=1234)
    assert everywhere.edge_host == "0.0.0.0" and everywhere.edge_url == "http://127.0.0.1:1234"
    # Here the detected address is this machine's own (whatever its network): never loopback.
    address = lan.lan_address()
    if address is not None:
        assert everywhere.resolve_public_url() == f"http://{address}:1234"
        assert not lan.is_loopback(address)
