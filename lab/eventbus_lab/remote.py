"""Looking at (and poking) the lab's hosts from the controller: a shell command over ssh,
HAProxy's runtime API on a load balancer (through the pool agent's helper, which uses the
collection's one HAProxy client), the real ``confctl`` against a datacenter's etcd, the run
locks in it, the service's version, and the event ids in a topic."""

from __future__ import annotations

import base64
import contextlib
import json
import re
import shlex
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import yaml

from eventbus_lab import machines
from eventbus_lab.inventory import RELEASE_PYTHON, Lab, LabError

LB_TOOL = "/usr/bin/python3 /usr/local/lib/eventbus-lb/eventbus_lb.py"
KAFKA_IDS = Path(__file__).resolve().parents[2] / "scripts" / "kafka_ids.py"


def sh(lab: Lab, name: str, command: str, timeout: float = 120) -> str:
    """Run ``command`` on host ``name`` as root; its stdout, or LabError naming what failed."""
    result = machines.ssh(lab, lab.host(name), command, timeout=timeout)
    if result.returncode != 0:
        raise LabError(
            f"{name}: {command!r} failed ({result.returncode}): "
            f"{result.stderr.strip() or result.stdout.strip()}"
        )
    return result.stdout


def haproxy(lab: Lab, lb: str, command: str) -> str:
    """One command to HAProxy's runtime API on load balancer ``lb``."""
    return sh(lab, lb, f"{LB_TOOL} runtime {shlex.quote(command)}")


def haproxy_status(lab: Lab, lb: str, backend: str = "eventbus") -> dict[str, str]:
    """HAProxy's status of each server of the backend (UP, DRAIN, MAINT, DOWN...)."""
    rows = [line.split(",") for line in haproxy(lab, lb, "show stat").splitlines()]
    return {
        row[1]: row[17]
        for row in rows
        if row[0] == backend and row[1] not in ("FRONTEND", "BACKEND") and len(row) > 17
    }


ETCD_USER = "eventbus-ops"


def lab_secret(lab: Lab, *parts: str) -> str:
    """A secret as the inventory's secret lookups keep it on the controller, under
    kafka_pki_dir (group_vars/all.yml), e.g. ``lab_secret(lab, "etcd", "root.password")``."""
    return Path(lab.settings["kafka_pki_dir"]).joinpath(*parts).read_text().splitlines()[0]


def etcd_password(lab: Lab) -> str:
    """The eventbus-ops etcd user's password (group_vars/all.yml: eventbus_etcd_password)."""
    return lab_secret(lab, "etcd", f"{ETCD_USER}.password")


def logged_in(url: str, user: str, password: str, method: str = "GET") -> urllib.request.Request:
    """A request with HTTP basic authentication."""
    login = base64.b64encode(f"{user}:{password}".encode()).decode()
    return urllib.request.Request(url, method=method, headers={"Authorization": f"Basic {login}"})


def etcd_request(lab: Lab, url: str, method: str = "GET") -> urllib.request.Request:
    """A request of etcd's v2 API, logged in as eventbus-ops (anonymous requests are refused)."""
    return logged_in(url, ETCD_USER, etcd_password(lab), method)


ALERTMANAGER_USER = "eventbus-ops"


def alertmanager_request(lab: Lab, url: str, method: str = "GET") -> urllib.request.Request:
    """A request of a datacenter's Alertmanager, logged in as eventbus-ops, the runbook's user
    (group_vars/all.yml: monitoring_alertmanager_users; anonymous requests are refused)."""
    password = lab_secret(lab, "alertmanager", f"{ALERTMANAGER_USER}.password")
    return logged_in(url, ALERTMANAGER_USER, password, method)


