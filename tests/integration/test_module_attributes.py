"""Every module's declared attributes are true: read as ``ansible-doc`` renders them (the
doc fragments merged in), a module that declares diff support returns a diff with what it
changed, and one that declares none returns none, against the real etcd."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.harness.collection import FQCN_PREFIX, REPO_ROOT, ansible_env, run_module
from tests.harness.etcd import EtcdServer

POOL = "/conftool/v1/pools/eqiad/eventbus/eventbus"
HOST = "kafka1001.eqiad.wmnet"
CONFTOOL = {"backend": "conftool", "datacenter": "eqiad", "cluster": "eventbus",
            "service": "eventbus"}  # fmt: skip
MODULES = sorted(
    path.stem
    for path in (REPO_ROOT / "plugins" / "modules").glob("*.py")
    if path.stem != "__init__"
)

# per module with diff support: a call that changes something (given the etcd server)
DIFF_CALLS: dict[str, Callable[[EtcdServer], dict[str, Any]]] = {
    "pool_member": lambda etcd: {
        **CONFTOOL,
        "etcd_url": etcd.url,
        "name": HOST,
        "state": "depooled",
        "threshold": 0.0,
    },
}
# per module without: a call that changes something, which must return no diff
NO_DIFF_CALLS: dict[str, Callable[[EtcdServer], dict[str, Any]]] = {
    "run_lock": lambda etcd: {
        "etcd_url": etcd.url,
        "prefix": "/eventbus-ops-tests/attributes",
        "scope": "pool/eqiad/eventbus/eventbus",
        "run_id": "attributes",
        "holder": "alice@cumin1001",
        "playbook": "rolling_restart",
        "reason": "T1",
    },
}


@pytest.fixture(scope="module")
def attributes() -> dict[str, dict[str, Any]]:
    ansible_doc = Path(sys.executable).with_name("ansible-doc")
    proc = subprocess.run(
        [str(ansible_doc), "--json", "-t", "module", *(FQCN_PREFIX + name for name in MODULES)],
        capture_output=True, text=True, env=ansible_env(), timeout=120, check=True,
    )  # fmt: skip
    docs = json.loads(proc.stdout)
    return {name: docs[FQCN_PREFIX + name]["doc"]["attributes"] for name in MODULES}


def support(attributes: dict[str, dict[str, Any]], name: str, attribute: str) -> str:
    return str(attributes[name][attribute]["support"])


def test_every_module_declares_check_and_diff_mode(attributes: dict[str, dict[str, Any]]) -> None:
    for name in MODULES:
        for attribute in ("check_mode", "diff_mode"):
            declared = support(attributes, name, attribute)
            assert declared in ("full", "partial", "none"), (name, attribute)
            assert attributes[name][attribute].get("description"), (name, attribute)
        # a module with no diff says where its changes are reported instead
        if support(attributes, name, "diff_mode") == "none":
            assert attributes[name]["diff_mode"].get("details"), name


def test_the_calls_here_cover_what_is_declared(attributes: dict[str, dict[str, Any]]) -> None:
    with_diff = {name for name in MODULES if support(attributes, name, "diff_mode") != "none"}
    assert with_diff == set(DIFF_CALLS)
    assert not set(NO_DIFF_CALLS) & with_diff


def seed(etcd: EtcdServer) -> None:
    etcd.delete_tree("/conftool")
    etcd.put(f"{POOL}/{HOST}", json.dumps({"pooled": "yes", "weight": 10}))
    etcd.put(f"{POOL}/kafka1002.eqiad.wmnet", json.dumps({"pooled": "yes", "weight": 10}))


@pytest.mark.parametrize("name", sorted(DIFF_CALLS))
def test_a_module_with_diff_support_returns_what_it_changed(name: str, etcd: EtcdServer) -> None:
    seed(etcd)
    for check in (True, False):
        result = run_module(name, DIFF_CALLS[name](etcd), check=check, diff=True)
        assert result["changed"] is True, result
        assert result["diff"]["before"] != result["diff"]["after"], result["diff"]
    # without --diff, no diff
    seed(etcd)
    assert "diff" not in run_module(name, DIFF_CALLS[name](etcd))


@pytest.mark.parametrize("name", sorted(NO_DIFF_CALLS))
def test_a_module_without_diff_support_returns_none(name: str, etcd: EtcdServer) -> None:
    seed(etcd)
    result = run_module(name, NO_DIFF_CALLS[name](etcd), diff=True)
    if name == "run_lock":
        etcd.delete_tree("/eventbus-ops-tests")
    assert result["changed"] is True, result
    assert "diff" not in result
