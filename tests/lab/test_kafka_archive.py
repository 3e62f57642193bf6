"""The kafka role's production install path: the official release archive, by URL and sha512,
downloaded by the host itself. Lab hosts reach nothing outside the lab, so the controller
serves an archive laid out as Apache's release is (kafka_2.13-<version>/libs, config, ...),
made from the jar bundle, on the lab bridge. A wrong checksum stops the install."""

from __future__ import annotations

import functools
import hashlib
import tarfile
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from tests.lab.conftest import MODEL, ansible, needs_lab, playbook

pytestmark = needs_lab
HOST = "conf2001.codfw.wmnet"
VERSION = "4.1.1"
BASE = "/var/tmp/kafka-archive-test"  # not the role's /opt/kafka: the lab's Kafka is untouched


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