def confctl(lab: Lab, dc: str, *args: str) -> str:
    """Run the real confctl (PyPI conftool, in the controller's virtualenv) against the
    datacenter's etcd, on its conf host, logged in as eventbus-ops."""
    etcd_host = lab.host(lab.loadbalancer(dc)).address
    with tempfile.TemporaryDirectory(prefix="confctl-") as tmp:
        etcdrc = Path(tmp) / "etcdrc"
        etcdrc.write_text(yaml.safe_dump({
            "host": etcd_host, "port": 2379, "protocol": "http",
            "username": ETCD_USER, "password": etcd_password(lab),
        }))  # fmt: skip
        config = Path(tmp) / "conftool.yaml"
        config.write_text(yaml.safe_dump({"driver_options": {"etcd_config_file": str(etcdrc)}}))
        result = subprocess.run(
            [str(Path(sys.executable).parent / "confctl"), "--config", str(config), *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    if result.returncode != 0:
        raise LabError(f"confctl {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def confctl_get(lab: Lab, name: str) -> dict:
    """The host's conftool object, read with the real confctl."""
    dc = lab.host(name).datacenter
    out = confctl(lab, dc, "select", f"name={name}", "get")
    return json.loads(out.strip().splitlines()[0])[name]


def openapi_version(lab: Lab, name: str) -> str:
    port = lab.settings["eventbus_port"]
    url = f"http://{lab.host(name).address}:{port}/openapi.json"
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)["info"]["version"]


def ids_in_kafka(lab: Lab, dc: str, topic: str) -> list[str]:
    """meta.id of every event in ``topic`` of the datacenter's cluster, read on a broker."""
    broker = lab.brokers(dc)[0]
    code = shlex.quote(KAFKA_IDS.read_text())
    return json.loads(sh(lab, broker, f"{RELEASE_PYTHON} -c {code} {broker}:9092 {topic}"))


def service_started_at(lab: Lab, name: str) -> str:
    """When the host's eventbus service last started (monotonic, as systemd reports it)."""
    command = "systemctl show --property ActiveEnterTimestampMonotonic --value eventbus"
    return sh(lab, name, command).strip()


def units_started_at(lab: Lab, name: str, units: tuple[str, ...] = ("kafka", "eventbus")) -> dict:
    """When each of ``units`` on the host last started (monotonic, as systemd reports it;
    "0" for a unit the host does not run)."""
    command = "systemctl show --property ActiveEnterTimestampMonotonic --value " + " ".join(units)
    values = sh(lab, name, command).split()
    return dict(zip(units, values, strict=True))


# The Kafka release a node's JVM runs: the kafka_2.13 jar it holds open (the current link may
# already point at another release, which a restart would start).
RUNNING_KAFKA = (
    "pid=$(systemctl show --property=MainPID --value kafka); "
    'for fd in /proc/"$pid"/fd/*; do readlink "$fd" || true; done '
    "| sed -n 's:.*/kafka_2[.]13-\\([0-9.]*\\)[.]jar$:\\1:p' | head -n 1"
)


def running_kafka_release(lab: Lab, name: str) -> str:
    return sh(lab, name, RUNNING_KAFKA).strip()


def finalized_metadata_version(lab: Lab, name: str) -> str:
    """The cluster's finalized metadata.version as kafka-features names it (4.2-IV1), asked
    from node ``name`` with the runbook's ``kafka`` command."""
    described = sh(lab, name, "kafka features describe")
    found = re.search(r"Feature: metadata\.version.*FinalizedVersionLevel: (\S+)", described)
    return found.group(1) if found else ""


def boot_id(lab: Lab, name: str) -> str:
    return sh(lab, name, "cat /proc/sys/kernel/random/boot_id").strip()


def _locks_url(lab: Lab, dc: str, query: str) -> str:
    address = lab.host(lab.loadbalancer(dc)).address
    return f"http://{address}:2379/v2/keys/eventbus-ops/locks?{query}"


def run_locks(lab: Lab, datacenters: list[str] | None = None) -> list[str]:
    """The run locks held in each datacenter's etcd (its conf host), as ``dc:key``."""
    held: list[str] = []
    for dc in datacenters or lab.datacenters:
        try:
            locks = etcd_request(lab, _locks_url(lab, dc, "recursive=true"))
            with urllib.request.urlopen(locks, timeout=5) as answer:
                nodes = [json.load(answer)["node"]]
        except urllib.error.HTTPError as err:
            if err.code == 404:  # no lock was ever taken there
                continue
            raise
        while nodes:
            node = nodes.pop()
            nodes.extend(node.get("nodes", []))
            if not node.get("dir"):
                held.append(f"{dc}:{node['key']}")
    return held


def release_run_locks(lab: Lab) -> None:
    """Locks a stopped run could not release (its etcd was down): the operator's job."""
    for dc in lab.datacenters:
        url = _locks_url(lab, dc, "recursive=true&dir=true")
        with contextlib.suppress(OSError):  # nothing to release
            urllib.request.urlopen(etcd_request(lab, url, "DELETE"), timeout=5).close()


FAILED_EVENTS_LOG = "/srv/log/eventbus/failed_events.log"


def failed_event_ids(lab: Lab, name: str) -> set[str]:
    """meta.id of each event in host ``name``'s failed-events log (rotated and replayed
    copies included), for what the service answered 503."""
    text = sh(lab, name, f"cat {FAILED_EVENTS_LOG}* 2>/dev/null || true")
    ids: set[str] = set()
    for line in text.splitlines():
        try:
            event = json.loads(json.loads(line)["event"]["rawEvent"])
            ids.add(event["meta"]["id"])
        except (ValueError, KeyError, TypeError):
            continue  # not an event with an id: not one of the load's
    return ids
