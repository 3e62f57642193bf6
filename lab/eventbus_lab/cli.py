"""``lab.py up | status | down | proof | cases | faults``: the local lab of inventories/lab.

    lab.py up        build (once) and boot every host of inventories/lab; idempotent
    lab.py status    each host: running, reachable over ssh, boot id
    lab.py down      power the hosts off and remove the lab network (--purge: their disks too)
    lab.py proof     playbooks run while clients post events, then counted (eventbus_lab.proof)
    lab.py cases     the failure and operator cases after the proof (eventbus_lab.cases)
    lab.py faults    the fault matrix of docs/faults.md (eventbus_lab.faults)

What runs on the lab lives here, beside the model it drives: a new case of CI's lab run goes
into ``cases.py`` (molecule under_load runs ``proof`` then ``cases``; verify reads both).

Each host is a systemd-nspawn container booted with real systemd and sshd, in a network
namespace of its own, joined by a veth pair to a bridge on this machine. Hosts have no
default route and no name server: they reach the controller and each other, nothing else;
their packages come through the controller's apt proxy on the bridge (eventbus_lab.apt_proxy).
Needs root, systemd-nspawn and debootstrap (sudo make prerequisites installs them).
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import sys

from eventbus_lab import apt_proxy, image, machines, network
from eventbus_lab._run import progress, run
from eventbus_lab.inventory import STATE, Lab, LabError, load


def preflight() -> None:
    if os.geteuid() != 0:
        raise LabError("the lab needs root (network namespaces, containers): run it with sudo")
    for tool in ("systemd-nspawn", "debootstrap", "apt-cacher-ng", "ip", "ssh", "ssh-keygen"):
        if shutil.which(tool) is None:
            raise LabError(f"{tool} is missing: run sudo make prerequisites")


def up(lab: Lab) -> None:
    preflight()
    STATE.mkdir(parents=True, exist_ok=True)
    if not lab.key.exists():
        run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "eventbus-ops-lab",
            "-f", str(lab.key))  # fmt: skip
    base = image.base_image()
    machines.nspawn_prerequisites()
    network.network_up(lab)
    apt_proxy.start(lab, image.MIRROR)
    for host in lab.hosts:
        if image.outdated(host, base) and machines.supervisor_running(host):
            progress(f"{host.short}: the base image changed; powering off to copy it again")
            machines.power_off(host)
        image.prepare_root(lab, host, base)
        if not machines.supervisor_running(host):
            progress(f"{host.short}: booting {host.name} at {host.address}")
            machines.boot(host)
    for host in lab.hosts:
        boot_id = machines.wait_for_ssh(lab, host)
        progress(f"{host.short}: up, reachable over ssh (boot id {boot_id[:8]})")
    progress(f"lab up: {len(lab.hosts)} hosts; inventory: {lab.inventory}")


def status(lab: Lab) -> int:
    down = 0
    for host in lab.hosts:
        running = machines.supervisor_running(host) is not None
        boot_id = machines.boot_id(lab, host) if running else ""
        state = "up" if boot_id else ("booting or unreachable" if running else "down")
        down += state != "up"
        print(f"{host.name:24} {host.address:12} {state:24} {boot_id[:8]}")
    return 1 if down else 0


def teardown(lab: Lab, purge: bool) -> None:
    preflight()
    for host in lab.hosts:  # every host shuts down at once, then each is waited for
        if machines.supervisor_running(host):
            progress(f"{host.short}: powering off" + (" now" if purge else ""))
            if purge:  # its disk goes next: nothing to stop cleanly
                machines.halt_now(host)
            else:
                machines.ask_power_off(host)
    for host in lab.hosts:
        machines.power_off(host)
    apt_proxy.stop()  # it listens on the bridge's address, which goes with the network
    network.network_down(lab)
    if purge:
        shutil.rmtree(STATE / "hosts", ignore_errors=True)
    progress("lab down" + (" and host disks removed" if purge else ""))


# what runs on the lab: each module's own main() parses the rest of the command line
RUNNERS = {
    "proof": "eventbus_lab.proof",
    "cases": "eventbus_lab.cases",
    "faults": "eventbus_lab.faults",
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in RUNNERS:
        runner = importlib.import_module(RUNNERS[argv[0]])
        return int(runner.main(argv[1:]))
    parser = argparse.ArgumentParser(prog="lab", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="build and boot the lab (idempotent)")
    sub.add_parser("status", help="show each host")
    down_parser = sub.add_parser("down", help="power off and remove the lab network")
    down_parser.add_argument("--purge", action="store_true", help="also remove the hosts' disks")
    for name, module in RUNNERS.items():
        sub.add_parser(name, help=f"see {module} (lab.py {name} --help)", add_help=False)
    args = parser.parse_args(argv)
    try:
        lab = load()
        if args.command == "up":
            up(lab)
        elif args.command == "status":
            raise SystemExit(status(lab))
        else:
            teardown(lab, args.purge)
    except (LabError, OSError) as err:
        print(f"lab: {err}", file=sys.stderr)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        print("lab: interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    return 0
