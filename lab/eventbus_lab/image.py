"""The lab hosts' base image: a debootstrap root, built once and cached, copied per host."""

from __future__ import annotations

import secrets
import shutil
from pathlib import Path

from eventbus_lab import apt_proxy
from eventbus_lab._run import progress, run
from eventbus_lab.inventory import CACHE, Host, Lab

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
# A bare Debian host: systemd, sshd and what Ansible itself needs (python3, python3-apt for
# the apt module), as a cloud or installer image gives. Each role installs its own packages,
# through the controller's apt proxy (eventbus_lab.apt_proxy): the lab proves a fresh host.
PACKAGES = [
    "systemd",
    "systemd-sysv",
    "dbus",
    "python3",
    "python3-apt",
    "iproute2",
    "openssh-server",
    "ca-certificates",
    "procps",
]
# What container images set for dpkg (Debian's own docker images do the same): no fsync per
# file, and no manuals, docs or translations unpacked. Hosts install faster; nothing runs them.
DPKG_CONFIG = """force-unsafe-io
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
"""


def base_image() -> Path:
    """A debootstrap root with PACKAGES, built once and cached."""
    base = CACHE / "base"
    marker = base / ".eventbus-lab-packages"
    wanted = " ".join(PACKAGES) + "\n" + DPKG_CONFIG
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
    (tmp / "etc" / "dpkg" / "dpkg.cfg.d" / "eventbus-lab").write_text(DPKG_CONFIG)
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


def _built_from(host: Host, base: Path) -> str:
    return f"{host.name}\n{(base / '.eventbus-lab-packages').read_text()}"


def outdated(host: Host, base: Path) -> bool:
    """The host's root was not copied from this base image (a host copied from an older
    image would lack what the roles now expect)."""
    marker = host.root / ".eventbus-lab-host"
    return not marker.exists() or marker.read_text() != _built_from(host, base)


def prepare_root(lab: Lab, host: Host, base: Path) -> None:
    """The host's root, copied from the base image unless it already was (the host is not
    running: see cli.up)."""
    marker = host.root / ".eventbus-lab-host"
    built_from = _built_from(host, base)
    if outdated(host, base):
        progress(f"{host.short}: copying the base image")
        shutil.rmtree(host.root, ignore_errors=True)
        host.root.parent.mkdir(parents=True, exist_ok=True)
        run("cp", "-a", str(base), str(host.root))
        (host.root / "etc" / "machine-id").write_text(secrets.token_hex(16) + "\n")
        marker.write_text(built_from)
    (host.root / "etc" / "hostname").write_text(host.short + "\n")
    (host.root / "etc" / "hosts").write_text(hosts_file(lab))
    (host.root / "etc" / "apt" / "apt.conf.d" / "01eventbus-lab-proxy").write_text(
        apt_proxy.apt_config(lab)
    )
    ssh = host.root / "root" / ".ssh"
    ssh.mkdir(mode=0o700, parents=True, exist_ok=True)
    (ssh / "authorized_keys").write_text(Path(f"{lab.key}.pub").read_text())
    (ssh / "authorized_keys").chmod(0o600)
