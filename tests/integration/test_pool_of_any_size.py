"""Pools of any size (issue 24, item 6), on the real servers: a pool of five in conftool's
etcd layout (read back with the real confctl) and in a real HAProxy with five live backends.
The threshold is a share of the pool's intended members (PyBal's depool-threshold, 0.5 by
default: two of five may be out); inactive members are not intended; the read, the check
and the write of a change hold a write lock over the whole pool, so two changes of different
members cannot both pass the threshold."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from ansible_collections.eventplatform.eventbus.plugins.module_utils._conftool import (
    ConftoolPool,
)
from ansible_collections.eventplatform.eventbus.plugins.module_utils._haproxy import (
    HAProxyPool,
    HAProxyRuntime,
)
from ansible_collections.eventplatform.eventbus.plugins.module_utils._pool import (
    PoolError,
    set_membership,
)

from tests.harness._net import wait_until
from tests.harness.collection import run_module
from tests.harness.etcd import EtcdServer
from tests.harness.haproxy import HAProxyServer
from tests.harness.http_backend import HttpBackend

POOL = "/conftool/v1/pools/eqiad/eventbus/eventbus"
HOSTS = [f"kafka100{i}.eqiad.wmnet" for i in range(1, 6)]
SERVERS = [f"kafka100{i}" for i in range(1, 6)]


@pytest.fixture
def pool(etcd: EtcdServer) -> Iterator[EtcdServer]:
    for host in HOSTS:
        etcd.put(f"{POOL}/{host}", json.dumps({"pooled": "yes", "weight": 10}))
    yield etcd
    etcd.delete_tree("/eventbus-ops")


def conftool(etcd: EtcdServer, **args: object) -> dict:
    base = {"backend": "conftool", "etcd_url": etcd.url, "datacenter": "eqiad",
            "cluster": "eventbus", "service": "eventbus"}  # fmt: skip
    return run_module("pool_member", {**base, **args})


def pooled(confctl, host: str) -> str:
    out = confctl("select", f"name={host}", "get").stdout.strip().splitlines()[0]
    return json.loads(out)[host]["pooled"]


def test_a_pool_of_five_keeps_half_of_its_intended_members(pool: EtcdServer, confctl) -> None:
    for host in HOSTS[:2]:  # two of five out: three stay, half of five rounded up
        done = conftool(pool, name=host, state="depooled")
        assert done["changed"] is True, done.get("msg")
    refused = conftool(pool, name=HOSTS[2], state="depooled")
    assert refused["failed"] is True
    assert "2 other member(s) would be left serving" in refused["msg"]
    assert (
        "fewer than the 3 required (threshold 0.5 of the 5 members not inactive" in refused["msg"]
    )
    assert pooled(confctl, HOSTS[2]) == "yes"

    # weight 0 takes a member out of service just as a depool does
    assert conftool(pool, name=HOSTS[2], weight=0)["failed"] is True
    # a stricter share for this change: none of the remaining three may go
    assert conftool(pool, name=HOSTS[0], state="pooled")["changed"] is True
    strict = conftool(pool, name=HOSTS[2], state="depooled", threshold=0.8)
    assert strict["failed"] is True
    assert "fewer than the 4 required" in strict["msg"]

    # a member made inactive leaves the pool's intended members: of four, two may be out
    confctl("select", f"name={HOSTS[4]}", "set/pooled=inactive")
    assert conftool(pool, name=HOSTS[0], state="depooled")["changed"] is True
    assert conftool(pool, name=HOSTS[2], state="depooled")["failed"] is True  # 1 of 4 left
    assert [pooled(confctl, h) for h in HOSTS] == ["no", "no", "yes", "yes", "inactive"]


def test_a_bad_threshold_is_refused(pool: EtcdServer) -> None:
    bad = conftool(pool, name=HOSTS[0], state="depooled", threshold=1.5)
    assert bad["failed"] is True
    assert "threshold is a share of the pool, from 0 to 1" in bad["msg"]


class SlowReads(ConftoolPool):
    """A writer that reads the pool, then is slow to plan and write: without a lock over the
    whole pool, another writer reads the same pool meanwhile."""

    def members(self) -> dict:
        members = super().members()
        time.sleep(0.5)
        return members


def race(stores: list, names: list[str]) -> list[str]:
    """Take ``names`` out at the same moment, one writer each: what each writer got."""
    outcomes: list[str] = [""] * len(names)
    start = threading.Barrier(len(names))

    def write(i: int) -> None:
        start.wait()
        try:
            set_membership(stores[i], names[i], state="depooled")
            outcomes[i] = "depooled"
        except PoolError as err:
            outcomes[i] = str(err)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(len(names))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def test_two_writers_cannot_both_pass_the_threshold_conftool(pool: EtcdServer, confctl) -> None:
    confctl("select", f"name={HOSTS[0]}", "set/pooled=no")  # one out: one more may go
    stores = [SlowReads(pool.url, "eqiad", "eventbus", "eventbus") for _writer in range(2)]
    outcomes = race(stores, [HOSTS[1], HOSTS[2]])
    assert sorted(o == "depooled" for o in outcomes) == [False, True], outcomes
    refused = next(o for o in outcomes if o != "depooled")
    assert "refusing to take" in refused or "another change" in refused
    assert [pooled(confctl, h) for h in HOSTS].count("no") == 2  # never three
    assert pool.get("/eventbus-ops/pool-writes" + POOL) is None  # the lock was released


def test_a_held_write_lock_makes_a_writer_wait_then_give_up(pool: EtcdServer) -> None:
    holder = ConftoolPool(pool.url, "eqiad", "eventbus", "eventbus")
    with holder.exclusive():
        waited = conftool(pool, name=HOSTS[0], state="depooled", timeout=1.0)
        assert waited["failed"] is True
        assert "another change of conftool pool" in waited["msg"]
        assert "nothing was written" in waited["msg"]
    assert conftool(pool, name=HOSTS[0], state="depooled")["changed"] is True


@pytest.fixture
def five(tmp_path: Path) -> Iterator[HAProxyServer]:
    backends = {name: HttpBackend(name) for name in SERVERS}
    for backend in backends.values():
        backend.start()
    server = HAProxyServer(workdir=tmp_path / "haproxy",
                           servers={n: b.port for n, b in backends.items()})  # fmt: skip
    try:
        server.start()
        wait_until(lambda: all(server.server_state(s)["srv_op_state"] == "2" for s in SERVERS),
                   20, "five servers up by health check")  # fmt: skip
        yield server
    finally:
        server.stop()
        for backend in backends.values():
            backend.stop()


class SlowHAProxy(HAProxyPool):
    def members(self) -> dict:
        members = super().members()
        time.sleep(0.5)
        return members


def test_a_haproxy_pool_of_five(five: HAProxyServer) -> None:
    base = {"backend": "haproxy", "haproxy_socket": str(five.socket_path),
            "haproxy_backend": "eventbus"}  # fmt: skip
    assert run_module("pool_member", {**base, "name": SERVERS[0], "state": "depooled"})["changed"]
    stores = [SlowHAProxy(HAProxyRuntime(socket_path=str(five.socket_path)), "eventbus")
              for _writer in range(2)]  # fmt: skip
    outcomes = race(stores, [SERVERS[1], SERVERS[2]])
    assert sorted(o == "depooled" for o in outcomes) == [False, True], outcomes
    states = [five.server_state(s)["srv_admin_state"] for s in SERVERS]
    assert sum(state != "0" for state in states) == 2, states  # three stay ready
    refused = run_module("pool_member", {**base, "name": SERVERS[3], "state": "depooled"})
    assert refused["failed"] is True
    assert "fewer than the 3 required" in refused["msg"]
