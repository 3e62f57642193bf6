"""The lab against the real thing, in one module (one lab on this machine: pytest-xdist's
--dist loadfile keeps a file's tests in one worker, one after the other).

The lab command: hosts boot with systemd and sshd in their own network namespaces, answer
Ansible, resolve each other's names, reach nothing outside the lab, reboot for real, and go
away cleanly. Needs root, systemd-nspawn and debootstrap.

The kafka role's production install path: the official release archive, by URL and sha512,
downloaded by the host itself. Lab hosts reach nothing outside the lab, so the controller
serves an archive laid out as Apache's release is (kafka_2.13-<version>/libs, config, ...),
made from the jar bundle, on the lab bridge. A wrong checksum stops the install.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import subprocess
import tarfile
import threading
import time
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from eventbus_lab import apt_proxy, image

from tests.harness._net import wait_until
from tests.lab.conftest import MODEL, ansible, lab, needs_lab, playbook

HOSTS = [host.name for host in MODEL.hosts]
HOST = "conf2001.codfw.wmnet"  # where the release archive is installed
VERSION = "4.1.1"
BASE = "/var/tmp/kafka-archive-test"  # not the role's /opt/kafka: the lab's Kafka is untouched

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


def test_hosts_are_bare_debian_and_get_packages_through_the_controllers_proxy(
    running_lab: None,
) -> None:
    base = image.base_image()  # what every host is copied from
    for command in ("usr/bin/python3", "usr/sbin/sshd", "lib/systemd/systemd"):
        assert (base / command).exists(), command
    for product in ("usr/bin/java", "usr/sbin/haproxy", "usr/bin/etcd", "usr/bin/prometheus"):
        assert not (base / product).exists(), f"{product} is baked into the image"
    # the proxy answers on the lab bridge only, never on every address of this machine
    listening = subprocess.run(["ss", "-Hltn", f"sport = :{apt_proxy.PORT}"],
                               capture_output=True, text=True, check=True).stdout  # fmt: skip
    addresses = {line.split()[3] for line in listening.splitlines()}
    assert addresses == {f"{MODEL.bridge_address.ip}:{apt_proxy.PORT}"}, listening
    # a host with no way out reads the index and fetches a package through it
    host = "kafka1002.eqiad.wmnet"
    fetched = ansible(
        host,
        "ansible.builtin.shell",
        "cd /tmp && apt-get -qq update && apt-get -qq download hello && ls hello_*.deb"
        " && rm -f hello_*.deb",
    )
    assert fetched[host]["status"] == "CHANGED", fetched
    assert "hello_" in fetched[host]["line"], fetched


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


# -- the kafka role's release archive ----------------------------------------------------------
@pytest.fixture
def served_archive(tmp_path: Path) -> Iterator[tuple[str, str]]:
    bundle = Path.home() / ".cache" / "eventbus-ops" / f"kafka-{VERSION}"
    assert (bundle / "libs").is_dir(), "make kafka-bundle first"
    archive = tmp_path / f"kafka_2.13-{VERSION}.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        for part in ("libs", "config", "VERSION"):
            tar.add(bundle / part, arcname=f"kafka_2.13-{VERSION}/{part}")
    sha512 = hashlib.sha512(archive.read_bytes()).hexdigest()
    bridge = str(MODEL.bridge_address.ip)
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = ThreadingHTTPServer((bridge, 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{bridge}:{server.server_address[1]}/{archive.name}", sha512
    finally:
        server.shutdown()
        server.server_close()


def install_from_archive(tmp_path: Path, url: str, sha512: str) -> str:
    play = [
        {
            "name": "Install Kafka from the release archive",
            "hosts": HOST,
            "gather_facts": False,
            "tasks": [
                {
                    "name": "The kafka role's install step",
                    "ansible.builtin.include_role": {
                        "name": "eventplatform.eventbus.kafka",
                        "tasks_from": "install.yml",
                    },
                    "vars": {
                        "kafka_install_source": "archive",
                        "kafka_version": VERSION,
                        "kafka_archive_url": url,
                        "kafka_archive_sha512": sha512,
                        "kafka_data_dir": f"{BASE}/data",
                        # next to the lab's Kafka, not over it (the kafka user stays as it is)
                        "__kafka_home": f"{BASE}/{VERSION}",
                        "__kafka_current": f"{BASE}/current",
                        "__kafka_config_dir": f"{BASE}/etc",
                    },
                },
                # the install notifies a Kafka restart; this test installs next to the
                # lab's Kafka and leaves the running one alone
                {"name": "Stop here", "ansible.builtin.meta": "end_play"},
            ],
        }
    ]
    path = tmp_path / "archive.yml"
    path.write_text(yaml.safe_dump(play, sort_keys=False))
    run = playbook(str(path))
    return run.stdout + run.stderr if run.returncode else ""


def test_the_release_archive_is_downloaded_checked_and_unpacked(
    running_lab: None, served_archive: tuple[str, str], tmp_path: Path
) -> None:
    url, sha512 = served_archive
    ansible(HOST, "ansible.builtin.file", f"path={BASE} state=absent")
    ansible(HOST, "ansible.builtin.file", "path=/var/tmp/kafka-4.1.1.tgz state=absent")
    try:
        wrong = install_from_archive(tmp_path, url, "0" * 128)
        assert "checksum" in wrong.lower(), wrong[-2000:]

        assert install_from_archive(tmp_path, url, sha512) == ""
        listing = ansible(HOST, "ansible.builtin.command", f"ls {BASE}/{VERSION}/libs")[HOST]
        assert "kafka_2.13-4.1.1.jar" in listing["line"]
        current = ansible(HOST, "ansible.builtin.command", f"readlink {BASE}/current")[HOST]
        assert f"{BASE}/{VERSION}" in current["line"]
    finally:
        ansible(HOST, "ansible.builtin.file", f"path={BASE} state=absent")
