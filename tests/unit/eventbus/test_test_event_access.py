"""/v1/_test/events produces to Kafka: who may ask. The service's host (loopback, or a
connection to one of its own addresses from that address) and the configured networks; a
client anywhere else is refused (403). The lab checks the same from the controller and from a
host (extensions/molecule/default/tests/test_converged.py)."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from aiohttp.test_utils import make_mocked_request
from eventbus.http import from_this_host_or


class Transport:
    """What asyncio's transport tells about a connection: its two ends."""

    def __init__(self, peer: str, local: str) -> None:
        self.extra = {"peername": (peer, 40000), "sockname": (local, 8085)}

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.extra.get(name, default)

    def is_closing(self) -> bool:
        return False


def allowed(peer: str, local: str, networks: tuple[str, ...] = ()) -> bool:
    request = make_mocked_request("GET", "/v1/_test/events", transport=Transport(peer, local))
    return from_this_host_or(request, tuple(ipaddress.ip_network(n) for n in networks))


@pytest.mark.parametrize(
    ("peer", "local"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("127.0.0.53", "127.0.0.1"),
        ("::1", "::1"),
        ("10.77.0.11", "10.77.0.11"),  # the runbook, on the host, to the host's address
        ("::ffff:10.77.0.11", "10.77.0.11"),  # a dual-stack socket's view of the same
        ("fe80::1%eth0", "fe80::1%eth0"),
    ],
)
def test_the_host_itself_may_ask(peer: str, local: str) -> None:
    assert allowed(peer, local)


@pytest.mark.parametrize(
    ("peer", "local"),
    [
        ("10.77.0.1", "10.77.0.11"),  # the controller, or any client
        ("10.77.0.10", "10.77.0.11"),  # the load balancer: every client behind it
        ("::ffff:10.77.0.1", "::ffff:10.77.0.11"),
        ("2620:0:861::5", "2620:0:861::1"),
        ("not-an-address", "10.77.0.11"),
        ("", "10.77.0.11"),
    ],
)
def test_anyone_else_is_refused(peer: str, local: str) -> None:
    assert not allowed(peer, local)


def test_listed_networks_may_ask() -> None:
    assert allowed("10.77.0.1", "10.77.0.11", ("10.77.0.0/30",))
    assert not allowed("10.77.0.5", "10.77.0.11", ("10.77.0.0/30",))
    assert allowed("::ffff:10.77.0.1", "10.77.0.11", ("10.77.0.1/32",))
