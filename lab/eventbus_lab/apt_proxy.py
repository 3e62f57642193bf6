"""The lab hosts' package source: Debian's apt-cacher-ng on this machine, listening only on the
lab bridge's address, forwarding to the Debian mirror and keeping what it fetched. The hosts
are bare Debian and reach nothing beyond the lab, so every role installs its packages through
it: the lab proves the fresh-host path on every converge, and a warm cache makes it cheap.

scripts/prerequisites.sh installs the package (and keeps Debian's own service off); the lab
starts its own instance once the bridge has its address, and stops it with the network."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import time
from pathlib import Path

from eventbus_lab._run import progress, run, wait_for
from eventbus_lab.inventory import CACHE, STATE, Lab, LabError

PORT = 3142
CONFIG = STATE / "apt-proxy"
STORE = CACHE / "apt-proxy"
PIDFILE = STATE / "run" / "apt-proxy.pid"
SUPPORT = Path("/usr/lib/apt-cacher-ng")


def url(lab: Lab) -> str:
    return f"http://{lab.bridge_address.ip}:{PORT}/"


def apt_config(lab: Lab) -> str:
    """What a host's /etc/apt/apt.conf.d/ gets: every http fetch through the proxy."""
    return f'Acquire::http::Proxy "{url(lab)}";\n'


def _config(lab: Lab) -> str:
    return "\n".join([
        f"CacheDir: {STORE / 'cache'}",
        f"LogDir: {STORE / 'log'}",
        f"SupportDir: {SUPPORT}",
        f"Port: {PORT}",
        f"BindAddress: {lab.bridge_address.ip}",  # the lab only: no stranger reaches it
        f"PidFile: {PIDFILE}",
        f"SocketPath: {STATE / 'run' / 'apt-proxy.socket'}",
        "Remap-debrep: file:deb_mirror*.gz /debian ; file:backends_debian",
        "ExThreshold: 4",
        "",
    ])  # fmt: skip


def _pid() -> int | None:
    try:
        pid = int(PIDFILE.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return None
    return pid if comm.startswith("apt-cacher-ng") else None


def _answers(lab: Lab) -> bool:
    with (
        contextlib.suppress(OSError),
        socket.create_connection((str(lab.bridge_address.ip), PORT), timeout=1),
    ):
        return True
    return False


def start(lab: Lab, mirror: str) -> None:
    """Start the proxy on the bridge address unless it runs; idempotent."""
    if _pid() is not None and _answers(lab):
        return
    binary = shutil.which("apt-cacher-ng")
    if binary is None:
        raise LabError("apt-cacher-ng (the hosts' apt proxy) is missing: sudo make prerequisites")
    stop()
    for directory in (CONFIG, STORE / "cache", STORE / "log", PIDFILE.parent):
        directory.mkdir(parents=True, exist_ok=True)
    (CONFIG / "acng.conf").write_text(_config(lab))
    (CONFIG / "backends_debian").write_text(mirror.rstrip("/") + "/\n")
    run(binary, "-c", str(CONFIG), "ForeGround=0")
    wait_for(lambda: _answers(lab), 15, f"the apt proxy on {url(lab)}")
    progress(f"apt proxy for the hosts: {url(lab)} (cache {STORE / 'cache'})")


def stop() -> None:
    pid = _pid()
    if pid is None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    PIDFILE.unlink(missing_ok=True)
