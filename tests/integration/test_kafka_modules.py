"""kafka_topic_describe and kafka_leader_election against a real 3-broker KRaft cluster (each
module's file run as AnsiballZ runs it; test_modules_ad_hoc.py runs them through ``ansible``)."""

from __future__ import annotations

import uuid

import pytest
from kafka import KafkaAdminClient
from kafka.admin import NewTopic

from tests.harness._net import free_port, wait_until
from tests.harness.collection import run_module
from tests.harness.kafka import KafkaCluster


@pytest.fixture
def topic(kafka_cluster: KafkaCluster) -> str:
    name = f"eqiad.it.{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=kafka_cluster.bootstrap_servers)
    try:
        admin.create_topics([NewTopic(name, num_partitions=3, replication_factor=3)])
    finally:
        admin.close()
    wait_until(lambda: describe(kafka_cluster, name)["summary"]["healthy"], 30, f"{name} in sync")
    return name


def describe(cluster: KafkaCluster, topic: str, servers: str | None = None, **extra) -> dict:
    args = {
        "bootstrap_servers": (servers or cluster.bootstrap_servers).split(","),
        "topics": [topic],
    }
    result = run_module("kafka_topic_describe", {**args, **extra})
    assert not result.get("failed"), result.get("msg")
    return result


def test_describe_a_healthy_topic(kafka_cluster: KafkaCluster, topic: str) -> None:
    result = describe(kafka_cluster, topic, broker_id=1)
    assert result["changed"] is False
    info = result["topics"][topic]
    assert info["partition_count"] == 3
    assert info["replication_factor"] == 3
    assert info["min_insync_replicas"] == 2
    for partition in info["partitions"]:
        assert sorted(partition["isr"]) == [1, 2, 3]
        assert partition["leader"] == partition["preferred_leader"] == partition["replicas"][0]
    summary = result["summary"]
    assert summary["healthy"] is True
    assert summary["brokers"] == [1, 2, 3]
    assert summary["quorum"]["voters"] == [1, 2, 3]
    assert summary["quorum"]["voters_in_sync"] == [1, 2, 3]
    assert sorted(int(b) for b in summary["leader_count"]) == [1, 2, 3]
    broker = result["broker"]
    assert broker["safe_to_stop"] is True
    assert broker["reasons"] == []
    # the broker's partitions across the cluster: other tests' topics share the session's
    # cluster, so only this topic's are counted
    assert sorted(p for p in broker["replicates"] if p.startswith(f"{topic}-")) == [
        f"{topic}-{index}" for index in range(3)
    ]
    assert len([p for p in broker["leads"] if p.startswith(f"{topic}-")]) == 1


def test_describe_answers_while_a_broker_has_just_died(
    kafka_cluster: KafkaCluster, topic: str
) -> None:
    """A broker SIGKILLed is still in the cluster's metadata for seconds (until the
    controller fences it): a read sent to it is refused, and the module tries another broker
    instead of failing the pre-flight (CI11: 'KafkaConnectionError: 111 ECONNREFUSED')."""
    kafka_cluster.kill_node(3)
    for _attempt in range(4):  # each run picks brokers at random: several runs meet node 3
        result = describe(kafka_cluster, topic)
        assert result["topics"][topic]["partition_count"] == 3
    kafka_cluster.start_node(3)


