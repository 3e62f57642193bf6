"""Smoke tests proving the harness servers are the real things, doing real work."""

from __future__ import annotations

import json
import time
import urllib.request
import uuid

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

from tests.harness._net import wait_until
from tests.harness.etcd import EtcdServer
from tests.harness.haproxy import HAProxyServer
from tests.harness.http_backend import HttpBackend
from tests.harness.kafka import KafkaCluster

SRV_ADMF_FDRAIN = 0x08  # HAProxy's "forced drain" admin-state bit


def test_kafka_produce_consume_with_replication_factor_3(kafka_cluster: KafkaCluster) -> None:
    topic = f"smoke.{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=kafka_cluster.bootstrap_servers)
    try:
        admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=3)])

        producer = KafkaProducer(bootstrap_servers=kafka_cluster.bootstrap_servers, acks="all")
        sent = [f"event-{i}".encode() for i in range(10)]
        for value in sent:
            producer.send(topic, value).get(timeout=30)
        producer.close()

        consumer = KafkaConsumer(
            bootstrap_servers=kafka_cluster.bootstrap_servers,
            auto_offset_reset="earliest",
            consumer_timeout_ms=10000,
        )
        consumer.assign([TopicPartition(topic, 0)])
        received = [record.value for record in consumer]
        consumer.close()
        assert received == sent

        described = admin.describe_topics([topic])[0]
        partition = described["partitions"][0]
        assert sorted(partition["replica_nodes"]) == [1, 2, 3]
        assert sorted(partition["isr_nodes"]) == [1, 2, 3]
    finally:
        admin.close()


def test_kafka_broker_stops_and_starts(kafka_cluster: KafkaCluster) -> None:
    kafka_cluster.stop_node(3)
    kafka_cluster.wait_healthy(60)
    assert kafka_cluster.registered_brokers() == {1, 2}
    kafka_cluster.start_node(3)
    assert kafka_cluster.registered_brokers() == {1, 2, 3}


def test_etcd_key_written_and_read_by_confctl(etcd: EtcdServer, confctl) -> None:
    key = "/conftool/v1/pools/eqiad/eventbus/eventbus/kafka1001.eqiad.wmnet"
    etcd.put(key, json.dumps({"pooled": "yes", "weight": 10}))

    shown = confctl("select", "name=kafka1001.eqiad.wmnet", "get")
    record = json.loads(shown.stdout.strip().splitlines()[0])
    assert record["kafka1001.eqiad.wmnet"]["pooled"] == "yes"
    assert record["kafka1001.eqiad.wmnet"]["weight"] == 10
    assert record["tags"] == "dc=eqiad,cluster=eventbus,service=eventbus"

    confctl("select", "name=kafka1001.eqiad.wmnet", "set/pooled=no")
    assert json.loads(etcd.get(key) or "{}")["pooled"] == "no"


def _hit_frontend(haproxy: HAProxyServer, count: int) -> list[str]:
    answers = []
    for _request in range(count):
        with urllib.request.urlopen(f"{haproxy.frontend_url}/v1/events", timeout=5) as resp:
            answers.append(resp.read().decode().strip())
    return answers


def test_haproxy_drain_through_runtime_api(
    haproxy: HAProxyServer, http_backends: dict[str, HttpBackend]
) -> None:
    wait_until(
        lambda: all(haproxy.server_state(s)["srv_op_state"] == "2" for s in http_backends),
        20,
        "both servers UP by health check",
    )
    assert set(_hit_frontend(haproxy, 10)) == {"kafka1001", "kafka1002"}

    assert haproxy.command("set server eventbus/kafka1001 state drain").strip() == ""
    state = haproxy.server_state("kafka1001")
    assert int(state["srv_admin_state"]) & SRV_ADMF_FDRAIN

    before = http_backends["kafka1001"].requests
    time.sleep(0.2)
    assert set(_hit_frontend(haproxy, 10)) == {"kafka1002"}
    assert http_backends["kafka1001"].requests == before

    haproxy.command("set server eventbus/kafka1001 state ready")
    assert set(_hit_frontend(haproxy, 10)) == {"kafka1001", "kafka1002"}
