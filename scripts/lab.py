"""The local lab: real hosts for the roles and playbooks, on this machine.

    lab.py up        build (once) and boot every host of inventories/lab; idempotent
    lab.py status    each host: running, reachable over ssh, boot id
    lab.py down      power the hosts off and remove the lab network (--purge: their disks too)

Each host is a systemd-nspawn container booted with real systemd and sshd, in a network
namespace of its own, joined by a veth pair to a bridge on this machine. Hosts have no
default route and no name server: they reach the controller and each other, nothing else.
A supervisor loop restarts a container that exits with code 133, so ``systemctl reboot``
inside is a real reboot with a new boot id. Needs root, systemd-nspawn and debootstrap.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
INVENTORY = REPO / "inventories" / "lab"
STATE = Path(os.environ.get("EVENTBUS_LAB_STATE", "/var/lib/eventbus-ops-lab"))
CACHE = Path(os.environ.get("EVENTBUS_LAB_CACHE", "/var/cache/eventbus-ops-lab"))
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
# What hosts get from their distribution; the roles install the product on top.
PACKAGES = [
    "systemd",
    "systemd-sysv",
    "dbus",
    "python3",
    "python3-venv",
    "iproute2",
    "openssh-server",
    "openjdk-17-jre-headless",
    "tcpdump",
    "nftables",
    "ca-certificates",
    "procps",
    "less",
    "haproxy",
    "etcd-server",
    "logrotate",
]
DISABLED_IN_IMAGE = ["haproxy.service", "etcd.service"]  # the roles enable them where needed
EXIT_REBOOT = 133


class LabError(Exception):
    pass


@dataclass
class Host:
    name: str  # FQDN, e.g. kafka1001.eqiad.wmnet
    address: str
    service_addresses: dict[str, str] = field(default_factory=dict)

    @property
    def short(self) -> str:
        return self.name.split(".")[0]

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
    hosts: list[Host]
    bridge: str
    bridge_address: ipaddress.IPv4Interface

    @property
    def key(self) -> Path:
        return STATE / "id_ed25519"


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def run(
    *argv: str, check: bool = True, quiet: bool = False, **kwargs: object
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]
    if check and result.returncode != 0:
        raise LabError(
            f"{' '.join(argv)} failed ({result.returncode}): "
            f"{result.stderr.strip() or result.stdout.strip()}"
        )
    if not quiet and result.returncode != 0:
        progress(f"note: {' '.join(argv)}: {result.stderr.strip()}")
    return result


def load_lab() -> Lab:
    inventory = yaml.safe_load((INVENTORY / "hosts.yml").read_text())
    settings = yaml.safe_load((INVENTORY / "group_vars" / "all.yml").read_text())
    merged: dict[str, dict] = {}  # a host may be listed in several groups

    def walk(group: dict) -> None:
        for name, hostvars in (group.get("hosts") or {}).items():
            merged.setdefault(name, {}).update(hostvars or {})
        for child in (group.get("children") or {}).values():
            walk(child or {})

    walk(inventory["all"])
    hosts = []
    for name, hostvars in merged.items():
        if "ansible_host" not in hostvars:
            raise LabError(f"{name}: no ansible_host in {INVENTORY / 'hosts.yml'}")
        hosts.append(
            Host(name, hostvars["ansible_host"], dict(hostvars.get("lab_service_addresses") or {}))
        )
    network = ipaddress.IPv4Interface(settings["lab_bridge_address"]).network
    for host in hosts:
        for address in [host.address, *host.service_addresses.values()]:
            if ipaddress.IPv4Address(address) not in network or not network.is_private:
                raise LabError(f"{host.name}: {address} is outside the lab network {network}")
    return Lab(
        hosts, settings["lab_bridge"], ipaddress.IPv4Interface(settings["lab_bridge_address"])
    )


def preflight() -> None:
    if os.geteuid() != 0:
        raise LabError("the lab needs root (network namespaces, containers): run it with sudo")
    for tool in ("systemd-nspawn", "debootstrap", "ip", "ssh", "ssh-keygen"):
        if shutil.which(tool) is None:
            raise LabError(
                f"{tool} is missing: "
                "apt-get install systemd-container debootstrap iproute2 openssh-client"
            )


# -- the image ---------------------------------------------------------------------------------
def base_image() -> Path:
    """A debootstrap root with PACKAGES, built once and cached."""
    base = CACHE / "base"
    marker = base / ".eventbus-lab-packages"
    wanted = " ".join(PACKAGES)
    if marker.exists() and marker.read_text() == wanted:
        return base
    progress(f"building the base image with debootstrap ({SUITE}); this takes a minute or two")
    tmp = CACHE / "base.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    run(
        "debootstrap",
        "--variant=minbase",
        f"--include={','.join(PACKAGES)}",
        SUITE,
        str(tmp),
        MIRROR,
    )
    run("systemctl", f"--root={tmp}", "disable", *DISABLED_IN_IMAGE, check=False, quiet=True)
    (tmp / "etc" / "machine-id").write_text("")
    marker_tmp = tmp / ".eventbus-lab-packages"
    marker_tmp.write_text(wanted)
    shutil.rmtree(base, ignore_errors=True)
    tmp.rename(base)
    return base


def hosts_file(lab: Lab) -> str:
    lines = ["127.0.0.1 localhost", f"{lab.bridge_address.ip} controller.lab"]
    for host in lab.hosts:
        lines.append(f"{host.address} {host.name} {host.short}")
        lines.extend(f"{address} {name}" for name, address in host.service_addresses.items())
    return "\n".join(lines) + "\n"


def prepare_root(lab: Lab, host: Host, base: Path) -> None:
    if not (host.root / ".eventbus-lab-host").exists():
        progress(f"{host.short}: copying the base image")
        shutil.rmtree(host.root, ignore_errors=True)
        host.root.parent.mkdir(parents=True, exist_ok=True)
        run("cp", "-a", str(base), str(host.root))
        (host.root / "etc" / "machine-id").write_text(secrets.token_hex(16) + "\n")
        (host.root / ".eventbus-lab-host").write_text(host.name)
    (host.root / "etc" / "hostname").write_text(host.short + "\n")
    (host.root / "etc" / "hosts").write_text(hosts_file(lab))
    ssh = host.root / "root" / ".ssh"
    ssh.mkdir(mode=0o700, parents=True, exist_ok=True)
    (ssh / "authorized_keys").write_text(Path(f"{lab.key}.pub").read_text())
    (ssh / "authorized_keys").chmod(0o600)


# -- the network -----------------------------------------------------------------------------
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


def network_down(lab: Lab) -> None:
    for host in lab.hosts:
        if link_exists(host.veth):
            run("ip", "link", "del", host.veth, check=False)
        if netns_exists(host.netns):
            run("ip", "netns", "del", host.netns, check=False)
    if link_exists(lab.bridge):
        run("ip", "link", "del", lab.bridge, check=False)


# -- containers --------------------------------------------------------------------------------
def nspawn_prerequisites() -> None:
    """What systemd-nspawn --boot needs on a machine without systemd as PID 1."""
    nspawn = Path("/run/systemd/nspawn")
    nspawn.mkdir(parents=True, exist_ok=True)
    if run("mountpoint", "-q", str(nspawn), check=False, quiet=True).returncode != 0:
        run("mount", "-t", "tmpfs", "tmpfs", str(nspawn))
    inaccessible = Path("/run/systemd/inaccessible")
    inaccessible.mkdir(parents=True, exist_ok=True)
    nodes = {
        "reg": lambda p: p.touch(),
        "dir": lambda p: p.mkdir(),
        "chr": lambda p: os.mknod(p, 0o000 | 0o020000, os.makedev(0, 0)),
        "blk": lambda p: os.mknod(p, 0o000 | 0o060000, os.makedev(0, 0)),
        "fifo": os.mkfifo,
        "sock": lambda p: socket.socket(socket.AF_UNIX).bind(str(p)),
    }
    for name, make in nodes.items():
        path = inaccessible / name
        if not path.exists():
            make(path)
        path.chmod(0)


def supervisor_running(host: Host) -> int | None:
    try:
        pid = int(host.pidfile.read_text())
        os.kill(pid, 0)
        return pid
    except (FileNotFoundError, ValueError, ProcessLookupError):
        return None


def boot(host: Host) -> None:
    if supervisor_running(host):
        return
    for directory in (host.pidfile.parent, host.log.parent):
        directory.mkdir(parents=True, exist_ok=True)
    nspawn = (
        f"systemd-nspawn --boot --register=no --keep-unit --quiet --console=passive "
        f"--machine={host.short} --hostname={host.short} -D {host.root} "
        f"--network-namespace-path=/run/netns/{host.netns}"
    )
    # Restart on 133 (reboot); anything else (poweroff, SIGTERM) ends the loop.
    loop = (
        f'while true; do {nspawn}; rc=$?; [ "$rc" -eq {EXIT_REBOOT} ] || exit "$rc"; '
        'echo "reboot"; done'
    )
    with host.log.open("ab") as log:
        process = subprocess.Popen(
            ["bash", "-c", loop],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    host.pidfile.write_text(str(process.pid))


def ssh(
    lab: Lab, host: Host, command: str, timeout: float = 10
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "ssh",
            "-i",
            str(lab.key),
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "BatchMode=yes",
            "-o",
            f"ConnectTimeout={int(timeout)}",
            f"root@{host.address}",
            command,
        ],
        capture_output=True,
        text=True,
        timeout=timeout + 5,
        check=False,
    )


def wait_for_ssh(lab: Lab, host: Host, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            result = ssh(lab, host, "cat /proc/sys/kernel/random/boot_id", timeout=5)
            if result.returncode == 0:
                return result.stdout.strip()
        except subprocess.TimeoutExpired:
            pass
        if not supervisor_running(host):
            raise LabError(f"{host.short}: the container stopped; see {host.log}")
        time.sleep(1)
    raise LabError(f"{host.short}: no ssh after {timeout:.0f}s; see {host.log}")


def power_off(host: Host, timeout: float = 60) -> None:
    pid = supervisor_running(host)
    if pid is None:
        return
    # SIGTERM to systemd-nspawn powers the container off cleanly; the loop then exits.
    run("pkill", "-TERM", "-P", str(pid), "-x", "systemd-nspawn", check=False, quiet=True)
    deadline = time.monotonic() + timeout
    while supervisor_running(host) and time.monotonic() < deadline:
        time.sleep(0.5)
    if supervisor_running(host):
        progress(f"{host.short}: did not power off in {timeout:.0f}s; killing it")
        os.killpg(pid, signal.SIGKILL)
    host.pidfile.unlink(missing_ok=True)


# -- commands --------------------------------------------------------------------------------------
def up(lab: Lab) -> None:
    preflight()
    STATE.mkdir(parents=True, exist_ok=True)
    if not lab.key.exists():
        run(
            "ssh-keygen",
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "eventbus-ops-lab",
            "-f",
            str(lab.key),
        )
    base = base_image()
    nspawn_prerequisites()
    network_up(lab)
    for host in lab.hosts:
        prepare_root(lab, host, base)
        if not supervisor_running(host):
            progress(f"{host.short}: booting {host.name} at {host.address}")
            boot(host)
    for host in lab.hosts:
        boot_id = wait_for_ssh(lab, host)
        progress(f"{host.short}: up, reachable over ssh (boot id {boot_id[:8]})")
    progress(f"lab up: {len(lab.hosts)} hosts; inventory: {INVENTORY}")


def status(lab: Lab) -> int:
    down = 0
    for host in lab.hosts:
        running = supervisor_running(host) is not None
        boot_id = ""
        if running:
            result = ssh(lab, host, "cat /proc/sys/kernel/random/boot_id", timeout=5)
            boot_id = result.stdout.strip() if result.returncode == 0 else ""
        state = "up" if boot_id else ("booting or unreachable" if running else "down")
        down += state != "up"
        print(f"{host.name:24} {host.address:12} {state:24} {boot_id[:8]}")
    return 1 if down else 0


def teardown(lab: Lab, purge: bool) -> None:
    preflight()
    for host in lab.hosts:
        if supervisor_running(host):
            progress(f"{host.short}: powering off")
        power_off(host)
    network_down(lab)
    if purge:
        shutil.rmtree(STATE / "hosts", ignore_errors=True)
    progress("lab down" + (" and host disks removed" if purge else ""))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="lab", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="build and boot the lab (idempotent)")
    sub.add_parser("status", help="show each host")
    down_parser = sub.add_parser("down", help="power off and remove the lab network")
    down_parser.add_argument("--purge", action="store_true", help="also remove the hosts' disks")
    args = parser.parse_args(argv)
    try:
        lab = load_lab()
        if args.command == "up":
            up(lab)
        elif args.command == "status":
            raise SystemExit(status(lab))
        else:
            teardown(lab, args.purge)
    except LabError as err:
        print(f"lab: {err}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
