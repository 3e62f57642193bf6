"""Every Kafka cluster has an odd number of KRaft voters, at least three: the production
inventory renders three per datacenter (without reaching any host: the kafka role's
pre-flight only asserts), and the role refuses a cluster of two or four voters before it
touches anything, naming the cluster and its voters. The replication defaults follow the
broker count (three or more brokers: an acknowledged write on two replicas), and settings no
cluster can honour are refused."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.harness.collection import REPO_ROOT, ansible_env

BIN = Path(sys.executable).parent
CALLBACKS = REPO_ROOT / "tests" / "harness" / "callback_plugins"
PREFLIGHT = """
- name: The kafka role's pre-flight, then its voters
  hosts: eqiad:codfw
  gather_facts: false
  tasks:
    - name: Pre-flight of the kafka role
      ansible.builtin.include_role:
        name: eventplatform.eventbus.kafka
        tasks_from: preflight
        public: true
    - name: The quorum voters and replication settings server.properties gets
      ansible.builtin.debug:
        msg:
          voters: "{{ __kafka_quorum_voters }}"
          replication_factor: "{{ kafka_default_replication_factor | int }}"
          min_insync_replicas: "{{ kafka_min_insync_replicas | int }}"
"""


def preflight(inventory: Path, tmp_path: Path) -> tuple[subprocess.CompletedProcess[str], dict]:
    playbook = tmp_path / "preflight.yml"
    playbook.write_text(PREFLIGHT)
    results = tmp_path / "results.json"
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(inventory), str(playbook)],
        capture_output=True,
        text=True,
        env={
            **ansible_env(),
            "ANSIBLE_CALLBACK_PLUGINS": str(CALLBACKS),
            "ANSIBLE_CALLBACKS_ENABLED": "result_file",
            "EVENTBUS_OPS_RESULT_FILE": str(results),
            # every host is unreachable by design: a task that tried to connect would fail
            "ANSIBLE_SSH_ARGS": "-o ConnectTimeout=1",
        },
        timeout=120,
        check=False,
    )
    return proc, json.loads(results.read_text()) if results.exists() else {}


def test_the_production_inventory_gives_each_cluster_three_voters(tmp_path: Path) -> None:
    proc, results = preflight(REPO_ROOT / "inventories" / "production", tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    voters = {host: result["msg"]["voters"].strip() for host, result in results.items()}
    eqiad = ",".join(
        f"{n}@{h}.eqiad.wmnet:9093"
        for n, h in ((1001, "kafka1001"), (1002, "kafka1002"), (1000, "conf1001"))
    )
    codfw = ",".join(
        f"{n}@{h}.codfw.wmnet:9093"
        for n, h in ((2001, "kafka2001"), (2002, "kafka2002"), (2000, "conf2001"))
    )
    assert voters == {
        "kafka1001.eqiad.wmnet": eqiad,
        "kafka1002.eqiad.wmnet": eqiad,
        "conf1001.eqiad.wmnet": eqiad,
        "kafka2001.codfw.wmnet": codfw,
        "kafka2002.codfw.wmnet": codfw,
        "conf2001.codfw.wmnet": codfw,
    }
    # two brokers per datacenter (the conf hosts are controllers only): 2 replicas, 1 in sync
    assert {
        (r["msg"]["replication_factor"], r["msg"]["min_insync_replicas"]) for r in results.values()
    } == {(2, 1)}


def small_inventory(
    tmp_path: Path, voters: int, controllers_only: int = 0, **cluster_vars: object
) -> Path:
    hosts: dict[str, dict] = {
        f"kafka100{i}.eqiad.wmnet": {"kafka_node_id": 1000 + i} for i in range(1, voters + 1)
    }
    for name in list(hosts)[voters - controllers_only :]:
        hosts[name]["kafka_process_roles"] = "controller"
    inventory = {
        "all": {
            "vars": {
                "kafka_cluster_id": "8WsBngqSQ7iQixOUXlr4HA",
                "kafka_cluster_group": "eqiad",
                **cluster_vars,
            },
            "children": {"eqiad": {"hosts": hosts}, "codfw": {"hosts": {}}},
        }
    }
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump(inventory))
    return path


@pytest.mark.parametrize("voters", [1, 2, 4])
def test_the_role_refuses_a_quorum_that_cannot_lose_a_voter(tmp_path: Path, voters: int) -> None:
    proc, results = preflight(small_inventory(tmp_path, voters), tmp_path)
    assert proc.returncode != 0
    message = results["kafka1001.eqiad.wmnet"]["msg"]
    names = ", ".join(f"kafka100{i}.eqiad.wmnet" for i in range(1, voters + 1))
    assert f"cluster eqiad (inventory group eqiad) has {voters} KRaft voter(s): {names}" in message
    assert "Nothing was changed" in message


def test_three_voters_pass(tmp_path: Path) -> None:
    proc, _results = preflight(small_inventory(tmp_path, 3), tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("voters", "controllers_only", "expected"),
    [(3, 1, (2, 1)), (3, 0, (3, 2)), (5, 0, (3, 2)), (5, 2, (3, 2))],
)
def test_replication_defaults_follow_the_broker_count(
    tmp_path: Path, voters: int, controllers_only: int, expected: tuple[int, int]
) -> None:
    proc, results = preflight(small_inventory(tmp_path, voters, controllers_only), tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert {
        (r["msg"]["replication_factor"], r["msg"]["min_insync_replicas"]) for r in results.values()
    } == {expected}


@pytest.mark.parametrize(
    "settings",
    [
        {"kafka_default_replication_factor": 3},  # two brokers cannot hold three replicas
        {"kafka_min_insync_replicas": 3},  # above the replication factor: no write succeeds
        {"kafka_default_replication_factor": 0},
        {"kafka_min_insync_replicas": 0},
    ],
)
def test_the_role_refuses_replication_the_cluster_cannot_honour(
    tmp_path: Path, settings: dict[str, int]
) -> None:
    proc, results = preflight(small_inventory(tmp_path, 3, 1, **settings), tmp_path)
    assert proc.returncode != 0
    message = results["kafka1001.eqiad.wmnet"]["msg"]
    assert "cluster eqiad has 2 broker(s) (kafka1001.eqiad.wmnet, kafka1002.eqiad.wmnet)" in message
    assert "Nothing was changed" in message


def test_two_brokers_may_refuse_writes_while_one_is_down(tmp_path: Path) -> None:
    """min.insync.replicas equal to the replication factor is an operator's documented choice."""
    inventory = small_inventory(tmp_path, 3, 1, kafka_min_insync_replicas=2)
    proc, results = preflight(inventory, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert results["kafka1001.eqiad.wmnet"]["msg"]["min_insync_replicas"] == 2
