"""The lab command against the real thing: hosts boot with systemd and sshd in their own
network namespaces, answer Ansible, resolve each other's names, reach nothing outside the
lab, reboot for real, and go away cleanly. Needs root, systemd-nspawn and debootstrap."""

from __future__ import annotations

import base64
import time

from tests.harness._net import wait_until
from tests.lab.conftest import MODEL, ansible, lab, needs_lab

HOSTS = [host.name for host in MODEL.hosts]

pytestmark = needs_lab


def boot_ids() -> dict[str, str]:
    results = ansible("all", "ansible.builtin.slurp", "src=/proc/sys/kernel/random/boot_id")
    return {
        h: base64.b64decode(r["content"]).decode().strip()
        for h, r in results.items()
        if "content" in r
    }


def test_every_host_answers_ansible(running_lab: None) -> None:
    pings = ansible("all", "ansible.builtin.ping")
    assert sorted(pings) == sorted(HOSTS)
    assert all(r["status"] == "SUCCESS" and r["ping"] == "pong" for r in pings.values())
    status = lab("status")
    assert status.returncode == 0, status.stdout
    assert status.stdout.count(" up ") == len(HOSTS)


def test_hosts_run_systemd_resolve_names_and_have_no_way_out(running_lab: None) -> None:
    facts = ansible(
        "kafka1001.eqiad.wmnet",
        "ansible.builtin.setup",
        "gather_subset=!all,!min,network,service_mgr",
    )
    result = facts["kafka1001.eqiad.wmnet"]
    assert result["ansible_facts"]["ansible_service_mgr"] == "systemd"
    assert (
        "ansible_default_ipv4" not in result["ansible_facts"]
        or not result["ansible_facts"]["ansible_default_ipv4"]
    )
    names = ansible(
        "kafka1001.eqiad.wmnet",
        "ansible.builtin.command",
        "getent hosts kafka2002.codfw.wmnet eventbus.svc.eqiad.wmnet conf2001.codfw.wmnet",
    )
    line = names["kafka1001.eqiad.wmnet"]["line"]
    assert "10.77.0.22" in line
    assert "10.77.0.100" in line
    assert "10.77.0.20" in line
    routes = ansible("all", "ansible.builtin.command", "ip -4 route show default")
    assert all("default" not in r["line"].split("(stdout)")[-1] for r in routes.values())


def test_reboot_is_a_real_reboot_and_up_is_idempotent(running_lab: None) -> None:
    before = boot_ids()
    assert len(set(before.values())) == len(HOSTS)  # one kernel, but a boot id per container
    host = "kafka2001.codfw.wmnet"
    ansible(host, "ansible.builtin.shell", "systemd-run --on-active=1 systemctl reboot")
    wait_until(
        lambda: boot_ids().get(host, before[host]) != before[host],
        120,
        "kafka2001 back with a new boot id",
    )
    after = boot_ids()
    assert after[host] != before[host]
    assert {h: i for h, i in after.items() if h != host} == {
        h: i for h, i in before.items() if h != host
    }

    started = time.monotonic()
    again = lab("up")
    assert again.returncode == 0, again.stderr
    assert "booting" not in again.stdout  # nothing was started again
    assert time.monotonic() - started < 60
    assert boot_ids() == after
