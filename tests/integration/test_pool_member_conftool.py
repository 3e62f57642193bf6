"""pool_member with backend=conftool against a real etcd, checked with the real confctl."""

from __future__ import annotations

import json

import pytest

from tests.harness._net import free_port
from tests.harness.collection import run_module
from tests.harness.etcd import EtcdServer

POOL = "/conftool/v1/pools/eqiad/eventbus/eventbus"
HOSTS = ("kafka1001.eqiad.wmnet", "kafka1002.eqiad.wmnet")


@pytest.fixture
def pool(etcd: EtcdServer) -> EtcdServer:
    for host in HOSTS:
        etcd.put(f"{POOL}/{host}", json.dumps({"pooled": "yes", "weight": 10}))
    return etcd


def member(etcd: EtcdServer, _check: bool = False, **args) -> dict:
    base = {
        "backend": "conftool",
        "etcd_url": etcd.url,
        "datacenter": "eqiad",
        "cluster": "eventbus",
        "service": "eventbus",
    }
    return run_module("pool_member", {**base, **args}, check=_check)


def confctl_get(confctl, host: str) -> dict:
    out = confctl("select", f"name={host}", "get").stdout.strip().splitlines()[0]
    return json.loads(out)[host]


def test_depool_is_read_by_confctl_and_is_idempotent(pool: EtcdServer, confctl) -> None:
    first = run_module(
        "pool_member",
        {
            "backend": "conftool",
            "etcd_url": pool.url,
            "datacenter": "eqiad",
            "cluster": "eventbus",
            "service": "eventbus",
            "name": HOSTS[0],
            "state": "depooled",
        },
        diff=True,
    )
    assert not first.get("failed"), first.get("msg")
    assert first["changed"] is True
    # each member read carries the index of the etcd write its key holds
    before_index, after_index = first["before"].pop("index"), first["after"].pop("index")
    assert after_index > before_index
    assert first["before"] == {"state": "pooled", "weight": 10, "serving": True}
    assert first["after"] == {"state": "depooled", "weight": 10, "serving": False}
    assert first["pool"][HOSTS[0]]["index"] == after_index
    assert first["diff"] == {
        "before": {"state": "pooled", "weight": 10},
        "after": {"state": "depooled", "weight": 10},
    }
    assert first["pool"][HOSTS[1]]["state"] == "pooled"
    assert confctl_get(confctl, HOSTS[0]) == {"pooled": "no", "weight": 10}

    second = member(pool, name=HOSTS[0], state="depooled")
    assert second["changed"] is False


def test_what_confctl_writes_the_module_reads(pool: EtcdServer, confctl) -> None:
    confctl("select", f"name={HOSTS[0]}", "set/pooled=no:weight=20")
    same = member(pool, name=HOSTS[0], state="depooled", weight=20)
    assert same["changed"] is False
    assert same["before"] == {
        "state": "depooled",
        "weight": 20,
        "serving": False,
        "index": same["before"]["index"],
    }

    confctl("pool", "--hostname", HOSTS[0])
    assert member(pool, name=HOSTS[0], state="pooled")["changed"] is False


def test_refuses_to_take_a_second_member_out(pool: EtcdServer, confctl) -> None:
    assert member(pool, name=HOSTS[0], state="depooled")["changed"] is True
    refused = member(pool, name=HOSTS[1], state="depooled")
    assert refused["failed"] is True
    assert "refusing to take kafka1002.eqiad.wmnet out of the pool" in refused["msg"]
    assert "not serving now: kafka1001.eqiad.wmnet" in refused["msg"]
    assert confctl_get(confctl, HOSTS[1])["pooled"] == "yes"

    lowered = member(pool, name=HOSTS[1], state="depooled", min_pooled=0)
    assert lowered["changed"] is True
    assert confctl_get(confctl, HOSTS[1])["pooled"] == "no"


def test_force_overrides_the_safety_check(pool: EtcdServer) -> None:
    member(pool, name=HOSTS[0], state="depooled")
    forced = member(pool, name=HOSTS[1], state="depooled", force=True)
    assert forced["changed"] is True
    assert pool.get(f"{POOL}/{HOSTS[1]}") == json.dumps({"pooled": "no", "weight": 10})


def test_check_mode_reports_and_writes_nothing(pool: EtcdServer) -> None:
    before = pool.get(f"{POOL}/{HOSTS[0]}")
    planned = member(pool, name=HOSTS[0], state="inactive", weight=0, _check=True)
    assert planned["changed"] is True
    # (no index: nothing was written)
    assert planned["after"] == {"state": "inactive", "weight": 0, "serving": False}
    assert pool.get(f"{POOL}/{HOSTS[0]}") == before


def test_inactive_and_weight_round_trip_through_confctl(pool: EtcdServer, confctl) -> None:
    assert member(pool, name=HOSTS[0], weight=5)["changed"] is True
    assert confctl_get(confctl, HOSTS[0]) == {"pooled": "yes", "weight": 5}
    assert member(pool, name=HOSTS[0], state="inactive")["changed"] is True
    assert confctl_get(confctl, HOSTS[0])["pooled"] == "inactive"


def test_unknown_member_names_the_members(pool: EtcdServer) -> None:
    result = member(pool, name="kafka1003.eqiad.wmnet", state="depooled")
    assert result["failed"] is True
    assert "kafka1003.eqiad.wmnet is not in the pool" in result["msg"]
    assert f"members are: {HOSTS[0]}, {HOSTS[1]}" in result["msg"]


def test_malformed_value_fails_and_nothing_is_written(pool: EtcdServer) -> None:
    pool.put(f"{POOL}/{HOSTS[1]}", "{not json")
    result = member(pool, name=HOSTS[0], state="depooled")
    assert result["failed"] is True
    assert f"{POOL}/{HOSTS[1]} does not hold JSON" in result["msg"]
    assert pool.get(f"{POOL}/{HOSTS[0]}") == json.dumps({"pooled": "yes", "weight": 10})


def test_unknown_pool_and_unreachable_etcd(pool: EtcdServer) -> None:
    missing = member(pool, name=HOSTS[0], state="depooled", service="nosuch")
    assert missing["failed"] is True
    assert "does not exist" in missing["msg"]
    down = member(pool, name=HOSTS[0], state="depooled", etcd_url=f"http://127.0.0.1:{free_port()}")
    assert down["failed"] is True
    assert "cannot reach etcd" in down["msg"]


def test_argument_errors_say_what_to_use(pool: EtcdServer) -> None:
    drained = member(pool, name=HOSTS[0], state="drained")  # depooled is the one word for it
    assert drained["failed"] is True
    assert "value of state must be one of: pooled, depooled, inactive" in drained["msg"]
    nothing = member(pool, name=HOSTS[0])
    assert nothing["failed"] is True
    assert "nothing to do" in nothing["msg"]
