"""Fixtures that start the real servers the tests run against.

Servers are started once per session (Kafka takes seconds to boot) and handed to each test
in a known state: every Kafka broker running, the conftool tree in etcd empty.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from tests.harness.collection import ensure_collection_link
from tests.harness.etcd import EtcdServer
from tests.harness.haproxy import HAProxyServer
from tests.harness.http_backend import HttpBackend
from tests.harness.kafka import KafkaCluster, resolve_bundle

VENV_BIN = Path(sys.executable).parent
# The session cluster also listens for SASL_PLAINTEXT (mechanism PLAIN) with these users.
SASL_USERS = {"admin": "admin-secret", "operator": "operator-secret"}

# The modules and module_utils import each other as ansible_collections.eventplatform.eventbus.
ensure_collection_link()


@pytest.fixture(scope="session")
def kafka_bundle() -> Path:
    return resolve_bundle()


@pytest.fixture(scope="session")
def kafka_cluster_session(
    kafka_bundle: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KafkaCluster]:
    cluster = KafkaCluster(
        bundle=kafka_bundle,
        workdir=tmp_path_factory.mktemp("kafka"),
        size=3,
        sasl_users=dict(SASL_USERS),
    )
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def kafka_cluster(kafka_cluster_session: KafkaCluster) -> KafkaCluster:
    """The session's 3-node cluster, with any broker a previous test stopped started again."""
    kafka_cluster_session.ensure_all_running()
    return kafka_cluster_session


@pytest.fixture(scope="session")
def etcd_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdServer]:
    server = EtcdServer(workdir=tmp_path_factory.mktemp("etcd"))
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def etcd(etcd_session: EtcdServer) -> Iterator[EtcdServer]:
    yield etcd_session
    etcd_session.delete_tree("/conftool")


@pytest.fixture
def confctl(etcd: EtcdServer, tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run the real ``confctl`` (PyPI conftool) against the test etcd."""
    etcdrc = tmp_path / "etcdrc"
    etcdrc.write_text(
        yaml.safe_dump({"host": "127.0.0.1", "port": etcd.client_port, "protocol": "http"})
    )
    config = tmp_path / "conftool.yaml"
    config.write_text(yaml.safe_dump({"driver_options": {"etcd_config_file": str(etcdrc)}}))

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(VENV_BIN / "confctl"), "--config", str(config), *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"confctl {' '.join(args)} failed:\n{result.stderr}")
        return result

    return run


@pytest.fixture
def http_backends() -> Iterator[dict[str, HttpBackend]]:
    backends = {name: HttpBackend(name) for name in ("kafka1001", "kafka1002")}
    for backend in backends.values():
        backend.start()
    yield backends
    for backend in backends.values():
        backend.stop()


@pytest.fixture
def haproxy(http_backends: dict[str, HttpBackend], tmp_path: Path) -> Iterator[HAProxyServer]:
    server = HAProxyServer(
        workdir=tmp_path / "haproxy",
        servers={name: backend.port for name, backend in http_backends.items()},
    )
    try:
        server.start()
        yield server
    finally:
        server.stop()
