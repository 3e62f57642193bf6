"""What the molecule scenarios' testinfra checks share: the lab as inventories/lab describes it.

Tests ask for ``lab`` (a Lab), and are parametrized over the lab's hosts by naming
``eventbus_host`` (each eventbus host), ``lb_host`` (each load balancer) or ``dc`` (each
datacenter).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import testinfra
import yaml

PROJECT = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY") or Path(__file__).parents[2])
GROUPS = yaml.safe_load((PROJECT / "inventories" / "lab" / "hosts.yml").read_text())["all"][
    "children"
]
EVENTBUS = sorted(GROUPS["eventbus"]["hosts"])
LOADBALANCERS = sorted(GROUPS["loadbalancer"]["hosts"])
DATACENTERS = sorted({name.split(".")[1] for name in EVENTBUS})
RELEASE_PYTHON = "/srv/deployment/eventbus/current/bin/python"
KAFKA_IDS = PROJECT / "scripts" / "kafka_ids.py"


def datacenter(name: str) -> str:
    return name.split(".")[1]


class Lab:
    def __init__(self, inventory: str) -> None:
        self.inventory = inventory
        self.groups = GROUPS
        self.eventbus = EVENTBUS
        self.loadbalancers = LOADBALANCERS

    def host(self, name: str) -> testinfra.host.Host:
        return testinfra.get_host(f"ansible://{name}", ansible_inventory=self.inventory)

    def address(self, name: str) -> str:
        for group in self.groups.values():
            if name in (group.get("hosts") or {}):
                return group["hosts"][name]["ansible_host"]
        raise KeyError(name)

    def hostvar(self, name: str, key: str) -> object:
        for group in self.groups.values():
            value = ((group.get("hosts") or {}).get(name) or {}).get(key)
            if value is not None:
                return value
        raise KeyError(f"{name}: {key}")

    def service_address(self, dc: str) -> str:
        for conf in self.groups["conf"]["hosts"].values():
            for name, address in (conf.get("lab_service_addresses") or {}).items():
                if f".{dc}." in name:  # eventbus.svc.<dc>.wmnet
                    return address
        raise KeyError(dc)

    def loadbalancer(self, dc: str) -> str:
        return next(name for name in self.loadbalancers if datacenter(name) == dc)

    def broker(self, dc: str) -> str:
        return next(name for name in self.eventbus if datacenter(name) == dc)

    def ids_in_kafka(self, dc: str, topic: str) -> list[str]:
        broker = self.broker(dc)
        code = shlex.quote(KAFKA_IDS.read_text())
        return json.loads(
            self.host(broker).check_output(f"{RELEASE_PYTHON} -c {code} {broker}:9092 {dc}.{topic}")
        )

    def haproxy(self, lb: str, command: str) -> str:
        """Send one command to HAProxy's runtime API on the load balancer host."""
        code = (
            "import socket, sys; s = socket.socket(socket.AF_UNIX);"
            "s.connect('/run/haproxy/admin.sock'); s.sendall(sys.argv[1].encode() + b'\\n');"
            "print(b''.join(iter(lambda: s.recv(65536), b'')).decode())"
        )
        return self.host(lb).check_output(f"python3 -c {shlex.quote(code)} {shlex.quote(command)}")

    def haproxy_status(self, lb: str) -> dict[str, str]:
        """HAProxy's status of each server of the eventbus backend (UP, DRAIN, MAINT...)."""
        stat = self.haproxy(lb, "show stat")
        rows = [line.split(",") for line in stat.splitlines() if line.startswith("eventbus,")]
        return {row[1]: row[17] for row in rows if row[1] not in ("FRONTEND", "BACKEND")}

    def confctl(self, dc: str, workdir: Path, *args: str) -> str:
        """Run the real confctl against the datacenter's etcd (its conf host)."""
        etcdrc = workdir / "etcdrc"
        etcd_host = self.address(self.loadbalancer(dc))
        etcdrc.write_text(yaml.safe_dump({"host": etcd_host, "port": 2379, "protocol": "http"}))
        config = workdir / "conftool.yaml"
        config.write_text(yaml.safe_dump({"driver_options": {"etcd_config_file": str(etcdrc)}}))
        confctl = str(Path(sys.executable).parent / "confctl")
        return subprocess.run(
            [confctl, "--config", str(config), *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout

    def confctl_get(self, name: str, workdir: Path) -> dict:
        """The host's conftool object, read with the real confctl."""
        out = self.confctl(datacenter(name), workdir, "select", f"name={name}", "get")
        return json.loads(out.strip().splitlines()[0])[name]

    def openapi_version(self, name: str) -> str:
        url = f"http://{self.address(name)}:8085/openapi.json"
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.load(response)["info"]["version"]


@pytest.fixture(scope="session")
def lab(pytestconfig: pytest.Config) -> Lab:
    # molecule runs pytest with --ansible-inventory=<its inventory directory>, which links
    # inventories/lab; without molecule, the lab inventory itself
    inventory = pytestconfig.getoption("ansible_inventory", None)
    return Lab(inventory or str(PROJECT / "inventories" / "lab"))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    for name, values in (
        ("eventbus_host", EVENTBUS),
        ("lb_host", LOADBALANCERS),
        ("dc", DATACENTERS),
    ):
        if name in metafunc.fixturenames:
            metafunc.parametrize(name, values)
