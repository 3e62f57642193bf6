"""What the molecule scenarios' testinfra checks share: the lab, as its one model
(lab/eventbus_lab, reading inventories/lab) describes it.

Tests ask for ``lab`` (a Lab), and are parametrized over the lab's hosts by naming
``eventbus_host`` (each eventbus host), ``lb_host`` (each load balancer) or ``dc`` (each
datacenter).
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import testinfra
from eventbus_lab import inventory, remote
from eventbus_lab.inventory import datacenter_of

PROJECT = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY") or Path(__file__).parents[2])
MODEL = inventory.load()
datacenter = datacenter_of


class Lab:
    """The lab model, with testinfra access to its hosts."""

    def __init__(self, inventory_path: str) -> None:
        self.inventory = inventory_path
        self.model = MODEL
        self.eventbus = MODEL.eventbus
        self.loadbalancers = MODEL.loadbalancers

    def host(self, name: str) -> testinfra.host.Host:
        return testinfra.get_host(f"ansible://{name}", ansible_inventory=self.inventory)

    def address(self, name: str) -> str:
        return self.model.host(name).address

    def hostvar(self, name: str, key: str) -> object:
        return self.model.hostvar(name, key)

    def service_address(self, dc: str) -> str:
        return self.model.service_address(dc)

    def loadbalancer(self, dc: str) -> str:
        return self.model.loadbalancer(dc)

    def broker(self, dc: str) -> str:
        return self.model.brokers(dc)[0]

    def ids_in_kafka(self, dc: str, topic: str) -> list[str]:
        return remote.ids_in_kafka(self.model, dc, f"{dc}.{topic}")

    def haproxy(self, lb: str, command: str) -> str:
        """Send one command to HAProxy's runtime API on the load balancer host."""
        return remote.haproxy(self.model, lb, command)

    def haproxy_status(self, lb: str) -> dict[str, str]:
        """HAProxy's status of each server of the eventbus backend (UP, DRAIN, MAINT...)."""
        return remote.haproxy_status(self.model, lb)

    def confctl_get(self, name: str, _workdir: Path | None = None) -> dict:
        """The host's conftool object, read with the real confctl."""
        return remote.confctl_get(self.model, name)

    def alertmanager(self, dc: str, path: str, login: bool = True) -> tuple[int, Any]:
        """GET a path of the datacenter's Alertmanager, logged in as the runbook's user or
        not: (status, the JSON or text answered; None when refused)."""
        url = f"http://{self.address(self.loadbalancer(dc))}:9095{path}"
        request = urllib.request.Request(url)
        if login:
            request = remote.alertmanager_request(self.model, url)
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                text = answer.read()
                is_json = answer.headers.get_content_type() == "application/json"
                return answer.status, json.loads(text) if is_json else text.decode()
        except urllib.error.HTTPError as err:
            return err.code, None

    def openapi_version(self, name: str) -> str:
        return remote.openapi_version(self.model, name)


@pytest.fixture(scope="session")
def lab(pytestconfig: pytest.Config) -> Lab:
    # molecule runs pytest with --ansible-inventory=<its inventory directory>, which links
    # inventories/lab; without molecule, the lab inventory itself
    inventory = pytestconfig.getoption("ansible_inventory", None)
    return Lab(inventory or str(PROJECT / "inventories" / "lab"))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    for name, values in (
        ("eventbus_host", MODEL.eventbus),
        ("lb_host", MODEL.loadbalancers),
        ("dc", MODEL.datacenters),
    ):
        if name in metafunc.fixturenames:
            metafunc.parametrize(name, values)
