"""The playbooks read everything from the inventory: both inventories give every eventbus host
what they need (pool backend and where it lives, datacenter, service address, Kafka brokers,
broker id), and every playbook parses against both."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness.collection import REPO_ROOT, ansible_env

BIN = Path(sys.executable).parent
PLAYBOOKS = ["site", "rolling_restart", "reboot", "deploy", "replay_failed_events"]
NEEDED = [
    "eventbus_pool_backend",
    "eventbus_datacenter",
    "eventbus_service_address",
    "eventbus_kafka_bootstrap_servers",
    "kafka_node_id",
    "eventbus_pool_manager",
]
ENV = {**ansible_env(), "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg")}


def run(tool: str, inventory: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / tool), "-i", str(REPO_ROOT / "inventories" / inventory), *args],
        capture_output=True,
        text=True,
        env=ENV,
        cwd=REPO_ROOT,
        timeout=120,
        check=False,
    )


def host_vars(inventory: str) -> dict[str, dict]:
    """Each eventbus host's variables, templated as a play would see them."""
    wanted = [*NEEDED, "eventbus_etcd_url", "eventbus_haproxy_socket"]
    names = ", ".join(repr(name) for name in wanted)
    expression = (
        f"{{{{ dict({wanted} | zip(query('ansible.builtin.vars', {names}, default=''))) }}}}"
    )
    proc = run(
        "ansible",
        inventory,
        "eventbus",
        "-m",
        "ansible.builtin.debug",
        "-a",
        f"msg={expression}",
        "-o",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = {}
    for line in proc.stdout.splitlines():
        host, _sep, payload = line.partition(" | SUCCESS => ")
        msg = json.loads(payload)["msg"]
        result[host] = json.loads(msg) if isinstance(msg, str) else msg
    return result


@pytest.mark.parametrize("inventory", ["production", "lab"])
def test_every_eventbus_host_has_what_the_playbooks_need(inventory: str) -> None:
    hosts = host_vars(inventory)
    assert sorted(hosts) == [
        "kafka1001.eqiad.wmnet",
        "kafka1002.eqiad.wmnet",
        "kafka2001.codfw.wmnet",
        "kafka2002.codfw.wmnet",
    ]
    for host, values in hosts.items():
        dc = host.split(".")[1]
        missing = [name for name in NEEDED if values.get(name) in (None, "")]
        assert missing == [], f"{inventory}: {host} lacks {missing}"
        assert values["eventbus_datacenter"] == dc
        assert values["eventbus_service_address"] == f"eventbus.svc.{dc}.wmnet"
        assert values["kafka_node_id"] == int(host[5:9])
        assert values["eventbus_kafka_bootstrap_servers"] == [
            f"kafka{host[5]}001.{dc}.wmnet:9092",
            f"kafka{host[5]}002.{dc}.wmnet:9092",
        ]
        if values["eventbus_pool_backend"] == "conftool":
            assert values["eventbus_etcd_url"].endswith(f"conf{host[5]}001.{dc}.wmnet:2379")
        else:
            assert values["eventbus_haproxy_socket"]


@pytest.mark.parametrize("inventory", ["production", "lab"])
@pytest.mark.parametrize("name", PLAYBOOKS)
def test_every_playbook_parses_against_the_inventory(inventory: str, name: str) -> None:
    proc = run("ansible-playbook", inventory, "--syntax-check", f"playbooks/{name}.yml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
