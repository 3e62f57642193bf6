"""A real Apache Kafka cluster in KRaft mode, run from the jar bundle on loopback.

Every node is a combined broker + controller; all nodes are controller voters, so a 3-node
cluster keeps its quorum with one node down. Single nodes can be stopped (SIGTERM, which
makes Kafka do a controlled shutdown) and started again during a test.
"""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import uuid
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ._net import LOOPBACK, free_port, port_open, wait_until
from ._process import ServerProcess
from .tls import IssuedCert, TestCA

REPO_ROOT = Path(__file__).resolve().parents[2]
RESOLVE_SCRIPT = REPO_ROOT / "files" / "kafka-bundle" / "resolve.sh"

# Small heaps: a 3-node cluster has to fit beside the tests on a 2-core machine.
DEFAULT_JVM_OPTS = (
    "-Xms96m",
    "-Xmx320m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-XX:-UsePerfData",
    "-Djava.awt.headless=true",
)


def resolve_bundle(version: str | None = None) -> Path:
    """Resolve (or reuse) the pinned, checksum-verified jar bundle of ``version`` (the pom's
    by default; any with recorded checksums); return its folder."""
    argv = ["bash", str(RESOLVE_SCRIPT), *(["--version", version] if version else [])]
    out = subprocess.run(argv, check=True, capture_output=True, text=True)
    return Path(out.stdout.strip().splitlines()[-1])


