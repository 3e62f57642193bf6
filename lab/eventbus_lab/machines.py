"""The lab's hosts as machines: systemd-nspawn containers booted with real systemd and sshd,
each under a supervisor loop that starts it again when it exits with code 133, so that
``systemctl reboot`` inside is a real reboot with a new boot id."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from eventbus_lab._run import progress, run
from eventbus_lab.inventory import Host, Lab, LabError

EXIT_REBOOT = 133


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
        # its own /dev/null: ssh makes its stdin non-blocking, and a stdin shared with the
        # lab's other children (ansible-playbook refuses a non-blocking one) must stay as it is
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout + 5,
        check=False,
    )


def boot_id(lab: Lab, host: Host, timeout: float = 5) -> str:
    """The host's boot id over ssh, or "" when it does not answer."""
    try:
        result = ssh(lab, host, "cat /proc/sys/kernel/random/boot_id", timeout=timeout)
    except subprocess.TimeoutExpired:
        return ""
    return result.stdout.strip() if result.returncode == 0 else ""


def wait_for_ssh(lab: Lab, host: Host, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = boot_id(lab, host)
        if answer:
            return answer
        if not supervisor_running(host):
            raise LabError(f"{host.short}: the container stopped; see {host.log}")
        time.sleep(1)
    raise LabError(f"{host.short}: no ssh after {timeout:.0f}s; see {host.log}")


def ask_power_off(host: Host) -> None:
    """Start a clean power-off (SIGTERM to systemd-nspawn); :func:`power_off` waits for it."""
    pid = supervisor_running(host)
    if pid is not None:
        run("pkill", "-TERM", "-P", str(pid), "-x", "systemd-nspawn", check=False, quiet=True)


def halt_now(host: Host) -> None:
    """End the host at once: SIGKILL to the container's init (the nspawn's child), which ends
    every process of its PID namespace with it. For a lab whose disks go next (``down
    --purge``): a clean stop only costs time there, and systemd's immediate poweroff still
    waited up to 90 s for Kafka's JVMs, each stopping while its quorum stopped too (CI43).
    :func:`power_off` waits for the nspawn to exit."""
    pid = supervisor_running(host)
    if pid is None:
        return
    nspawn = run("pgrep", "-P", str(pid), "-x", "systemd-nspawn", check=False, quiet=True)
    for nspawn_pid in nspawn.stdout.split():
        run("pkill", "-KILL", "-P", nspawn_pid, check=False, quiet=True)


def power_off(host: Host, timeout: float = 60) -> None:
    pid = supervisor_running(host)
    if pid is None:
        return
    # SIGTERM to systemd-nspawn powers the container off cleanly; the loop then exits.
    ask_power_off(host)
    deadline = time.monotonic() + timeout
    while supervisor_running(host) and time.monotonic() < deadline:
        time.sleep(0.5)
    if supervisor_running(host):
        progress(f"{host.short}: did not power off in {timeout:.0f}s; killing it")
        os.killpg(pid, signal.SIGKILL)
    host.pidfile.unlink(missing_ok=True)
