"""eventbus-lb (files/loadbalancer): the conftool pool agent between a real etcd, changed
with the real confctl, and a real HAProxy under live traffic; and HAProxy's saved state."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness._net import wait_until
from tests.harness._process import ServerProcess
from tests.harness.collection import COLLECTIONS_PATH, REPO_ROOT
from tests.harness.etcd import EtcdServer
from tests.harness.haproxy import HAProxyServer
from tests.harness.http_backend import HttpBackend
from tests.harness.traffic import Traffic

TOOL = REPO_ROOT / "files" / "loadbalancer" / "eventbus_lb.py"
# the helper imports the collection's clients, as the loadbalancer role installs them beside it
TOOL_ENV = {"PYTHONPATH": str(COLLECTIONS_PATH)}
POOL = "/conftool/v1/pools/eqiad/eventbus/eventbus"
SERVERS = ("kafka1001", "kafka1002")


def agent_process(etcd: EtcdServer, lb: HAProxyServer, workdir: Path) -> ServerProcess:
    return ServerProcess(
        [
            sys.executable,
            str(TOOL),
            "watch-conftool",
            "--etcd-url",
            etcd.url,
            "--pool-path",
            POOL,
            "--haproxy-socket",
            str(lb.socket_path),
            "--backend",
            "eventbus",
            "--resync",
            "5",
        ],
        workdir / "agent.log",
        env=TOOL_ENV,
    )


def admin(lb: HAProxyServer, server: str) -> str:
    """The server's administrative state as HAProxy's stats report it (UP, DRAIN, MAINT...)."""
    for line in lb.command("show stat").splitlines():
        fields = line.split(",")
        if fields[:2] == ["eventbus", server]:
            return fields[17]
    raise KeyError(server)


def weight(lb: HAProxyServer, server: str) -> int:
    return int(lb.server_state(server)["srv_uweight"])


def becomes(lb: HAProxyServer, server: str, status: str, timeout: float = 5) -> None:
    wait_until(
        lambda: admin(lb, server).startswith(status), timeout, f"{server} {status} in HAProxy"
    )


def grows(backend: HttpBackend, seconds: float = 1.0) -> bool:
    before = backend.requests
    time.sleep(seconds)
    return backend.requests > before


@pytest.fixture
def registered(etcd: EtcdServer) -> EtcdServer:
    for server in SERVERS:
        etcd.put(f"{POOL}/{server}", json.dumps({"pooled": "yes", "weight": 10}))
    return etcd


@pytest.fixture
def agent(registered: EtcdServer, haproxy: HAProxyServer, tmp_path: Path) -> Iterator[None]:
    process = agent_process(registered, haproxy, tmp_path)
    process.start()
    try:
        for server in SERVERS:
            becomes(haproxy, server, "UP", timeout=20)
        yield
    finally:
        process.stop()


def test_confctl_depool_drains_the_server_and_pool_brings_traffic_back(
    agent: None, haproxy: HAProxyServer, http_backends: dict[str, HttpBackend], confctl
) -> None:
    first = http_backends["kafka1001"]
    with Traffic(f"{haproxy.frontend_url}/v1/events") as traffic:
        assert grows(first)
        confctl("select", "name=kafka1001", "set/pooled=no")
        becomes(haproxy, "kafka1001", "DRAIN", timeout=2)
        time.sleep(0.3)  # requests already sent when the state changed finish
        assert not grows(first)
        confctl("pool", "--hostname", "kafka1001")
        becomes(haproxy, "kafka1001", "UP", timeout=2)
        assert grows(first)
    assert traffic.errors == 0


def test_health_checks_stay_on_while_depooled(
    agent: None, haproxy: HAProxyServer, http_backends: dict[str, HttpBackend], confctl
) -> None:
    confctl("select", "name=kafka1001", "set/pooled=no")
    becomes(haproxy, "kafka1001", "DRAIN", timeout=2)
    http_backends["kafka1001"].stop()
    # a drained server whose checks fail goes down: the checks are still running
    wait_until(
        lambda: haproxy.server_state("kafka1001")["srv_op_state"] == "0", 10, "kafka1001 down"
    )


def test_weight_inactive_and_missing_keys(
    agent: None, registered: EtcdServer, haproxy: HAProxyServer, confctl
) -> None:
    confctl("select", "name=kafka1002", "set/weight=3")
    wait_until(lambda: weight(haproxy, "kafka1002") == 3, 5, "weight 3 applied")
    confctl("select", "name=kafka1002", "set/pooled=inactive")
    becomes(haproxy, "kafka1002", "MAINT")
    registered.delete_tree(POOL)  # no key at all: not in the pool's configuration
    time.sleep(2)
    # ... but the last serving server stays: the depool threshold never empties a pool
    assert admin(haproxy, "kafka1001").startswith("UP")


def test_the_depool_threshold_keeps_the_pool_from_emptying(
    agent: None, haproxy: HAProxyServer, http_backends: dict[str, HttpBackend], confctl,
    tmp_path: Path,
) -> None:  # fmt: skip
    """Both members depooled in conftool (two operators, or a run and an operator): the agent
    drains one and keeps the other serving, saying why, until a member is pooled again."""
    with Traffic(f"{haproxy.frontend_url}/v1/events") as traffic:
        confctl("select", "name=kafka1001", "set/pooled=no")
        becomes(haproxy, "kafka1001", "DRAIN", timeout=2)
        confctl("select", "name=kafka1002", "set/pooled=no")
        time.sleep(2)
        assert admin(haproxy, "kafka1002").startswith("UP")
        assert grows(http_backends["kafka1002"])
        log = (tmp_path / "agent.log").read_text()
        assert (
            "not taking kafka1002 out of HAProxy: 0 of the 2 intended servers would be left "
            "serving, fewer than the 1 --depool-threshold 0.5 requires"
        ) in log
        # once the other is pooled again, the held depool goes through
        confctl("select", "name=kafka1001", "set/pooled=yes")
        becomes(haproxy, "kafka1001", "UP", timeout=3)
        becomes(haproxy, "kafka1002", "DRAIN", timeout=8)
    assert traffic.errors == 0


def test_an_unreachable_etcd_leaves_haproxy_as_it_is(
    haproxy: HAProxyServer, http_backends: dict[str, HttpBackend], tmp_path: Path
) -> None:
    store = EtcdServer(workdir=tmp_path / "etcd")
    store.start()
    for server in SERVERS:
        store.put(f"{POOL}/{server}", json.dumps({"pooled": "yes", "weight": 10}))
    store.put(f"{POOL}/kafka1002", json.dumps({"pooled": "no", "weight": 10}))
    process = agent_process(store, haproxy, tmp_path)
    process.start()
    try:
        becomes(haproxy, "kafka1002", "DRAIN", timeout=20)
        store.stop()
        time.sleep(7)  # past the agent's 5 s resync: it has tried etcd and failed
        assert admin(haproxy, "kafka1001").startswith("UP")
        assert admin(haproxy, "kafka1002").startswith("DRAIN")
        assert process.running
        assert "HAProxy keeps its current state" in process.log_tail()
        store.start()  # same data directory: the pool is as it was; a change applies again
        store.put(f"{POOL}/kafka1002", json.dumps({"pooled": "yes", "weight": 10}))
        becomes(haproxy, "kafka1002", "UP", timeout=15)
    finally:
        process.stop()
        store.stop()


def test_saved_state_survives_a_restart(
    http_backends: dict[str, HttpBackend], tmp_path: Path
) -> None:
    state = tmp_path / "server-state"
    lb = HAProxyServer(
        workdir=tmp_path / "haproxy",
        servers={name: backend.port for name, backend in http_backends.items()},
        state_file=state,
    )
    lb.start()
    try:
        assert lb.command("set server eventbus/kafka1001 state maint").strip() == ""
        assert lb.command("set server eventbus/kafka1002 weight 4").strip() == ""
        save = ServerProcess(
            [
                sys.executable,
                str(TOOL),
                "save-state",
                "--haproxy-socket",
                str(lb.socket_path),
                "--state-file",
                str(state),
            ],
            tmp_path / "save.log",
            env=TOOL_ENV,
        )
        save.start()
        wait_until(lambda: not save.running, 10, "save-state to finish")
        assert state.read_text().startswith("1\n# be_id")
        lb.stop()
        lb.start()
        assert admin(lb, "kafka1001") == "MAINT"
        assert weight(lb, "kafka1002") == 4
    finally:
        lb.stop()