def test_stopped_broker_shrinks_isr_flips_safe_to_stop_and_election_restores_leaders(
    kafka_cluster: KafkaCluster, topic: str
) -> None:
    kafka_cluster.stop_node(3)
    live = kafka_cluster.bootstrap_servers_except(3)
    wait_until(
        lambda: describe(kafka_cluster, topic, live)["summary"]["brokers"] == [1, 2],
        30,
        "broker 3 gone from the metadata",
    )
    wait_until(
        lambda: (
            describe(kafka_cluster, topic, live)["summary"]["quorum"]["voters_in_sync"] == [1, 2]
        ),
        15,
        "the quorum leader to see voter 3 fall behind",
    )
    result = describe(kafka_cluster, topic, live, broker_id=1)
    for partition in result["topics"][topic]["partitions"]:
        assert sorted(partition["isr"]) == [1, 2]
        assert partition["offline_replicas"] == [3]
        assert partition["leader"] in (1, 2)
    summary = result["summary"]
    assert len(summary["under_replicated_partitions"]) == 3
    assert summary["under_min_isr_partitions"] == []
    assert summary["healthy"] is False
    assert summary["quorum"]["voters_in_sync"] == [1, 2]
    # broker 1 stopping now would leave each partition with one in-sync replica, below 2
    broker = result["broker"]
    assert broker["safe_to_stop"] is False
    assert len(broker["reasons"]) >= 3
    assert "below min.insync.replicas=2" in broker["reasons"][0]
    assert any("quorum would lose its majority" in r for r in broker["reasons"])
    stopped = describe(kafka_cluster, topic, live, broker_id=3)["broker"]
    assert stopped["registered"] is False
    assert stopped["leads"] == []
    # a rolling operation's grace: waiting for a steady cluster fails, saying what it saw
    unsteady = run_module(
        "kafka_topic_describe",
        {"bootstrap_servers": live.split(","), "topics": [topic], "broker_id": 3,
         "healthy_samples": 2, "sample_interval": 0.2, "wait_timeout": 1.0},
    )  # fmt: skip
    assert unsteady["failed"] is True
    assert "not healthy in 2 consecutive samples" in unsteady["msg"]
    assert f"under-replicated {topic}-" in unsteady["msg"]
    assert "broker 3 is not registered" in unsteady["msg"]

    kafka_cluster.start_node(3)
    steady = describe(kafka_cluster, topic, broker_id=3, healthy_samples=3, sample_interval=0.5,
                      wait_timeout=60)  # fmt: skip
    assert steady["summary"]["healthy"] is True
    assert steady["broker"]["registered"] is True
    assert steady["samples"] >= 3
    not_preferred = describe(kafka_cluster, topic)["summary"]["not_preferred_leader_partitions"]
    assert len(not_preferred) == 1  # the partition broker 3 led before it stopped

    args = {"bootstrap_servers": kafka_cluster.bootstrap_servers.split(","), "topics": [topic]}
    planned = run_module("kafka_leader_election", args, check=True)
    assert planned["changed"] is True
    assert [m["partition"] for m in planned["moved"]] == not_preferred
    assert planned["moved"][0]["leader_after"] == 3
    assert (
        describe(kafka_cluster, topic)["summary"]["not_preferred_leader_partitions"]
        == not_preferred
    )

    elected = run_module("kafka_leader_election", args)
    assert not elected.get("failed"), elected.get("msg")
    assert elected["changed"] is True
    assert elected["moved"] == [
        {
            "partition": not_preferred[0],
            "leader_before": planned["moved"][0]["leader_before"],
            "leader_after": 3,
        }
    ]
    after = describe(kafka_cluster, topic, broker_id=3)
    assert after["summary"]["not_preferred_leader_partitions"] == []
    assert after["broker"]["leads"] == not_preferred

    again = run_module("kafka_leader_election", args)
    assert again["changed"] is False
    assert again["moved"] == []


def test_unreachable_kafka_fails_with_a_clear_message() -> None:
    result = run_module(
        "kafka_topic_describe",
        {"bootstrap_servers": [f"127.0.0.1:{free_port()}"], "request_timeout": 3},
    )
    assert result["failed"] is True
    assert "could not reach any Kafka broker" in result["msg"]
    assert "bootstrap_servers" in result["msg"]


def test_unknown_topic_fails_naming_it(kafka_cluster: KafkaCluster) -> None:
    result = run_module(
        "kafka_topic_describe",
        {
            "bootstrap_servers": kafka_cluster.bootstrap_servers.split(","),
            "topics": ["no.such.topic"],
        },
    )
    assert result["failed"] is True
    assert "no.such.topic" in result["msg"]
    assert "not found" in result["msg"]