def new_cluster_id() -> str:
    """A KRaft cluster id: a random UUID, base64url without padding (as kafka-storage makes)."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()


@dataclass
class KafkaNode:
    node_id: int
    port: int
    controller_port: int
    data_dir: Path
    is_voter: bool = True
    sasl_port: int | None = None
    internal_port: int | None = None
    process: ServerProcess | None = None
    # the release this node runs, when it is not the cluster's (a rolling upgrade)
    bundle: Path | None = None

    @property
    def bootstrap(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.data_dir / "server.properties"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.running


@dataclass
class KafkaCluster:
    bundle: Path
    workdir: Path
    size: int = 3
    first_node_id: int = 1
    min_insync_replicas: int = 2
    # Nodes beyond the first `voters` are broker-only (not KRaft controllers).
    voters: int | None = None
    # user -> password: adds a SASL_PLAINTEXT listener (mechanism PLAIN) on every node.
    sasl_users: dict[str, str] = field(default_factory=dict)
    # The production shape: clients on SASL_SSL (SCRAM-SHA-512) at each node's port, brokers
    # and controllers between themselves on TLS with client certificates, the StandardAuthorizer
    # with no ACLs (users and ACLs are the test's to create, with admin_kwargs()).
    secure: bool = False
    extra_config: dict[str, str] = field(default_factory=dict)
    jvm_opts: Iterable[str] = DEFAULT_JVM_OPTS
    cluster_id: str = field(default_factory=new_cluster_id)
    nodes: dict[int, KafkaNode] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        voters = self.size if self.voters is None else self.voters
        for i in range(self.size):
            node_id = self.first_node_id + i
            self.nodes[node_id] = KafkaNode(
                node_id=node_id,
                port=free_port(),
                controller_port=free_port(),
                data_dir=self.workdir / f"node{node_id}",
                is_voter=i < voters,
                sasl_port=free_port() if self.sasl_users else None,
                internal_port=free_port() if self.secure else None,
            )
        self.ca: TestCA | None = None
        self.node_cert: IssuedCert | None = None
        self.admin_cert: IssuedCert | None = None
        if self.secure:
            self.ca = TestCA(self.workdir / "tls")
            self.node_cert = self.ca.issue("broker")
            self.admin_cert = self.ca.issue("admin")

    # -- addresses ------------------------------------------------------------------
    @property
    def bootstrap_servers(self) -> str:
        return ",".join(node.bootstrap for node in self.nodes.values())

    @property
    def sasl_bootstrap_servers(self) -> str:
        return ",".join(f"{LOOPBACK}:{n.sasl_port}" for n in self.nodes.values())

    @property
    def internal_bootstrap_servers(self) -> list[str]:
        return [f"{LOOPBACK}:{n.internal_port or n.port}" for n in self.nodes.values() if n.running]

    def admin_kwargs(self) -> dict[str, object]:
        """kafka-python client arguments for the cluster's super user: on a secure cluster, the
        admin certificate on the brokers' TLS listener."""
        if not self.secure:
            return {"bootstrap_servers": [n.bootstrap for n in self.nodes.values() if n.running]}
        assert self.ca is not None
        assert self.admin_cert is not None
        return {
            "bootstrap_servers": self.internal_bootstrap_servers,
            "security_protocol": "SSL",
            "ssl_cafile": str(self.ca.ca_file),
            "ssl_certfile": str(self.admin_cert.cert),
            "ssl_keyfile": str(self.admin_cert.key),
        }

    def client_kwargs(self, user: str, password: str) -> dict[str, object]:
        """kafka-python client arguments for a SCRAM user on the client listener."""
        assert self.ca is not None
        return {
            "bootstrap_servers": self.bootstrap_servers.split(","),
            "security_protocol": "SASL_SSL",
            "ssl_cafile": str(self.ca.ca_file),
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_plain_username": user,
            "sasl_plain_password": password,
        }

    def bootstrap_servers_except(self, node_id: int) -> str:
        return ",".join(n.bootstrap for n in self.nodes.values() if n.node_id != node_id)

    # -- configuration ----------------------------------------------------------------
    def _server_properties(self, node: KafkaNode) -> str:
        voters = ",".join(
            f"{n.node_id}@{LOOPBACK}:{n.controller_port}" for n in self.nodes.values() if n.is_voter
        )
        if self.secure:
            return self._secure_server_properties(node, voters)
        replication = min(self.size, 3)
        listeners = [f"PLAINTEXT://{LOOPBACK}:{node.port}"]
        advertised = [f"PLAINTEXT://{LOOPBACK}:{node.port}"]
        protocols = ["PLAINTEXT:PLAINTEXT", "CONTROLLER:PLAINTEXT"]
        if node.is_voter:
            listeners.append(f"CONTROLLER://{LOOPBACK}:{node.controller_port}")
        if node.sasl_port:
            listeners.append(f"SASL_PLAINTEXT://{LOOPBACK}:{node.sasl_port}")
            advertised.append(f"SASL_PLAINTEXT://{LOOPBACK}:{node.sasl_port}")
            protocols.append("SASL_PLAINTEXT:SASL_PLAINTEXT")
        props = {
            "process.roles": "broker,controller" if node.is_voter else "broker",
            "node.id": str(node.node_id),
            "controller.quorum.voters": voters,
            "listeners": ",".join(listeners),
            "advertised.listeners": ",".join(advertised),
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": ",".join(protocols),
            "log.dirs": str(node.data_dir / "data"),
            "num.partitions": "1",
            "default.replication.factor": str(replication),
            "min.insync.replicas": str(min(self.min_insync_replicas, replication)),
            "offsets.topic.replication.factor": str(replication),
            "transaction.state.log.replication.factor": str(replication),
            "transaction.state.log.min.isr": str(min(self.min_insync_replicas, replication)),
            "group.initial.rebalance.delay.ms": "0",
            "controlled.shutdown.enable": "true",
            "auto.leader.rebalance.enable": "false",
            "num.network.threads": "2",
            "num.io.threads": "2",
            "background.threads": "2",
            "log.cleaner.enable": "false",
            **self._sasl_properties(),
            **self.extra_config,
        }
        return "".join(f"{k}={v}\n" for k, v in props.items())

    def _secure_server_properties(self, node: KafkaNode, voters: str) -> str:
        assert self.ca is not None
        assert self.node_cert is not None
        replication = min(self.size, 3)
        listeners = [
            f"CLIENT://{LOOPBACK}:{node.port}",
            f"INTERNAL://{LOOPBACK}:{node.internal_port}",
        ]
        advertised = list(listeners)
        if node.is_voter:
            listeners.append(f"CONTROLLER://{LOOPBACK}:{node.controller_port}")
        props = {
            "process.roles": "broker,controller" if node.is_voter else "broker",
            "node.id": str(node.node_id),
            "controller.quorum.voters": voters,
            "listeners": ",".join(listeners),
            "advertised.listeners": ",".join(advertised),
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "INTERNAL",
            "listener.security.protocol.map": "CLIENT:SASL_SSL,INTERNAL:SSL,CONTROLLER:SSL",
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(self.node_cert.keystore),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(self.ca.ca_file),
            "listener.name.internal.ssl.client.auth": "required",
            "listener.name.controller.ssl.client.auth": "required",
            "ssl.principal.mapping.rules": "RULE:^CN=([^,]+)$/$1/,DEFAULT",
            "sasl.enabled.mechanisms": "SCRAM-SHA-512",
            "listener.name.client.scram-sha-512.sasl.jaas.config": (
                "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            ),
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users": "User:broker;User:admin",
            "log.dirs": str(node.data_dir / "data"),
            "num.partitions": "1",
            "default.replication.factor": str(replication),
            "min.insync.replicas": str(min(self.min_insync_replicas, replication)),
            "offsets.topic.replication.factor": str(replication),
            "transaction.state.log.replication.factor": str(replication),
            "transaction.state.log.min.isr": str(min(self.min_insync_replicas, replication)),
            "group.initial.rebalance.delay.ms": "0",
            "controlled.shutdown.enable": "true",
            "auto.leader.rebalance.enable": "false",
            "num.network.threads": "2",
            "num.io.threads": "2",
            "background.threads": "2",
            "log.cleaner.enable": "false",
            **self.extra_config,
        }
        return "".join(f"{k}={v}\n" for k, v in props.items())

    def _sasl_properties(self) -> dict[str, str]:
        if not self.sasl_users:
            return {}
        users = " ".join(f'user_{u}="{p}"' for u, p in self.sasl_users.items())
        admin, password = next(iter(self.sasl_users.items()))
        return {
            "sasl.enabled.mechanisms": "PLAIN",
            "listener.name.sasl_plaintext.plain.sasl.jaas.config": (
                "org.apache.kafka.common.security.plain.PlainLoginModule required "
                f'username="{admin}" password="{password}" {users};'
            ),
        }

    def _java(self, main_class: str, *args: str, bundle: Path | None = None) -> list[str]:
        bundle = bundle or self.bundle
        log_config = bundle / "config" / "log4j2.properties"
        return [
            "java",
            *self.jvm_opts,
            f"-Dlog4j2.configurationFile={log_config}",
            "-cp",
            str(bundle / "libs" / "*"),
            main_class,
            *args,
        ]

    def _format(self, node: KafkaNode) -> None:
        node.data_dir.mkdir(parents=True, exist_ok=True)
        node.config_path.write_text(self._server_properties(node))
        argv = self._java(
            "kafka.tools.StorageTool",
            "format",
            "--ignore-formatted",
            # "=" form: a base64url id may start with "-" and would read as an option
            f"--cluster-id={self.cluster_id}",
            f"--config={node.config_path}",
        )
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(
                f"formatting Kafka node {node.node_id} failed:\n{result.stdout}\n{result.stderr}"
            )

    # -- lifecycle ----------------------------------------------------------------------
    def start(self, timeout: float = 90.0) -> None:
        """Format every node's storage once, start all nodes and wait until all serve."""
        with ThreadPoolExecutor(max_workers=self.size) as pool:
            list(pool.map(self._format, self.nodes.values()))
        for node_id in self.nodes:
            self.start_node(node_id, wait=False)
        self.wait_healthy(timeout)

    def start_node(self, node_id: int, wait: bool = True, timeout: float = 60.0) -> None:
        node = self.nodes[node_id]
        if node.running:
            return
        node.process = ServerProcess(
            self._java("kafka.Kafka", str(node.config_path), bundle=node.bundle),
            node.data_dir / "server.log",
        )
        node.process.start()
        if wait:
            self.wait_healthy(timeout)

    def stop_node(self, node_id: int, timeout: float = 60.0) -> None:
        """Stop one node with SIGTERM: Kafka's controlled shutdown moves its leaderships away."""
        node = self.nodes[node_id]
        if node.process is not None:
            node.process.stop(timeout=timeout)

    def upgrade_node(self, node_id: int, bundle: Path, timeout: float = 90.0) -> None:
        """A rolling upgrade's step: stop the node (controlled shutdown), start it on another
        release's jars, and wait until the cluster serves with every node again."""
        self.stop_node(node_id)
        self.nodes[node_id].bundle = bundle
        self.start_node(node_id, wait=True, timeout=timeout)

    def kill_node(self, node_id: int) -> None:
        """SIGKILL one node: no controlled shutdown, its leaderships fail over."""
        node = self.nodes[node_id]
        if node.process is not None:
            node.process.kill()

    def pause_node(self, node_id: int) -> None:
        """SIGSTOP one node: it holds its connections and answers nothing (a hung broker)."""
        self._signal(node_id, signal.SIGSTOP)

    def resume_node(self, node_id: int) -> None:
        self._signal(node_id, signal.SIGCONT)

    def _signal(self, node_id: int, signum: int) -> None:
        pid = self.nodes[node_id].process.pid if self.nodes[node_id].process else None
        if pid is None:
            raise RuntimeError(f"Kafka node {node_id} is not running")
        os.kill(pid, signum)

    def leader(self, topic: str, partition: int = 0) -> int:
        """The node id leading a partition, as the cluster's metadata says."""
        from kafka import KafkaAdminClient

        admin = KafkaAdminClient(**self.admin_kwargs(), request_timeout_ms=5000)
        try:
            (described,) = admin.describe_topics([topic])
            for item in described["partitions"]:
                if item["partition_index"] == partition and item["leader_id"] >= 0:
                    return int(item["leader_id"])
        finally:
            admin.close()
        raise KeyError(f"{topic}-{partition}")

    def stop(self) -> None:
        with ThreadPoolExecutor(max_workers=self.size) as pool:
            list(pool.map(lambda n: self.stop_node(n, timeout=30), list(self.nodes)))

    def ensure_all_running(self, timeout: float = 60.0) -> None:
        """Start whatever a previous test stopped and wait until every broker serves."""
        stopped = [n for n, node in self.nodes.items() if not node.running]
        for node_id in stopped:
            self.start_node(node_id, wait=False)
        if stopped:
            self.wait_healthy(timeout)

    # -- health ---------------------------------------------------------------------------
    def registered_brokers(self) -> set[int]:
        """Broker ids the cluster metadata lists as alive (asks any running node)."""
        from kafka import KafkaAdminClient  # the harness needs kafka-python only for this

        admin = KafkaAdminClient(**self.admin_kwargs(), request_timeout_ms=5000)
        try:
            brokers = admin.describe_cluster()["brokers"]
            return {int(b["broker_id"]) for b in brokers if not b.get("is_fenced")}
        finally:
            admin.close()

    def wait_healthy(self, timeout: float = 90.0) -> None:
        running = {n.node_id for n in self.nodes.values() if n.running}

        def ready() -> bool:
            for node_id in running:
                if not port_open(self.nodes[node_id].port):
                    return False
            return self.registered_brokers() == running

        wait_until(ready, timeout, f"Kafka brokers {sorted(running)}", 0.5, self.logs)

    def logs(self) -> str:
        return "\n".join(n.process.log_tail() for n in self.nodes.values() if n.process)
