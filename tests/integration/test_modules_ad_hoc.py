"""Every module run as operators run it, ``ansible localhost -m eventplatform.eventbus.<module>``,
gives what the tests' direct run of its file gives (tests/harness/collection.run_module): the
same outcome, message and result keys, against the real etcd, or an unreachable Kafka. The
ad hoc run proves AnsiballZ packs each module with every module_utils file it imports; the
direct run is what the other module tests use, without ansible's start-up per call."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.harness._net import free_port
from tests.harness.collection import REPO_ROOT, run_module
from tests.harness.etcd import EtcdServer

POOL = "/conftool/v1/pools/eqiad/eventbus/eventbus"
HOSTS = ("kafka1001.eqiad.wmnet", "kafka1002.eqiad.wmnet")
CONFTOOL = {"backend": "conftool", "datacenter": "eqiad", "cluster": "eventbus",
            "service": "eventbus"}  # fmt: skip


def figureless(text: str | None) -> str | None:
    """The module's own words: figures out, and what kafka-python last logged while it
    retried (refused, or timed out, depending on the moment) left off."""
    if text is None:
        return None
    return re.sub(r"\d+(\.\d+)?", "N", text.split("; the client's last error")[0])


def nowhere() -> list[str]:
    return [f"127.0.0.1:{free_port()}"]


# per module: (arguments given the etcd server, check mode); each a call whose result does not
# depend on when it runs (no lock timestamps, no generated passwords)
CALLS: dict[str, Callable[[EtcdServer], tuple[dict[str, Any], bool]]] = {
    "pool_member_info": lambda etcd: ({**CONFTOOL, "etcd_url": etcd.url}, False),
    "pool_member": lambda etcd: (
        {**CONFTOOL, "etcd_url": etcd.url, "name": HOSTS[0], "state": "depooled"},
        True,
    ),
    "pool_watch": lambda etcd: (
        {
            **CONFTOOL,
            "etcd_url": etcd.url,
            "name": HOSTS[0],
            "own_health_url": f"http://127.0.0.1:{free_port()}/healthz",
        },
        True,
    ),
    "run_lock": lambda etcd: (
        {
            "etcd_url": etcd.url,
            "scope": "pool/eqiad/eventbus/eventbus",
            "run_id": "r1",
            "holder": "alice@cumin1001",
            "playbook": "rolling_restart",
            "reason": "",
        },
        False,
    ),
    "etcd_auth": lambda etcd: (
        {"etcd_url": f"http://127.0.0.1:{free_port()}", "root_password": "secret"},
        True,
    ),
    "kafka_topic_describe": lambda etcd: (
        {"bootstrap_servers": nowhere(), "request_timeout": 2},
        False,
    ),
    "kafka_leader_election": lambda etcd: (
        {"bootstrap_servers": nowhere(), "request_timeout": 2, "topics": ["eqiad.test"]},
        False,
    ),
    "kafka_metadata_version": lambda etcd: (
        {"bootstrap_servers": nowhere(), "request_timeout": 2, "highest": True},
        True,
    ),
    "kafka_user": lambda etcd: (
        {
            "bootstrap_servers": nowhere(),
            "request_timeout": 2,
            "name": "eventbus",
            "password": "secret",
        },
        True,
    ),
    "tcp_idle_check": lambda etcd: (
        {"port": free_port(), "window": 0.5, "timeout": 5, "method": "nftables"},
        True,
    ),
}


def test_every_module_has_a_call_here() -> None:
    modules = {path.stem for path in (REPO_ROOT / "plugins" / "modules").glob("*.py")}
    assert modules - {"__init__"} == set(CALLS)


@pytest.mark.parametrize("name", sorted(CALLS))
def test_ad_hoc_and_direct_give_the_same_result(name: str, etcd: EtcdServer) -> None:
    etcd.delete_tree("/conftool")
    for host in HOSTS:
        etcd.put(f"{POOL}/{host}", json.dumps({"pooled": "yes", "weight": 10}))
    args, check = CALLS[name](etcd)
    direct = run_module(name, args, check=check)
    ad_hoc = run_module(name, args, check=check, ad_hoc=True)
    assert ad_hoc.get("failed", False) == direct.get("failed", False), (ad_hoc, direct)
    # kafka-python's messages carry its backoff and its last error, which differ per run
    assert figureless(ad_hoc.get("msg")) == figureless(direct.get("msg"))
    assert ad_hoc["changed"] == direct["changed"]
    # ansible adds its own keys (_ansible_no_log, ...); every key the module returned is there
    assert set(direct) - {"invocation"} <= set(ad_hoc), sorted(set(direct) - set(ad_hoc))
    # the seconds a call took differ from run to run
    for key in set(direct) - {"invocation", "warnings", "deprecations", "msg", "elapsed"}:
        assert ad_hoc[key] == direct[key], key
    if name in ("pool_member_info", "pool_member"):  # a real read of the real etcd
        assert not direct.get("failed"), direct.get("msg")


def test_the_direct_run_reads_check_mode(etcd: EtcdServer, tmp_path: Path) -> None:
    """What the fast path hands over is honoured: a depool in check mode writes nothing."""
    etcd.delete_tree("/conftool")
    for host in HOSTS:
        etcd.put(f"{POOL}/{host}", json.dumps({"pooled": "yes", "weight": 10}))
    args = {**CONFTOOL, "etcd_url": etcd.url, "name": HOSTS[0], "state": "depooled"}
    checked = run_module("pool_member", args, check=True)
    assert checked["changed"] is True, checked
    assert json.loads(etcd.get(f"{POOL}/{HOSTS[0]}"))["pooled"] == "yes"
