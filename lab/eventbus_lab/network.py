"""The lab's network: a bridge on this machine, and per host a network namespace joined to
it by a veth pair. Hosts have no default route: they reach the controller and each other."""

from __future__ import annotations

from pathlib import Path

from eventbus_lab._run import run
from eventbus_lab.inventory import Host, Lab


def link_exists(name: str) -> bool:
    return run("ip", "link", "show", name, check=False, quiet=True).returncode == 0


def netns_exists(name: str) -> bool:
    return Path(f"/run/netns/{name}").exists()


def network_up(lab: Lab) -> None:
    if not link_exists(lab.bridge):
        run("ip", "link", "add", lab.bridge, "type", "bridge")
        run("ip", "addr", "add", str(lab.bridge_address), "dev", lab.bridge)
    run("ip", "link", "set", lab.bridge, "up")
    prefix = lab.bridge_address.network.prefixlen
    for host in lab.hosts:
        if not netns_exists(host.netns):
            run("ip", "netns", "add", host.netns)
        if not link_exists(host.veth):
            run("ip", "link", "add", host.veth, "type", "veth", "peer", "name", f"{host.veth}p")
            run("ip", "link", "set", f"{host.veth}p", "netns", host.netns)
            run("ip", "-n", host.netns, "link", "set", f"{host.veth}p", "name", "eth0")
            run("ip", "link", "set", host.veth, "master", lab.bridge)
            run("ip", "link", "set", host.veth, "up")
        inside = ["ip", "-n", host.netns]
        run(*inside, "link", "set", "lo", "up")
        run(*inside, "link", "set", "eth0", "up")
        current = run(*inside, "-4", "-o", "addr", "show", "dev", "eth0").stdout
        for address in [host.address, *host.service_addresses.values()]:
            if f" {address}/" not in current:
                run(*inside, "addr", "add", f"{address}/{prefix}", "dev", "eth0")


def set_link(host: Host, up: bool) -> None:
    """Cut (or restore) a host's network: its namespace's link to the bridge goes down."""
    run("ip", "-n", host.netns, "link", "set", "eth0", "up" if up else "down")


def network_down(lab: Lab) -> None:
    for host in lab.hosts:
        if link_exists(host.veth):
            run("ip", "link", "del", host.veth, check=False)
        if netns_exists(host.netns):
            run("ip", "netns", "del", host.netns, check=False)
    if link_exists(lab.bridge):
        run("ip", "link", "del", lab.bridge, check=False)
