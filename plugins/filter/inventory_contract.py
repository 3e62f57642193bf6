# Copyright: eventbus-ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""inventory_problems: what an inventory lacks of the collection's contract (docs/inventory.md),
one line per problem naming the host, group or variable and what it is for. The pre-flight of
site.yml and of every runbook playbook stops on the first run with these lines, before any
host is reached."""

import re

from ansible.errors import AnsibleError, AnsibleFilterError

DOC = "docs/inventory.md"

# The groups, and what each is for.
GROUPS = {
    "eventbus": "the hosts that run the eventbus service and a Kafka broker",
    "conf": "each datacenter's conf host: etcd and the third KRaft voter of its Kafka cluster",
    "loadbalancer": (
        "each datacenter's load balancer (HAProxy on the service address) and its monitoring"
    ),
}
# Groups each scope needs: a converge installs every part; a rolling playbook works on the
# eventbus hosts (and, for the Kafka playbooks, the conf hosts) of the run.
SCOPES = {
    "site": ("eventbus", "conf", "loadbalancer"),
    "runbook": ("eventbus",),
    "kafka": ("eventbus", "conf"),
}

# Variables, by the part a host plays: name -> what it is. A host of several groups needs
# the variables of each.
KAFKA_NODE = {
    "kafka_node_id": "its KRaft node id (and broker id), unique in its cluster",
    "kafka_cluster_group": "the inventory group of its Kafka cluster (one per datacenter)",
    "kafka_cluster_id": "the KRaft cluster id, the same on every node of the cluster",
}
EVENTBUS_HOST = {
    "eventbus_datacenter": "its datacenter, an inventory group it belongs to",
    "eventbus_service_address": "its datacenter's service address (the load balancer's name)",
    "eventbus_kafka_bootstrap_servers": "its datacenter's Kafka brokers, host:port",
    "eventbus_pool_backend": "where its pool lives: conftool (etcd) or haproxy (runtime API)",
    "eventbus_pool_manager": "the inventory host (or localhost) pool changes run on",
    "eventbus_pool_cluster": "the pool's conftool cluster (pools/<dc>/<cluster>/<service>)",
    "eventbus_pool_service": "the pool's conftool service",
    "eventbus_lock_etcd_url": "the etcd URL of its datacenter's run locks (its conf host)",
}
BY_BACKEND = {
    "conftool": {"eventbus_etcd_url": "the etcd URL of the conftool pool"},
    "haproxy": {
        "eventbus_haproxy_socket": "HAProxy's runtime API socket on the pool manager",
        "eventbus_haproxy_backend": "the HAProxy backend of the pool",
    },
}
LOADBALANCER = {
    "eventbus_datacenter": "the datacenter it balances, an inventory group it belongs to",
    "eventbus_service_address": "the service address it answers on",
    "eventbus_port": "the service's port, on the members and the service address",
    "eventbus_pool_backend": "where its pool lives: conftool (etcd) or haproxy",
    "eventbus_pool_cluster": "the pool's conftool cluster",
    "eventbus_pool_service": "the pool's conftool service",
}
URL = re.compile(r"^https?://[^/\s]+")


def _missing(value):
    return value is None or (isinstance(value, (str, list, dict)) and len(value) == 0)


def _read(hostvars, host, name):
    try:
        return hostvars[host].get(name)
    except AnsibleError as err:  # a variable that does not render is a problem of its own
        return _Unrenderable(err)


class _Unrenderable:
    def __init__(self, err):
        self.message = str(err).splitlines()[0][:200]


def _check(hostvars, host, wanted, problems):
    values = {}
    for name, meaning in wanted.items():
        value = _read(hostvars, host, name)
        if isinstance(value, _Unrenderable):
            problems.append(f"{host}: {name} does not render ({value.message}) - {meaning}")
        elif _missing(value):
            problems.append(f"{host}: {name} is not set - {meaning}")
        else:
            values[name] = value
    return values


def _in_group(groups, group, host):
    return host in (groups.get(str(group)) or [])


def inventory_problems(hostvars, groups, hosts, scope="runbook"):
    """The contract's problems for ``hosts`` (the run's hosts), ``groups`` and ``hostvars``
    as the play sees them; an empty list when the inventory fills the contract."""
    if scope not in SCOPES:
        raise AnsibleFilterError(
            f"inventory_problems: scope is one of {sorted(SCOPES)}, not {scope!r}"
        )
    problems = []
    for group in SCOPES[scope]:
        if not groups.get(group):
            problems.append(f"group {group} is missing or empty - {GROUPS[group]}")
    node_ids = {}
    for host in hosts:
        is_eventbus = _in_group(groups, "eventbus", host)
        is_conf = _in_group(groups, "conf", host)
        is_lb = _in_group(groups, "loadbalancer", host)
        if is_eventbus or is_conf:
            node = _check(hostvars, host, KAFKA_NODE, problems)
            cluster = node.get("kafka_cluster_group")
            if cluster is not None and not _in_group(groups, cluster, host):
                problems.append(
                    f"{host}: kafka_cluster_group {cluster} is not a group the host belongs to"
                )
            if "kafka_node_id" in node:
                key = (str(cluster), str(node["kafka_node_id"]))
                if key in node_ids:
                    problems.append(
                        f"{host}: kafka_node_id {node['kafka_node_id']} is also "
                        f"{node_ids[key]}'s in cluster {cluster}"
                    )
                node_ids[key] = host
        if is_eventbus:
            values = _check(hostvars, host, EVENTBUS_HOST, problems)
            _check_datacenter(groups, host, values, problems)
            backend = values.get("eventbus_pool_backend")
            if backend is not None and backend not in BY_BACKEND:
                problems.append(
                    f"{host}: eventbus_pool_backend is {backend!r} - conftool or haproxy"
                )
            _check(hostvars, host, BY_BACKEND.get(backend, {}), problems)
            manager = values.get("eventbus_pool_manager")
            if manager is not None and manager != "localhost" and manager not in hostvars:
                problems.append(
                    f"{host}: eventbus_pool_manager {manager} is not a host of the inventory"
                )
            _check_url(host, "eventbus_lock_etcd_url", values, problems)
        if is_lb and scope == "site":
            values = _check(hostvars, host, LOADBALANCER, problems)
            _check_datacenter(groups, host, values, problems)
    return problems


def _check_datacenter(groups, host, values, problems):
    datacenter = values.get("eventbus_datacenter")
    if datacenter is not None and not _in_group(groups, datacenter, host):
        problems.append(
            f"{host}: eventbus_datacenter {datacenter} is not a group the host belongs to"
        )


def _check_url(host, name, values, problems):
    url = values.get(name)
    if url is not None and not URL.match(str(url)):
        problems.append(f"{host}: {name} {url!r} is not an http(s) URL")


class FilterModule:
    def filters(self):
        return {"inventory_problems": inventory_problems}
