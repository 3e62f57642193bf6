"""pool_watch against a real etcd (conftool's layout): a member is out for maintenance while
the test's health endpoints stand in for the pool's members, turned down and up by the test
while the module runs. Below the threshold the watch repools the member as soon as it answers
its health URL; it ends when asked, when the run repooled the member, and when the others
come back first."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.harness.collection import run_module
from tests.harness.etcd import EtcdServer

POOL = "/conftool/v1/pools/eqiad/eventbus/eventbus"
OUT, PEER, OTHER = "kafka1001.eqiad.wmnet", "kafka1002.eqiad.wmnet", "kafka1003.eqiad.wmnet"


class _HealthHandler(BaseHTTPRequestHandler):
    """200 or 503, as the server's ``health`` says."""

    def do_GET(self) -> None:
        health = self.server.health  # type: ignore[attr-defined]
        self.send_response(200 if health.up else 503)
        self.send_header("Content-Length", "0")
        self.end_headers()
        health.answered()

    def log_message(self, *_args: object) -> None:
        pass


class Health:
    """A /healthz that answers 200 or 503, as the test says."""

    def __init__(self) -> None:
        self.up = True
        self.hits = 0
        self._after_first: list[Any] = []
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _HealthHandler)
        self.server.daemon_threads = True
        self.server.health = self  # type: ignore[attr-defined]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/healthz"

    def after_first_answer(self, action: Any) -> None:
        """Run ``action`` once this endpoint has answered the watcher once: the test's change
        then comes after a sample the test knows was taken, however late the module starts."""
        self._after_first.append(action)

    def answered(self) -> None:
        with self._lock:
            self.hits += 1
            actions, self._after_first = self._after_first, []
        for action in actions:
            action()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def health() -> Iterator[dict[str, Health]]:
    endpoints = {name: Health() for name in (OUT, PEER, OTHER)}
    yield endpoints
    for endpoint in endpoints.values():
        endpoint.close()


def pool_with_one_out(etcd: EtcdServer) -> EtcdServer:
    """Three members, OUT depooled for its maintenance: 2 of 3 must serve (threshold 0.5)."""
    etcd.delete_tree("/conftool")
    etcd.put(f"{POOL}/{OUT}", json.dumps({"pooled": "no", "weight": 10}))
    for name in (PEER, OTHER):
        etcd.put(f"{POOL}/{name}", json.dumps({"pooled": "yes", "weight": 10}))
    return etcd


@pytest.fixture
def pool(etcd: EtcdServer) -> EtcdServer:
    return pool_with_one_out(etcd)


def watch(etcd: EtcdServer, health: dict[str, Health], **args: Any) -> dict[str, Any]:
    return run_module(
        "pool_watch",
        {
            "backend": "conftool",
            "etcd_url": etcd.url,
            "datacenter": "eqiad",
            "cluster": "eventbus",
            "service": "eventbus",
            "name": OUT,
            "own_health_url": health[OUT].url,
            "health_urls": {name: health[name].url for name in (PEER, OTHER)},
            "interval": 0.5,
            **args,
        },
    )


def later(seconds: float, action: Any) -> threading.Timer:
    timer = threading.Timer(seconds, action)
    timer.start()
    return timer


def pooled(etcd: EtcdServer, name: str) -> str:
    return json.loads(etcd.get(f"{POOL}/{name}"))["pooled"]


def test_a_peer_failing_repools_the_member_at_once(
    pool: EtcdServer, health: dict[str, Health]
) -> None:
    # after one healthy sample, the pool falls to 1 of 2 needed
    health[OTHER].after_first_answer(lambda: setattr(health[OTHER], "up", False))
    seen = watch(pool, health, duration=60)
    assert not seen.get("failed"), seen.get("msg")
    assert seen["breached"] is True
    assert seen["repooled"] is True
    assert seen["changed"] is True
    assert seen["ended"] == "repooled"
    assert seen["breach"]["not_serving"] == [OTHER]
    assert seen["breach"]["needed"] == 2
    assert pooled(pool, OUT) == "yes"
    assert seen["samples"] >= 2  # it watched a healthy pool before


def test_an_unhealthy_member_is_repooled_once_it_answers(
    pool: EtcdServer, health: dict[str, Health]
) -> None:
    health[OUT].up = False  # restarting
    health[OTHER].up = False  # and the pool already below its threshold
    started = time.monotonic()  # before the timer: the answer comes 3 s after it at the earliest
    later(3, lambda: setattr(health[OUT], "up", True))
    seen = watch(pool, health, duration=60)
    assert seen["ended"] == "repooled", seen
    assert time.monotonic() - started >= 3  # not before it answered
    assert pooled(pool, OUT) == "yes"


def test_the_others_back_first_end_the_watch_without_a_repool(
    pool: EtcdServer, health: dict[str, Health]
) -> None:
    health[OUT].up = False
    health[OTHER].up = False
    health[OTHER].after_first_answer(lambda: setattr(health[OTHER], "up", True))
    seen = watch(pool, health, duration=60)
    assert seen["ended"] == "recovered", seen
    assert seen["breached"] is True
    assert seen["repooled"] is False
    assert seen["changed"] is False
    assert pooled(pool, OUT) == "no"


def test_a_stop_file_ends_it_and_a_repool_by_the_run_too(
    pool: EtcdServer, health: dict[str, Health], tmp_path: Path
) -> None:
    stop = tmp_path / "stop"
    health[PEER].after_first_answer(stop.touch)
    seen = watch(pool, health, duration=60, stop_file=str(stop), interval=30)
    assert seen["ended"] == "stopped", seen  # within a slice, not after the 30 s interval
    assert seen["breached"] is False
    assert seen["changed"] is False
    assert not stop.exists()  # read and removed
    health[PEER].after_first_answer(
        lambda: pool.put(f"{POOL}/{OUT}", json.dumps({"pooled": "yes", "weight": 10}))
    )
    assert watch(pool, health, duration=60)["ended"] == "pooled"


def test_report_only_and_deadline(pool: EtcdServer, health: dict[str, Health]) -> None:
    health[OTHER].up = False
    seen = watch(pool, health, duration=2, repool=False)
    assert seen["ended"] == "deadline"
    assert seen["breached"] is True
    assert seen["repooled"] is False
    assert pooled(pool, OUT) == "no"


def test_check_mode_reads_once_and_repools_nothing(
    pool: EtcdServer, health: dict[str, Health]
) -> None:
    health[OTHER].up = False
    seen = run_module(
        "pool_watch",
        {"backend": "conftool", "etcd_url": pool.url, "datacenter": "eqiad",
         "cluster": "eventbus", "service": "eventbus", "name": OUT,
         "own_health_url": health[OUT].url,
         "health_urls": {name: health[name].url for name in (PEER, OTHER)}},
        check=True,
    )  # fmt: skip
    assert seen["ended"] == "checked"
    assert seen["breached"] is True
    assert seen["changed"] is False
    assert pooled(pool, OUT) == "no"


def test_an_unreadable_pool_fails_saying_so(health: dict[str, Health]) -> None:
    seen = run_module(
        "pool_watch",
        {"backend": "conftool", "etcd_url": "http://127.0.0.1:1", "datacenter": "eqiad",
         "cluster": "eventbus", "service": "eventbus", "name": OUT,
         "own_health_url": health[OUT].url, "interval": 0.2, "timeout": 1},
    )  # fmt: skip
    assert seen["failed"] is True
    assert "unreadable" in seen["msg"], seen["msg"]
    assert "check the pool by hand" in seen["msg"]
