"""inventory_problems: every class of gap in an inventory is one line naming the host, group or
variable - a missing group, a variable unset, empty or unrenderable, a group name that the host
is not in, a node id used twice, an unknown pool backend and the variables each backend needs,
a pool manager that is no host, a lock URL that is no URL - and a complete inventory has none."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from ansible.errors import AnsibleError, AnsibleFilterError
from ansible_collections.eventplatform.eventbus.plugins.filter.inventory_contract import (
    inventory_problems,
)

EVENTBUS = ["kafka1001.eqiad.wmnet", "kafka1002.eqiad.wmnet"]
CONF = ["conf1001.eqiad.wmnet"]
GROUPS = {
    "all": [*EVENTBUS, *CONF],
    "eventbus": EVENTBUS,
    "conf": CONF,
    "loadbalancer": CONF,
    "eqiad": [*EVENTBUS, *CONF],
}
DATACENTER = {
    "eventbus_datacenter": "eqiad",
    "eventbus_service_address": "eventbus.svc.eqiad.wmnet",
    "eventbus_pool_backend": "conftool",
    "kafka_cluster_group": "eqiad",
    "kafka_cluster_id": "8WsBngqSQ7iQixOUXlr4HA",
    "eventbus_port": 8085,
    "eventbus_pool_cluster": "eventbus",
    "eventbus_pool_service": "eventbus",
}
EVENTBUS_VARS = {
    "eventbus_kafka_bootstrap_servers": ["kafka1001.eqiad.wmnet:9092"],
    "eventbus_pool_manager": "localhost",
    "eventbus_lock_etcd_url": "https://conf1001.eqiad.wmnet:2379",
    "eventbus_etcd_url": "https://conf1001.eqiad.wmnet:2379",
}


class Unrenderable(dict):
    """A host's variables where one does not render, as ansible raises for it."""

    def __init__(self, values: dict[str, Any], broken: str) -> None:
        super().__init__(values)
        self.broken = broken

    def get(self, key: str, default: Any = None) -> Any:
        if key == self.broken:
            raise AnsibleError("'groups' is undefined")
        return super().get(key, default)


def complete() -> dict[str, dict[str, Any]]:
    hostvars: dict[str, dict[str, Any]] = {}
    for number, host in enumerate(EVENTBUS, 1001):
        hostvars[host] = {**DATACENTER, **EVENTBUS_VARS, "kafka_node_id": number}
    hostvars[CONF[0]] = {**DATACENTER, "kafka_node_id": 1000, "kafka_process_roles": "controller"}
    return hostvars


@pytest.mark.parametrize("scope", ["site", "runbook", "kafka"])
def test_a_complete_inventory_has_no_problem(scope: str) -> None:
    assert inventory_problems(complete(), GROUPS, GROUPS["all"], scope) == []


@pytest.mark.parametrize(
    ("scope", "group", "problem"),
    [
        ("site", "loadbalancer", "group loadbalancer is missing or empty"),
        ("site", "conf", "group conf is missing or empty"),
        ("kafka", "conf", "group conf is missing or empty"),
        ("runbook", "eventbus", "group eventbus is missing or empty"),
    ],
)
def test_a_missing_group_is_named(scope: str, group: str, problem: str) -> None:
    groups = {name: hosts for name, hosts in GROUPS.items() if name != group}
    problems = inventory_problems(complete(), groups, GROUPS["all"], scope)
    assert any(line.startswith(problem) for line in problems), problems


def test_a_rolling_playbook_does_not_need_the_load_balancer_group() -> None:
    groups = {name: hosts for name, hosts in GROUPS.items() if name != "loadbalancer"}
    assert inventory_problems(complete(), groups, EVENTBUS, "runbook") == []


