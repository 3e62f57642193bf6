"""The Kafka roll reads the active KRaft controller again before each node's turn
(roles/runbook/tasks/controller_turn.yml): a node that is the active controller when its turn
comes, with nodes of its cluster still to roll, is left for the roll's last play; the last
node of the roll is rolled in its turn. Against the test harness's real 3-node cluster, the
node ids its own; the roll's order is the inventory's."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from kafka import KafkaAdminClient

from tests.harness.collection import run_playbook
from tests.harness.kafka import KafkaCluster

PLAYBOOK = """
- name: The roll's turns, one node at a time
  hosts: roll
  gather_facts: false
  serial: 1
  tasks:
    - name: Read the active controller before the node's turn
      ansible.builtin.include_role:
        name: eventplatform.eventbus.runbook
        tasks_from: controller_turn
    - name: The node's turn
      ansible.builtin.debug:
        msg: "ROLLED {{ inventory_hostname }}"
      when: not runbook_defer_node | default(false) | bool

- name: The nodes left for last
  hosts: kafka_roll_last
  gather_facts: false
  tasks:
    - name: Its turn now
      ansible.builtin.debug:
        msg: "LAST {{ inventory_hostname }}"
"""


def active_controller(cluster: KafkaCluster) -> int:
    admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap_servers)
    try:
        quorum = admin.describe_metadata_quorum()
        return int(quorum["topics"][0]["partitions"][0]["leader_id"])
    finally:
        admin.close()


def inventory(cluster: KafkaCluster, order: list[int]) -> str:
    hosts = "\n".join(f"node{n} kafka_node_id={n}" for n in order)
    common = {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "kafka_cluster_group": "roll",
        "eventbus_kafka_bootstrap_servers": cluster.bootstrap_servers.split(","),
        "eventbus_kafka_tls": False,
        "runbook_module_python": sys.executable,
        "runbook_skip_host": False,
    }
    # INI inventory values are read as Python literals
    variables = "\n".join(f"{key}={value!r}" for key, value in common.items())
    return f"[roll]\n{hosts}\n\n[eventbus:children]\nroll\n\n[roll:vars]\n{variables}\n"


@pytest.mark.parametrize("controller_first", [True, False])
def test_the_active_controller_is_rolled_last(
    kafka_cluster: KafkaCluster, tmp_path: Path, controller_first: bool
) -> None:
    leader = active_controller(kafka_cluster)
    others = [n for n in sorted(kafka_cluster.nodes) if n != leader]
    order = [leader, *others] if controller_first else [*others, leader]
    proc = run_playbook(tmp_path, PLAYBOOK, inventory(kafka_cluster, order))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    rolled = [
        line.split("ROLLED ")[1].strip('" ') for line in out.splitlines() if "ROLLED node" in line
    ]
    last = [line.split("LAST ")[1].strip('" ') for line in out.splitlines() if "LAST node" in line]
    if controller_first:
        assert f"node{leader} (node {leader}) is the active controller now" in out, out[-3000:]
        assert rolled == [f"node{n}" for n in others]
        assert last == [f"node{leader}"]
    else:
        assert "is the active controller now" not in out
        assert rolled == [f"node{n}" for n in order]
        assert last == []
