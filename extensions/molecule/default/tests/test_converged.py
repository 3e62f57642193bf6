"""What a converged lab must be: services active and enabled, ports listening, every host
pooled (eqiad read with the real confctl, codfw from HAProxy's runtime API), an event posted
to each datacenter's service address answered 201 and consumed from <dc>.test.event, and
every topic's partitions fully in sync."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

import pytest
import testinfra
import yaml

PROJECT = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", Path(__file__).parents[4]))
LAB_HOSTS = yaml.safe_load((PROJECT / "inventories" / "lab" / "hosts.yml").read_text())
GROUPS = LAB_HOSTS["all"]["children"]
EVENTBUS = sorted(GROUPS["eventbus"]["hosts"])
LOADBALANCERS = sorted(GROUPS["loadbalancer"]["hosts"])
CONF = GROUPS["conf"]["hosts"]
RELEASE_PYTHON = "/srv/deployment/eventbus/current/bin/python"
KAFKA_IDS = PROJECT / "scripts" / "kafka_ids.py"


INVENTORY: dict[str, str] = {}


def host(name: str) -> testinfra.host.Host:
    return testinfra.get_host(f"ansible://{name}", ansible_inventory=INVENTORY["path"])


def datacenter(name: str) -> str:
    return name.split(".")[1]


def service_address(dc: str) -> str:
    for conf in CONF.values():
        for name, address in (conf.get("lab_service_addresses") or {}).items():
            if f".{dc}." in name:
                return address
    raise KeyError(dc)


@pytest.fixture(scope="module", autouse=True)
def inventory(pytestconfig: pytest.Config) -> None:
    # molecule runs pytest with --ansible-inventory=<its inventory directory>, which links
    # inventories/lab; without molecule, the lab inventory itself
    INVENTORY["path"] = pytestconfig.getoption("ansible_inventory") or str(
        PROJECT / "inventories" / "lab"
    )


@pytest.mark.parametrize("name", EVENTBUS)
def test_eventbus_hosts_run_kafka_and_the_service(name: str) -> None:
    node = host(name)
    for unit in ("kafka", "eventbus"):
        assert node.service(unit).is_running, f"{unit} on {name}"
        assert node.service(unit).is_enabled, f"{unit} on {name}"
    assert node.socket("tcp://0.0.0.0:8085").is_listening
    assert node.socket("tcp://9092").is_listening
    current = node.file("/srv/deployment/eventbus/current")
    assert current.is_symlink
    assert current.linked_to.startswith("/srv/deployment/eventbus/releases/")
    assert node.file("/srv/log/eventbus").is_directory


@pytest.mark.parametrize("name", LOADBALANCERS)
def test_conf_hosts_run_the_voter_etcd_and_the_load_balancer(name: str) -> None:
    node = host(name)
    units = ["kafka", "etcd", "haproxy"]
    if datacenter(name) == "eqiad":
        units.append("eventbus-pool-agent")
    for unit in units:
        assert node.service(unit).is_running, f"{unit} on {name}"
        assert node.service(unit).is_enabled, f"{unit} on {name}"
    assert node.socket("tcp://127.0.0.1:2379").is_listening
    assert node.socket(f"tcp://{service_address(datacenter(name))}:8085").is_listening
    assert node.file("/run/haproxy/admin.sock").is_socket  # the runtime API


def confctl_get(hostname: str, etcd_host: str, tmp_path: Path) -> dict:
    etcdrc = tmp_path / "etcdrc"
    etcdrc.write_text(yaml.safe_dump({"host": etcd_host, "port": 2379, "protocol": "http"}))
    config = tmp_path / "conftool.yaml"
    config.write_text(yaml.safe_dump({"driver_options": {"etcd_config_file": str(etcdrc)}}))
    confctl = Path(sys.executable).parent / "confctl"
    result = subprocess.run(
        [str(confctl), "--config", str(config), "select", f"name={hostname}", "get"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[0])


def haproxy_status(lb: str) -> dict[str, str]:
    code = (
        "import socket; s = socket.socket(socket.AF_UNIX); s.connect('/run/haproxy/admin.sock');"
        "s.sendall(b'show stat\\n'); print(b''.join(iter(lambda: s.recv(65536), b'')).decode())"
    )
    stat = host(lb).check_output(f"python3 -c {shlex.quote(code)}")
    rows = [line.split(",") for line in stat.splitlines() if line.startswith("eventbus,")]
    return {row[1]: row[17] for row in rows if row[1] not in ("FRONTEND", "BACKEND")}


@pytest.mark.parametrize("name", EVENTBUS)
def test_every_host_is_pooled_and_up(name: str, tmp_path: Path) -> None:
    dc = datacenter(name)
    lb = next(lb for lb in LOADBALANCERS if datacenter(lb) == dc)
    if dc == "eqiad":  # conftool: the keys in etcd, read with the real confctl
        assert confctl_get(name, CONF[lb]["ansible_host"], tmp_path)[name]["pooled"] == "yes"
    assert haproxy_status(lb)[name] == "UP"  # and HAProxy serves it (applied by the agent)


@pytest.mark.parametrize("dc", ["eqiad", "codfw"])
def test_an_event_to_the_service_address_is_in_kafka(dc: str) -> None:
    event_id = f"molecule-{uuid.uuid4()}"
    event = {"$schema": "/test/event/1.0.0", "meta": {"topic": "test.event", "id": event_id}}
    request = urllib.request.Request(
        f"http://{service_address(dc)}:8085/v1/events",
        data=json.dumps(event).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 201
    assert event_id in ids_in_kafka(dc, "test.event")


def ids_in_kafka(dc: str, topic: str) -> list[str]:
    broker = next(name for name in EVENTBUS if datacenter(name) == dc)
    code = shlex.quote(KAFKA_IDS.read_text())
    return json.loads(
        host(broker).check_output(f"{RELEASE_PYTHON} -c {code} {broker}:9092 {dc}.{topic}")
    )


def test_each_host_puts_events_into_its_own_datacenter() -> None:
    sent: dict[str, list[str]] = {"eqiad": [], "codfw": []}
    for name in EVENTBUS:
        event_id = f"molecule-{uuid.uuid4()}"
        event = {
            "$schema": "/mediawiki/page/edit/1.0.0",
            "meta": {"topic": "mediawiki.page_edit", "id": event_id},
            "page_id": 1,
            "rev_id": 2,
        }
        request = urllib.request.Request(
            f"http://{GROUPS['eventbus']['hosts'][name]['ansible_host']}:8085/v1/events",
            data=json.dumps(event).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 201, name
        sent[datacenter(name)].append(event_id)
    for dc, other in (("eqiad", "codfw"), ("codfw", "eqiad")):
        ids = set(ids_in_kafka(dc, "mediawiki.page_edit"))
        assert set(sent[dc]) <= ids
        assert not set(sent[other]) & ids  # each event went to its own datacenter


@pytest.mark.parametrize("dc", ["eqiad", "codfw"])
def test_each_cluster_has_three_voters(dc: str) -> None:
    broker = next(name for name in EVENTBUS if datacenter(name) == dc)
    quorum = host(broker).check_output("kafka metadata-quorum describe --status")
    voters = sorted(int(v) for v in re.findall(r'"id": (\d+)', quorum))
    expected = [
        hostvars["kafka_broker_id"]
        for group in ("eventbus", "conf")
        for name, hostvars in GROUPS[group]["hosts"].items()
        if datacenter(name) == dc
    ]
    assert voters == sorted(expected)


@pytest.mark.parametrize("dc", ["eqiad", "codfw"])
def test_every_partition_is_fully_in_sync(dc: str) -> None:
    broker = next(name for name in EVENTBUS if datacenter(name) == dc)
    described = host(broker).check_output("kafka topic --describe")
    partitions = re.findall(
        r"Topic: (\S+)\s+Partition: \d+.*Replicas: ([\d,]+)\s+Isr: ([\d,]+)", described
    )
    assert {topic for topic, _r, _i in partitions} >= {
        f"{dc}.test.event",
        f"{dc}.mediawiki.page_edit",
    }
    out_of_sync = [
        (t, r, i) for t, r, i in partitions if sorted(r.split(",")) != sorted(i.split(","))
    ]
    assert out_of_sync == []
