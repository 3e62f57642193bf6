"""pool_member with backend=haproxy against a real HAProxy carrying live traffic."""

from __future__ import annotations

import threading
import time
import urllib.request

import pytest

from tests.harness._net import LOOPBACK, free_port, wait_until
from tests.harness.collection import run_module
from tests.harness.haproxy import HAProxyServer
from tests.harness.http_backend import HttpBackend
from tests.harness.traffic import Traffic


@pytest.fixture
def lb(haproxy: HAProxyServer, http_backends: dict[str, HttpBackend]) -> HAProxyServer:
    wait_until(
        lambda: all(haproxy.server_state(s)["srv_op_state"] == "2" for s in http_backends),
        20,
        "both servers up by health check",
    )
    return haproxy


def member(lb: HAProxyServer, check: bool = False, **args) -> dict:
    base = {
        "backend": "haproxy",
        "haproxy_socket": str(lb.socket_path),
        "haproxy_backend": "eventbus",
    }
    return run_module("pool_member", {**base, **args}, check=check)


def grows(backend: HttpBackend, seconds: float = 1.0) -> bool:
    before = backend.requests
    time.sleep(seconds)
    return backend.requests > before


def test_depool_stops_traffic_and_repool_brings_it_back(
    lb: HAProxyServer, http_backends: dict[str, HttpBackend]
) -> None:
    first, second = http_backends["kafka1001"], http_backends["kafka1002"]
    with Traffic(f"{lb.frontend_url}/v1/events") as traffic:
        assert grows(first)
        assert grows(second)

        depooled = member(lb, name="kafka1001", state="depooled", wait=True)
        assert not depooled.get("failed"), depooled.get("msg")
        assert depooled["changed"] is True
        assert depooled["before"] == {
            "state": "pooled",
            "weight": 10,
            "health": "up",
            "serving": True,
        }
        assert depooled["after"]["state"] == "depooled"
        assert depooled["pool"]["kafka1002"]["serving"] is True
        # depooled is HAProxy's drain (forced): no new connections, health checks go on
        assert lb.server_state("kafka1001")["srv_admin_state"] == "8"
        time.sleep(0.3)  # a request already past the balancer may still land
        assert not grows(first)
        assert grows(second)

        assert member(lb, name="kafka1001", state="depooled")["changed"] is False

        repooled = member(lb, name="kafka1001", state="pooled", wait=True)
        assert repooled["changed"] is True
        assert repooled["after"]["state"] == "pooled"
        wait_until(lambda: grows(first, 0.5), 15, "traffic back on kafka1001")
    assert traffic.errors == 0


def test_depool_waits_for_open_sessions_to_finish(
    lb: HAProxyServer, http_backends: dict[str, HttpBackend]
) -> None:
    # Hold a 3-second request on each server, then depool kafka1001 and wait for its sessions.
    answers: list[int] = []

    def slow() -> None:
        with urllib.request.urlopen(f"{lb.frontend_url}/slow/3", timeout=10) as resp:
            answers.append(resp.status)

    threads = [threading.Thread(target=slow) for _server in range(2)]
    for thread in threads:
        thread.start()
    wait_until(lambda: "kafka1001" in open_sessions(lb), 5, "a session open on kafka1001")

    started = time.monotonic()
    drained = member(
        lb, name="kafka1001", state="depooled", wait=True, wait_sessions=True, wait_timeout=20
    )
    waited = time.monotonic() - started
    for thread in threads:
        thread.join()
    assert not drained.get("failed"), drained.get("msg")
    assert drained["after"]["state"] == "depooled"
    assert waited >= 1.5  # it waited for the slow session rather than returning at once
    assert answers == [200, 200]  # depooling let the open request finish
    assert "kafka1001" not in open_sessions(lb)
    member(lb, name="kafka1001", state="pooled")


def open_sessions(lb: HAProxyServer) -> set[str]:
    rows = lb.command("show stat").splitlines()
    header = rows[0][2:].split(",")
    stats = [dict(zip(header, row.split(","), strict=False)) for row in rows[1:] if row]
    return {
        s["svname"]
        for s in stats
        if s.get("pxname") == "eventbus" and s.get("scur", "0") not in ("", "0")
    } - {
        "BACKEND",
        "FRONTEND",
    }


def test_refuses_when_the_other_server_is_already_out(lb: HAProxyServer) -> None:
    lb.command("set server eventbus/kafka1002 state maint")
    refused = member(lb, name="kafka1001", state="depooled")
    assert refused["failed"] is True
    assert "refusing to take kafka1001 out of the pool" in refused["msg"]
    assert lb.server_state("kafka1001")["srv_admin_state"] == "0"


def test_refuses_when_the_other_server_fails_its_health_check(
    lb: HAProxyServer, http_backends: dict[str, HttpBackend]
) -> None:
    http_backends["kafka1002"].stop()
    wait_until(lambda: lb.server_state("kafka1002")["srv_op_state"] == "0", 15, "kafka1002 down")
    refused = member(lb, name="kafka1001", state="depooled")
    assert refused["failed"] is True
    assert "left serving []" in refused["msg"]


def test_weight_over_tcp_runtime_api_and_check_mode(lb: HAProxyServer) -> None:
    args = {
        "backend": "haproxy",
        "haproxy_address": f"{LOOPBACK}:{lb.runtime_port}",
        "haproxy_backend": "eventbus",
        "name": "kafka1002",
        "weight": 3,
    }
    planned = run_module("pool_member", args, check=True)
    assert planned["changed"] is True
    assert lb.server_state("kafka1002")["srv_uweight"] == "10"
    done = run_module("pool_member", args)
    assert done["changed"] is True
    assert lb.server_state("kafka1002")["srv_uweight"] == "3"
    assert run_module("pool_member", args)["changed"] is False


def test_unknown_server_backend_and_unreachable_socket(lb: HAProxyServer, tmp_path) -> None:
    unknown = member(lb, name="kafka1003", state="depooled")
    assert unknown["failed"] is True
    assert "kafka1003 is not in the pool; members are: kafka1001, kafka1002" in unknown["msg"]
    no_backend = member(lb, name="kafka1001", state="depooled", haproxy_backend="nosuch")
    assert no_backend["failed"] is True
    assert "HAProxy refused" in no_backend["msg"]
    gone = run_module(
        "pool_member",
        {
            "backend": "haproxy",
            "haproxy_address": f"{LOOPBACK}:{free_port()}",
            "haproxy_backend": "eventbus",
            "name": "kafka1001",
            "state": "depooled",
        },
    )
    assert gone["failed"] is True
    assert "cannot reach the HAProxy runtime API" in gone["msg"]
