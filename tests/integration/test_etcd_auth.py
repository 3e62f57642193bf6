"""etcd's v2 authentication on a real etcd (a server of this module's own: authentication
cannot be turned off again without root): etcd_auth sets it up idempotently and shuts the
anonymous out; pool_member, run_lock, the real confctl and the pool agent work as their users
and are refused, with a message that says what to check, without or with a wrong login."""

from __future__ import annotations

import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import VENV_BIN
from tests.harness.collection import COLLECTIONS_PATH, REPO_ROOT, run_module
from tests.harness.etcd import EtcdServer

ROOT_PASSWORD = "root-secret"
OPS, OPS_PASSWORD = "eventbus-ops", "ops-secret"
AGENT, AGENT_PASSWORD = "eventbus-pool-agent", "agent-secret"
POOL = "/conftool/v1/pools/eqiad/eventbus/eventbus"
ROLES = [
    {"name": "conftool-pools", "read": ["/conftool/*"], "write": ["/conftool/*"]},
    {"name": "eventbus-locks", "read": ["/eventbus-ops/*"], "write": ["/eventbus-ops/*"]},
    {"name": "pool-reader", "read": ["/conftool/*"]},
]
USERS = [
    {"name": OPS, "password": OPS_PASSWORD, "roles": ["conftool-pools", "eventbus-locks"]},
    {"name": AGENT, "password": AGENT_PASSWORD, "roles": ["pool-reader"]},
]


@pytest.fixture(scope="module")
def etcd_with_auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdServer]:
    server = EtcdServer(workdir=tmp_path_factory.mktemp("etcd-auth"))
    try:
        server.start()
        server.put(f"{POOL}/kafka1001.eqiad.wmnet", '{"pooled": "yes", "weight": 10}')
        yield server
    finally:
        server.stop()


def auth_args(etcd: EtcdServer, **extra: Any) -> dict[str, Any]:
    return {"etcd_url": etcd.url, "root_password": ROOT_PASSWORD, "roles": ROLES,
            "users": USERS, **extra}  # fmt: skip


