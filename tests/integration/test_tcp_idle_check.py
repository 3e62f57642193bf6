"""tcp_idle_check against real connections: HAProxy sends traffic to the service address
(127.0.0.2) and health checks to the host address (127.0.0.1), as LVS-DR and the runbook's
``tcpdump dst eventbus.svc...`` assume. Needs root, as the module does."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness._net import LOOPBACK, wait_until
from tests.harness.collection import run_module
from tests.harness.haproxy import HAProxyServer
from tests.harness.http_backend import HttpBackend
from tests.harness.traffic import Traffic

SERVICE = "127.0.0.2"
METHODS = ["tcpdump", "nftables"]

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="tcp_idle_check needs root")


@pytest.fixture
def dr_lb(tmp_path: Path) -> Iterator[tuple[HAProxyServer, dict[str, HttpBackend]]]:
    backends = {n: HttpBackend(n, (LOOPBACK, SERVICE)) for n in ("kafka1001", "kafka1002")}
    for backend in backends.values():
        backend.start()
    lb = HAProxyServer(
        workdir=tmp_path / "haproxy",
        servers={n: b.port for n, b in backends.items()},
        traffic_address=SERVICE,
        check_address=LOOPBACK,
    )
    lb.start()
    try:
        wait_until(
            lambda: all(lb.server_state(s)["srv_op_state"] == "2" for s in backends),
            20,
            "servers up",
        )
        yield lb, backends
    finally:
        lb.stop()
        for backend in backends.values():
            backend.stop()


def idle_check(**args) -> dict:
    return run_module("tcp_idle_check", {"window": 1, "timeout": 2, **args})


def pool(lb: HAProxyServer, state: str) -> None:
    result = run_module(
        "pool_member",
        {
            "backend": "haproxy",
            "haproxy_socket": str(lb.socket_path),
            "haproxy_backend": "eventbus",
            "name": "kafka1001",
            "state": state,
            "wait": True,
        },
    )
    assert not result.get("failed"), result.get("msg")


@pytest.mark.parametrize("method", METHODS)
def test_rate_falls_to_zero_after_depool_and_returns_after_repool(dr_lb, method: str) -> None:
    lb, backends = dr_lb
    port = backends["kafka1001"].port
    with Traffic(f"{lb.frontend_url}/v1/events") as traffic:
        busy = idle_check(port=port, destination=SERVICE, method=method)
        assert busy["failed"] is True
        assert 10 < busy["rate"] < 200  # one client at most ~100 requests/s, over two servers
        assert busy["top_sources"][0]["address"] == LOOPBACK  # HAProxy's own source address
        assert f"port {port} still gets" in busy["msg"]
        assert len(busy["samples"]) >= 1

        # depooled (HAProxy's drain): HAProxy keeps health-checking it (it would not in
        # maintenance), and those checks must not count
        pool(lb, "depooled")
        quiet = idle_check(port=port, destination=SERVICE, method=method, timeout=10)
        assert not quiet.get("failed"), quiet.get("msg")
        assert quiet["idle"] is True
        assert quiet["rate"] == 0
        assert quiet["method"] == method

        # health checks still reach the host address: without the destination filter the
        # port is not idle, which is why the runbook filters on dst
        checks = idle_check(port=port, method=method)
        assert checks["failed"] is True
        assert 0 < checks["rate"] < 10  # one check every 500 ms

        pool(lb, "pooled")
        back = idle_check(port=port, destination=SERVICE, method=method)
        assert back["failed"] is True
        assert back["rate"] > 1
    assert traffic.errors == 0


class Dialer:
    """Opens TCP connections to the service address from a given source, for a bounded time."""

    def __init__(self, source: str, port: int, seconds: float = 30) -> None:
        self.source, self.port, self.deadline = source, port, time.monotonic() + seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set() and time.monotonic() < self.deadline:
            with socket.socket() as sock:
                sock.bind((self.source, 0))
                sock.connect((SERVICE, self.port))
            time.sleep(0.05)

    def __enter__(self) -> Dialer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


@pytest.mark.parametrize("method", METHODS)
def test_ignored_sources_do_not_count(dr_lb, method: str) -> None:
    _lb, backends = dr_lb
    port = backends["kafka1001"].port
    with Dialer("127.0.0.3", port):
        seen = idle_check(port=port, destination=SERVICE, method=method)
        assert seen["failed"] is True
        assert seen["top_sources"][0]["address"] == "127.0.0.3"
        ignored = idle_check(
            port=port, destination=SERVICE, method=method, ignore_sources=["127.0.0.3/32"]
        )
        assert not ignored.get("failed"), ignored.get("msg")
        assert ignored["count"] == 0


def tcpdump_running(port: int) -> bool:
    """Whether a tcpdump capturing SYNs to ``port`` runs (the module's idle sampler)."""
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"tcpdump") and f"port {port}".encode() in b" ".join(argv):
            return True
    return False


def test_wait_drained_waits_for_established_connections(dr_lb) -> None:
    """The module must not return while a connection is established. The test closes the
    held connection only once the module is seen waiting for it (its idle sampling, a tcpdump,
    has come and gone; a 2 s window is easy to see), so the proof does not depend on how long
    Ansible takes to start the module."""
    _lb, backends = dr_lb
    port = backends["kafka1001"].port
    held = socket.create_connection((SERVICE, port))
    outcome: dict = {}
    module = threading.Thread(
        target=lambda: outcome.update(
            idle_check(port=port, destination=SERVICE, wait_drained=True, window=2, timeout=60)
        ),
        daemon=True,
    )
    try:
        module.start()
        wait_until(lambda: tcpdump_running(port), 60, "the module's idle sampling to start")
        wait_until(lambda: not tcpdump_running(port), 60, "the module's idle sampling to end")
        time.sleep(2)  # the module now only waits for the held connection
        assert module.is_alive(), f"returned with a connection still established: {outcome}"
    finally:
        held.close()
    module.join(60)
    assert not module.is_alive(), "still waiting 60 s after the connection was closed"
    assert not outcome.get("failed"), outcome.get("msg")
    assert outcome["established"] == []


def test_bad_input_fails_clearly() -> None:
    unresolvable = idle_check(destination="no-such-host.invalid")
    assert unresolvable["failed"] is True
    assert "cannot resolve destination no-such-host.invalid" in unresolvable["msg"]
    bad_net = idle_check(ignore_sources=["10.0.0.0/33"])
    assert bad_net["failed"] is True
    assert "ignore_sources" in bad_net["msg"]