@pytest.mark.parametrize(
    ("host", "name"),
    [
        # eventbus_port has the eventbus role's default on its hosts, not on the load balancer
        *(
            (EVENTBUS[0], name)
            for name in [*DATACENTER, *EVENTBUS_VARS, "kafka_node_id"]
            if name != "eventbus_port"
        ),
        (CONF[0], "kafka_node_id"),
        (CONF[0], "kafka_cluster_id"),
        (CONF[0], "eventbus_service_address"),  # the load balancer's
        (CONF[0], "eventbus_port"),
        (CONF[0], "eventbus_pool_cluster"),
    ],
)
@pytest.mark.parametrize("empty", [None, "", []])
def test_every_required_variable_unset_or_empty_is_one_line(
    host: str, name: str, empty: Any
) -> None:
    hostvars = complete()
    if empty is None:
        del hostvars[host][name]
    else:
        hostvars[host][name] = empty
    problems = inventory_problems(hostvars, GROUPS, GROUPS["all"], "site")
    assert [line for line in problems if line.startswith(f"{host}: {name} is not set - ")], problems


def test_a_variable_that_does_not_render_is_named() -> None:
    hostvars: dict[str, Any] = complete()
    hostvars[EVENTBUS[0]] = Unrenderable(hostvars[EVENTBUS[0]], "eventbus_kafka_bootstrap_servers")
    problems = inventory_problems(hostvars, GROUPS, GROUPS["all"], "runbook")
    assert problems == [
        f"{EVENTBUS[0]}: eventbus_kafka_bootstrap_servers does not render ('groups' is undefined)"
        " - its datacenter's Kafka brokers, host:port"
    ]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"eventbus_datacenter": "codfw"}, "eventbus_datacenter codfw is not a group the host"),
        ({"kafka_cluster_group": "main"}, "kafka_cluster_group main is not a group the host"),
        ({"kafka_node_id": 1002}, "kafka_node_id 1002 is also"),
        ({"eventbus_pool_backend": "lvs"}, "eventbus_pool_backend is 'lvs' - conftool or haproxy"),
        ({"eventbus_pool_manager": "lvs1001"}, "eventbus_pool_manager lvs1001 is not a host"),
        ({"eventbus_lock_etcd_url": "conf1001:2379"}, "eventbus_lock_etcd_url 'conf1001:2379' is"),
        ({"eventbus_pool_backend": "haproxy"}, "eventbus_haproxy_socket is not set"),
    ],
)
def test_a_wrong_value_is_named(change: dict[str, Any], expected: str) -> None:
    hostvars = complete()
    hostvars[EVENTBUS[0]].update(change)
    problems = inventory_problems(hostvars, GROUPS, GROUPS["all"], "site")
    assert any(expected in line for line in problems), problems
    assert all(line.startswith(tuple(EVENTBUS)) for line in problems), problems


def test_only_the_run_s_hosts_are_checked() -> None:
    hostvars = copy.deepcopy(complete())
    del hostvars[EVENTBUS[1]]["eventbus_lock_etcd_url"]
    assert inventory_problems(hostvars, GROUPS, [EVENTBUS[0]], "runbook") == []
    assert len(inventory_problems(hostvars, GROUPS, EVENTBUS, "runbook")) == 1


def test_an_unknown_scope_is_refused() -> None:
    with pytest.raises(AnsibleFilterError, match="scope is one of"):
        inventory_problems(complete(), GROUPS, EVENTBUS, "everything")


def test_every_variable_and_group_checked_is_documented() -> None:
    from ansible_collections.eventplatform.eventbus.plugins.filter import inventory_contract

    doc = (Path(__file__).resolve().parents[4] / inventory_contract.DOC).read_text()
    checked = {
        *inventory_contract.GROUPS,
        *inventory_contract.KAFKA_NODE,
        *inventory_contract.EVENTBUS_HOST,
        *inventory_contract.LOADBALANCER,
        *(name for names in inventory_contract.BY_BACKEND.values() for name in names),
    }
    undocumented = sorted(name for name in checked if f"| `{name}` |" not in doc)
    assert not undocumented, undocumented