def anonymous(etcd: EtcdServer, method: str, key: str) -> int:
    data = b"value=x" if method == "PUT" else None
    request = urllib.request.Request(f"{etcd.url}/v2/keys{key}", data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status
    except urllib.error.HTTPError as err:
        return err.code


def pool_args(etcd: EtcdServer, **login: Any) -> dict[str, Any]:
    return {"backend": "conftool", "etcd_url": etcd.url, "datacenter": "eqiad",
            "cluster": "eventbus", "service": "eventbus", **login}  # fmt: skip


@pytest.fixture(scope="module")
def secured(etcd_with_auth: EtcdServer) -> EtcdServer:
    checked = run_module("etcd_auth", auth_args(etcd_with_auth), check=True)
    assert checked["changed"] is True, checked
    assert checked["enabled_before"] is False
    assert anonymous(etcd_with_auth, "GET", POOL) == 200  # check mode changed nothing
    done = run_module("etcd_auth", auth_args(etcd_with_auth))
    assert not done.get("failed"), done.get("msg")
    assert done["root_created"] is True
    assert done["guest_revoked"] is True
    assert sorted(done["users"]) == sorted([AGENT, OPS])
    return etcd_with_auth


def test_the_anonymous_can_neither_read_nor_write(secured: EtcdServer) -> None:
    assert anonymous(secured, "GET", POOL) == 401
    assert anonymous(secured, "PUT", f"{POOL}/intruder") == 401
    assert anonymous(secured, "PUT", "/eventbus-ops/locks/pool/forged") == 401


def test_etcd_auth_is_idempotent_and_corrects_drift(secured: EtcdServer) -> None:
    again = run_module("etcd_auth", auth_args(secured))
    assert again["changed"] is False, again
    # a role given a path the task does not list loses it
    drifted = [*ROLES[:2], {"name": "pool-reader", "read": ["/conftool/*", "/other/*"]}]
    run_module("etcd_auth", auth_args(secured, roles=drifted))
    corrected = run_module("etcd_auth", auth_args(secured))
    assert corrected["changed"] is True
    assert corrected["roles"]["pool-reader"]["revoke_read"] == ["/other/*"]
    wrong_root = run_module("etcd_auth", auth_args(secured, root_password="not-it"))
    assert wrong_root["failed"] is True
    assert "root_password" in wrong_root["msg"]


def test_pool_member_as_its_user_and_refused_without(secured: EtcdServer) -> None:
    login = {"etcd_username": OPS, "etcd_password": OPS_PASSWORD}
    name = {"name": "kafka1001.eqiad.wmnet"}
    # (a pool of one: emptying it takes an explicit min_pooled=0, as the threshold keeps one)
    depooled = run_module("pool_member", {**pool_args(secured, **login), **name,
                                          "state": "depooled", "min_pooled": 0})  # fmt: skip
    assert not depooled.get("failed"), depooled.get("msg")
    assert depooled["changed"] is True
    info = run_module("pool_member_info", {**pool_args(secured, **login), **name})
    assert info["member"]["state"] == "depooled"
    for refused_login in ({}, {"etcd_username": OPS, "etcd_password": "wrong"}):
        refused = run_module("pool_member", {**pool_args(secured, **refused_login), **name,
                                             "state": "pooled"})  # fmt: skip
        assert refused["failed"] is True
        assert "etcd_username" in refused["msg"], refused["msg"]
    # the agent's user may read the pool, not change it
    reader = {"etcd_username": AGENT, "etcd_password": AGENT_PASSWORD}
    assert run_module("pool_member_info", {**pool_args(secured, **reader), **name})["member"]
    write = run_module("pool_member", {**pool_args(secured, **reader), **name, "state": "pooled"})
    assert write["failed"] is True
    assert "may write" in write["msg"], write["msg"]
    run_module("pool_member", {**pool_args(secured, **login), **name, "state": "pooled"})


def test_run_lock_as_its_user_and_refused_without(secured: EtcdServer) -> None:
    lock = {"etcd_url": secured.url, "scope": "pool/eqiad/eventbus/eventbus", "run_id": "r1",
            "playbook": "rolling_restart", "reason": "test", "holder": "me@here"}  # fmt: skip
    held = run_module("run_lock", {**lock, "etcd_username": OPS, "etcd_password": OPS_PASSWORD})
    assert not held.get("failed"), held.get("msg")
    refused = run_module("run_lock", {**lock, "run_id": "r2"})
    assert refused["failed"] is True
    assert "etcd_username" in refused["msg"]
    assert "nothing was changed" in refused["msg"]
    released = run_module("run_lock", {**lock, "state": "released", "etcd_username": OPS,
                                       "etcd_password": OPS_PASSWORD})  # fmt: skip
    assert not released.get("failed"), released.get("msg")


def test_the_real_confctl_logs_in_from_its_etcdrc(secured: EtcdServer, tmp_path: Path) -> None:
    def confctl(user: str | None, password: str | None) -> subprocess.CompletedProcess[str]:
        etcdrc = {"host": "127.0.0.1", "port": secured.client_port, "protocol": "http"}
        if user:
            etcdrc.update(username=user, password=password)
        (tmp_path / "etcdrc").write_text(yaml.safe_dump(etcdrc))
        config = tmp_path / "conftool.yaml"
        config.write_text(
            yaml.safe_dump({"driver_options": {"etcd_config_file": str(tmp_path / "etcdrc")}})
        )
        return subprocess.run(
            [str(VENV_BIN / "confctl"), "--config", str(config), "select",
             "name=kafka1001.eqiad.wmnet", "get"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    good = confctl(OPS, OPS_PASSWORD)
    assert good.returncode == 0, good.stderr
    assert '"pooled": "yes"' in good.stdout
    assert confctl(None, None).returncode != 0


def test_the_pool_agent_reads_with_its_login_file(secured: EtcdServer, tmp_path: Path) -> None:
    login = tmp_path / "etcd"
    login.write_text(f"{AGENT}:{AGENT_PASSWORD}\n")
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import eventbus_lb as lb; "
        "from pathlib import Path; user, pw = lb.etcd_login(Path(sys.argv[3])); "
        "watch = lb.ConftoolWatch(lb.EtcdClient(sys.argv[2], username=user, password=pw), "
        f"{POOL!r}); print(sorted(watch.read_pool()[0]))"
    )
    env = {"PYTHONPATH": str(COLLECTIONS_PATH)}
    tool_dir = str(REPO_ROOT / "files" / "loadbalancer")
    argv = [sys.executable, "-c", code, tool_dir, secured.url, str(login)]
    read = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60, check=False)
    assert read.returncode == 0, read.stderr
    assert "kafka1001.eqiad.wmnet" in read.stdout
    login.write_text(f"{AGENT}:wrong\n")
    refused = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60, check=False)
    assert refused.returncode != 0
    assert "refused" in refused.stderr
