"""The Kafka modules' SASL options against a real SASL_PLAINTEXT listener, and an unclean
leader election on a really offline partition."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic

from tests.conftest import SASL_USERS
from tests.harness._net import wait_until
from tests.harness.collection import run_module
from tests.harness.kafka import KafkaCluster


def sasl_args(cluster: KafkaCluster, password: str) -> dict:
    return {
        "bootstrap_servers": cluster.sasl_bootstrap_servers.split(","),
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "PLAIN",
        "sasl_username": "operator",
        "sasl_password": password,
        "request_timeout": 5,
    }


def test_describe_over_sasl(kafka_cluster: KafkaCluster) -> None:
    result = run_module("kafka_topic_describe", sasl_args(kafka_cluster, SASL_USERS["operator"]))
    assert not result.get("failed"), result.get("msg")
    assert result["summary"]["brokers"] == [1, 2, 3]


def test_wrong_sasl_password_fails_without_echoing_it(kafka_cluster: KafkaCluster) -> None:
    result = run_module("kafka_topic_describe", sasl_args(kafka_cluster, "not-the-password"))
    assert result["failed"] is True
    assert "not-the-password" not in str(result)  # no_log hides the secret everywhere
    # Kafka sends its "authentication failed" answer as it closes the connection, and
    # kafka-python drops the data of a read that also sees the close: the client gets the
    # answer or only the disconnect, by timing. Either way the message points at the
    # credentials, and names Kafka's reason when the client got it.
    assert "check sasl_mechanism, sasl_username and sasl_password" in result["msg"]
    if "refused the credentials" in result["msg"]:
        assert "Invalid username or password" in result["msg"]
    else:
        assert "the brokers closed the connection" in result["msg"]


def test_sasl_options_are_required_together() -> None:
    result = run_module(
        "kafka_topic_describe",
        {"bootstrap_servers": ["127.0.0.1:1"], "security_protocol": "SASL_PLAINTEXT"},
    )
    assert result["failed"] is True
    assert "sasl_mechanism" in result["msg"]


@pytest.fixture(scope="module")
def four_nodes(
    kafka_bundle: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KafkaCluster]:
    """Nodes 11-13 are KRaft voters, node 14 a broker only: two brokers of a partition can
    be stopped while the quorum keeps its majority."""
    cluster = KafkaCluster(
        bundle=kafka_bundle,
        workdir=tmp_path_factory.mktemp("kafka4"),
        size=4,
        voters=3,
        first_node_id=11,
        min_insync_replicas=1,
    )
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def test_unclean_election_brings_an_offline_partition_back(four_nodes: KafkaCluster) -> None:
    cluster, topic = four_nodes, "eqiad.unclean"
    admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap_servers)
    admin.create_topics(
        [
            NewTopic(
                topic,
                replica_assignments={0: [14, 13]},
                topic_configs={
                    "min.insync.replicas": "1",
                    "unclean.leader.election.enable": "false",
                },
            )
        ]
    )
    admin.close()
    producer = KafkaProducer(bootstrap_servers=cluster.bootstrap_servers, acks="all")
    producer.send(topic, b"both replicas have this").get(timeout=30)

    def describe() -> dict:
        return run_module(
            "kafka_topic_describe",
            {
                "bootstrap_servers": cluster.bootstrap_servers_except(14).split(","),
                "topics": [topic],
            },
        )

    cluster.stop_node(14)  # ISR shrinks to [13]
    producer.send(topic, b"only 13 has this").get(timeout=30)
    producer.close()
    cluster.stop_node(13)  # the last in-sync replica goes: the partition is offline
    cluster.start_node(14)  # back, but not in sync: a clean election cannot pick it
    wait_until(lambda: describe()["summary"]["offline_partitions"] == [f"{topic}-0"], 30, "offline")

    args = {
        "bootstrap_servers": cluster.bootstrap_servers_except(13).split(","),
        "topics": [topic],
        "election_type": "unclean",
    }
    preferred = run_module("kafka_leader_election", {**args, "election_type": "preferred"})
    assert preferred["changed"] is False  # a preferred election does not touch it
    planned = run_module("kafka_leader_election", args, check=True)
    assert planned["moved"] == [
        {"partition": f"{topic}-0", "leader_before": None, "leader_after": None}
    ]
    elected = run_module("kafka_leader_election", args)
    assert not elected.get("failed"), elected.get("msg")
    assert elected["changed"] is True
    assert elected["moved"] == [
        {"partition": f"{topic}-0", "leader_before": None, "leader_after": 14}
    ]
    after = describe()
    assert after["summary"]["offline_partitions"] == []
    assert after["topics"][topic]["partitions"][0]["leader"] == 14
    assert run_module("kafka_leader_election", args)["changed"] is False
