"""The one model of the lab: inventories/lab, read once.

Everything that needs to know the lab - bringing it up (``lab.py``), running playbooks under
load (``eventbus_lab.proof``), the molecule scenarios' checks and ``tests/lab`` - asks this
model, never the inventory files directly.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
INVENTORY = Path(os.environ.get("EVENTBUS_LAB_INVENTORY", REPO / "inventories" / "lab"))
STATE = Path(os.environ.get("EVENTBUS_LAB_STATE", "/var/lib/eventbus-ops-lab"))
CACHE = Path(os.environ.get("EVENTBUS_LAB_CACHE", "/var/cache/eventbus-ops-lab"))
# The eventbus release's Python on a lab host: it has kafka-python, for reading topics.
RELEASE_PYTHON = "/srv/deployment/eventbus/current/bin/python"


class LabError(Exception):
    """The lab cannot do what was asked; the message says what to do."""


def datacenter_of(name: str) -> str:
    """``eqiad`` for ``kafka1001.eqiad.wmnet``."""
    return name.split(".")[1]


@dataclass
class Host:
    name: str  # FQDN, e.g. kafka1001.eqiad.wmnet
    address: str
    hostvars: dict[str, Any] = field(default_factory=dict)

    @property
    def short(self) -> str:
        return self.name.split(".")[0]

    @property
    def datacenter(self) -> str:
        return datacenter_of(self.name)

    @property
    def service_addresses(self) -> dict[str, str]:
        return dict(self.hostvars.get("lab_service_addresses") or {})

    @property
    def netns(self) -> str:
        return f"eblab-{self.short}"

    @property
    def veth(self) -> str:
        return f"ebv-{self.short}"[:15]

    @property
    def root(self) -> Path:
        return STATE / "hosts" / self.short

    @property
    def pidfile(self) -> Path:
        return STATE / "run" / f"{self.short}.pid"

    @property
    def log(self) -> Path:
        return STATE / "log" / f"{self.short}.log"


@dataclass
class Lab:
    """The hosts of inventories/lab, its groups, and its network."""

    hosts: list[Host]
    groups: dict[str, list[str]]
    settings: dict[str, Any]
    inventory: Path = INVENTORY

    @property
    def bridge(self) -> str:
        return str(self.settings["lab_bridge"])

    @property
    def bridge_address(self) -> ipaddress.IPv4Interface:
        return ipaddress.IPv4Interface(self.settings["lab_bridge_address"])

    @property
    def key(self) -> Path:
        return STATE / "id_ed25519"

    @cached_property
    def by_name(self) -> dict[str, Host]:
        return {host.name: host for host in self.hosts}

    def host(self, name: str) -> Host:
        try:
            return self.by_name[name]
        except KeyError:
            raise LabError(f"{name} is not a host of {self.inventory}") from None

    def group(self, name: str) -> list[str]:
        return sorted(self.groups.get(name, []))

    @property
    def eventbus(self) -> list[str]:
        return self.group("eventbus")

    @property
    def loadbalancers(self) -> list[str]:
        return self.group("loadbalancer")

    @property
    def datacenters(self) -> list[str]:
        return sorted({datacenter_of(name) for name in self.eventbus})

    def service_address(self, dc: str) -> str:
        """The datacenter's service address (eventbus.svc.<dc>.wmnet's address)."""
        for host in self.hosts:
            for name, address in host.service_addresses.items():
                if f".{dc}." in name:  # eventbus.svc.<dc>.wmnet
                    return address
        raise LabError(f"no service address for {dc} in {self.inventory}")

    def loadbalancer(self, dc: str) -> str:
        return next(name for name in self.loadbalancers if datacenter_of(name) == dc)

    def brokers(self, dc: str) -> list[str]:
        return [name for name in self.eventbus if datacenter_of(name) == dc]

    def hostvar(self, name: str, key: str) -> Any:
        try:
            return self.host(name).hostvars[key]
        except KeyError:
            raise LabError(f"{name}: no {key} in {self.inventory}") from None


def load(inventory: Path = INVENTORY) -> Lab:
    """Read the lab's inventory (hosts.yml and group_vars/all.yml) and check its addresses."""
    try:
        tree = yaml.safe_load((inventory / "hosts.yml").read_text())
        settings = yaml.safe_load((inventory / "group_vars" / "all.yml").read_text())
    except (OSError, yaml.YAMLError) as err:
        raise LabError(f"cannot read the lab inventory {inventory}: {err}") from None
    merged: dict[str, dict[str, Any]] = {}  # a host may be listed in several groups
    groups: dict[str, list[str]] = {}

    def walk(name: str, group: dict[str, Any]) -> list[str]:
        members = []
        for host, hostvars in (group.get("hosts") or {}).items():
            merged.setdefault(host, {}).update(hostvars or {})
            members.append(host)
        for child, subgroup in (group.get("children") or {}).items():
            members += walk(child, subgroup or {})
        groups[name] = sorted(set(groups.get(name, [])) | set(members))
        return members

    walk("all", tree["all"])
    hosts = []
    for name, hostvars in merged.items():
        if "ansible_host" not in hostvars:
            raise LabError(f"{name}: no ansible_host in {inventory / 'hosts.yml'}")
        hosts.append(Host(name, hostvars["ansible_host"], hostvars))
    lab = Lab(hosts, groups, settings, inventory)
    network = lab.bridge_address.network
    for host in hosts:
        for address in [host.address, *host.service_addresses.values()]:
            if ipaddress.IPv4Address(address) not in network or not network.is_private:
                raise LabError(f"{host.name}: {address} is outside the lab network {network}")
    return lab
