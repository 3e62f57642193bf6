"""Kafka in the production shape (clients on SASL_SSL with SCRAM-SHA-512, brokers and
controllers on TLS with client certificates, the StandardAuthorizer): kafka_user makes users
and their ACLs; the service, replay and the describe/election modules connect as those users,
and what their ACLs do not allow is refused with a clear error.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAuthorizationFailedError

from tests.harness._net import wait_until
from tests.harness.collection import run_module
from tests.harness.kafka import KafkaCluster
from tests.service.conftest import make_event, own_service, run_replay

PASSWORDS = {
    "eventbus": "service-" + uuid.uuid4().hex,
    "eventbus-ops": "ops-" + uuid.uuid4().hex,
    "eventbus-replay": "replay-" + uuid.uuid4().hex,
}
TOPICS = ["eqiad.test.event", "codfw.test.event"]
SERVICE_ACLS = [
    {"resource_type": "topic", "name": "eqiad.", "pattern_type": "prefixed",
     "operations": ["write", "describe"]},
    {"resource_type": "cluster", "operations": ["describe", "idempotent_write"]},
]  # fmt: skip
REPLAY_ACLS = [
    {"resource_type": "topic", "name": "eqiad.", "pattern_type": "prefixed",
     "operations": ["write", "read", "describe"]},
    {"resource_type": "cluster", "operations": ["describe", "idempotent_write"]},
]  # fmt: skip
OPS_ACLS = [
    {"resource_type": "topic", "name": "*", "operations": ["describe", "describe_configs"]},
    {"resource_type": "cluster", "operations": ["describe", "alter"]},
]


@pytest.fixture(scope="module")
def secure(kafka_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    cluster = KafkaCluster(
        bundle=kafka_bundle, workdir=tmp_path_factory.mktemp("kafka-secure"), size=3, secure=True
    )
    try:
        cluster.start(timeout=120)
        admin = KafkaAdminClient(**cluster.admin_kwargs())
        admin.create_topics([NewTopic(t, 1, 3) for t in TOPICS])
        admin.close()
        yield cluster
    finally:
        cluster.stop()


def admin_args(cluster: KafkaCluster) -> dict[str, Any]:
    """The module options of the super user (the admin certificate, the TLS listener)."""
    kwargs = cluster.admin_kwargs()
    return {
        "bootstrap_servers": kwargs["bootstrap_servers"],
        "security_protocol": "SSL",
        "ssl_cafile": kwargs["ssl_cafile"],
        "ssl_certfile": kwargs["ssl_certfile"],
        "ssl_keyfile": kwargs["ssl_keyfile"],
        "request_timeout": 10,
    }


def user_args(cluster: KafkaCluster, name: str, password: str | None = None) -> dict[str, Any]:
    assert cluster.ca is not None
    return {
        "bootstrap_servers": cluster.bootstrap_servers.split(","),
        "security_protocol": "SASL_SSL",
        "ssl_cafile": str(cluster.ca.ca_file),
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_username": name,
        "sasl_password": password or PASSWORDS[name],
        "request_timeout": 10,
    }


def logs_in(cluster: KafkaCluster, name: str, password: str) -> bool:
    """Whether the user authenticates on the client listener and may list the topics its
    ACLs let it describe (a refused login ends within seconds)."""
    try:
        admin = KafkaAdminClient(
            **cluster.client_kwargs(name, password),
            request_timeout_ms=5000,
            bootstrap_timeout_ms=5000,
            reconnect_backoff_max_ms=1000,
        )
    except KafkaError:
        return False
    try:
        return "eqiad.test.event" in admin.list_topics()
    except KafkaError:
        return False
    finally:
        admin.close()


def make_user(cluster: KafkaCluster, name: str, acls: list[dict[str, Any]], **extra: Any) -> dict:
    args = {**admin_args(cluster), "name": name, "password": PASSWORDS[name], "acls": acls, **extra}
    result = run_module("kafka_user", args, check=extra.pop("_check", False))
    assert not result.get("failed"), result.get("msg")
    return result


@pytest.fixture(scope="module")
def users(secure: KafkaCluster) -> KafkaCluster:
    make_user(secure, "eventbus", SERVICE_ACLS)
    make_user(secure, "eventbus-replay", REPLAY_ACLS)
    make_user(secure, "eventbus-ops", OPS_ACLS)
    return secure


def test_kafka_user_creates_checks_and_is_idempotent(secure: KafkaCluster) -> None:
    name = "probe-" + uuid.uuid4().hex[:6]
    PASSWORDS[name] = "probe-secret"
    acls = [
        {"resource_type": "topic", "name": "eqiad.test.event", "operations": ["read", "describe"]}
    ]
    args = {**admin_args(secure), "name": name, "password": "probe-secret", "acls": acls}

    checked = run_module("kafka_user", args, check=True)
    assert checked["changed"] is True
    assert checked["password_set"] is True
    assert len(checked["acls_added"]) == 2
    # check mode changed nothing: the user cannot log in yet
    assert not logs_in(secure, name, "probe-secret")

    created = run_module("kafka_user", args)
    assert not created.get("failed"), created.get("msg")
    assert created["changed"] is True
    assert created["mechanisms_before"] == []
    assert {a["operation"] for a in created["acls_added"]} == {"read", "describe"}
    again = run_module("kafka_user", args)
    assert again["changed"] is False, again
    assert again["acls_added"] == []
    assert again["acls_removed"] == []
    # the brokers apply a new credential from the metadata log moments after the controller
    wait_until(lambda: logs_in(secure, name, "probe-secret"), 20, "the new user's login")

    # the ACLs the task no longer lists are removed; the credential stays
    narrowed = run_module("kafka_user", {**args, "acls": [{**acls[0], "operations": ["describe"]}]})
    assert narrowed["changed"] is True
    assert narrowed["password_set"] is False
    assert [a["operation"] for a in narrowed["acls_removed"]] == ["read"]

    # a rotation with update_password=always: the old password no longer logs in
    PASSWORDS[name] = "rotated-secret"
    rotated = run_module(
        "kafka_user", {**args, "password": "rotated-secret", "update_password": "always"}
    )
    assert rotated["changed"] is True
    assert rotated["password_set"] is True
    wait_until(lambda: logs_in(secure, name, "rotated-secret"), 20, "the rotated password's login")
    assert not logs_in(secure, name, "probe-secret")

    gone = run_module("kafka_user", {**admin_args(secure), "name": name, "state": "absent"})
    assert gone["changed"] is True
    assert len(gone["acls_removed"]) == 2
    assert (
        run_module("kafka_user", {**admin_args(secure), "name": name, "state": "absent"})["changed"]
        is False
    )
    wait_until(lambda: not logs_in(secure, name, "rotated-secret"), 20, "the removed user refused")


def test_kafka_user_refuses_what_it_cannot_do(users: KafkaCluster) -> None:
    # a principal without ALTER on the cluster (the service's) may not manage users or ACLs
    result = run_module(
        "kafka_user",
        {**user_args(users, "eventbus"), "name": "intruder", "password": "x" * 12, "acls": []},
    )
    assert result["failed"] is True
    assert "intruder" in result["msg"], result["msg"]
    assert not logs_in(users, "intruder", "x" * 12)
    bad = run_module("kafka_user", {**admin_args(users), "name": "x", "acls": []})
    assert bad["failed"] is True
    assert "needs a password" in bad["msg"]
    nameless = run_module(
        "kafka_user",
        {**admin_args(users), "name": "x", "password": "p" * 12,
         "acls": [{"resource_type": "topic", "operations": ["read"]}]},
    )  # fmt: skip
    assert nameless["failed"] is True
    assert "needs a name" in nameless["msg"]


def test_describe_and_election_as_the_modules_user(users: KafkaCluster) -> None:
    described = run_module(
        "kafka_topic_describe", {**user_args(users, "eventbus-ops"), "topic_pattern": r"eqiad\..*"}
    )
    assert not described.get("failed"), described.get("msg")
    assert described["summary"]["healthy"] is True
    assert described["topics"]["eqiad.test.event"]["min_insync_replicas"] == 2
    elected = run_module(
        "kafka_leader_election",
        {**user_args(users, "eventbus-ops"), "topics": ["eqiad.test.event"]},
    )
    assert not elected.get("failed"), elected.get("msg")


def test_the_services_user_writes_its_datacenter_only(users: KafkaCluster) -> None:
    producer = KafkaProducer(
        **users.client_kwargs("eventbus", PASSWORDS["eventbus"]), acks="all", max_block_ms=10000
    )
    try:
        producer.send("eqiad.test.event", b'{"probe": 1}').get(timeout=20)
        with pytest.raises((TopicAuthorizationFailedError, KafkaError)):
            producer.send("codfw.test.event", b'{"probe": 2}').get(timeout=20)
    finally:
        producer.close(timeout=5)
    # nor read what its datacenter holds
    consumer = KafkaConsumer(
        **users.client_kwargs("eventbus", PASSWORDS["eventbus"]),
        auto_offset_reset="earliest",
        consumer_timeout_ms=5000,
    )
    try:
        consumer.assign([TopicPartition("eqiad.test.event", 0)])
        with pytest.raises(TopicAuthorizationFailedError):
            list(consumer)
    finally:
        consumer.close()


def consume_ids(cluster: KafkaCluster, topic: str) -> set[str]:
    consumer = KafkaConsumer(
        **cluster.admin_kwargs(), auto_offset_reset="earliest", consumer_timeout_ms=2000
    )
    try:
        consumer.assign([TopicPartition(topic, 0)])
        return {json.loads(r.value).get("meta", {}).get("id") for r in consumer}
    finally:
        consumer.close()


def security(cluster: KafkaCluster, user: str) -> dict[str, Any]:
    assert cluster.ca is not None
    return {
        "security_protocol": "SASL_SSL",
        "ssl_cafile": str(cluster.ca.ca_file),
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": user,
        "sasl_plain_password": PASSWORDS[user],
    }


def test_service_produces_over_sasl_ssl(users: KafkaCluster, tmp_path: Path) -> None:
    kafka = {
        "bootstrap_servers": users.bootstrap_servers.split(","),
        "produce_timeout": 10,
        "security": security(users, "eventbus"),
    }
    with own_service(tmp_path, users.bootstrap_servers, kafka=kafka) as service:
        events = [make_event() for _event in range(5)]
        answer = service.post(events)
        assert answer.status == 201, answer.body
        topics = service.request("GET", "/v1/topics")
        assert topics.status == 200
        assert "eqiad.test.event" in [t["kafka_topic"] for t in topics.json()]
        assert service.request("GET", "/healthz").status == 200
    wait_until(
        lambda: {e["meta"]["id"] for e in events} <= consume_ids(users, "eqiad.test.event"),
        30,
        "the service's events in Kafka",
    )


def test_service_whose_user_may_not_write_answers_503_and_logs(
    users: KafkaCluster, tmp_path: Path
) -> None:
    """Credentials that log in but lack WRITE (an ACL left out): each event is refused by
    Kafka, the client gets 503 (never a 500), and every event is in the failed-events log."""
    kafka = {
        "bootstrap_servers": users.bootstrap_servers.split(","),
        "produce_timeout": 5,
        "security": security(users, "eventbus-ops"),
    }
    with own_service(tmp_path, users.bootstrap_servers, kafka=kafka) as service:
        events = [make_event() for _event in range(3)]
        answer = service.post(events)
        assert answer.status == 503, (answer.status, answer.body)
        logged = {
            json.loads(r["event"]["rawEvent"])["meta"]["id"] for r in service.failed_records()
        }
        assert {e["meta"]["id"] for e in events} <= logged
        assert "Authorization" in service.log() or "authoriz" in service.log().lower()


def test_replay_reads_and_produces_as_its_user(users: KafkaCluster, tmp_path: Path) -> None:
    events = [make_event() for _event in range(3)]
    client = tmp_path / "replay-kafka.yaml"
    client.write_text(yaml.safe_dump(security(users, "eventbus-replay")))
    client.chmod(0o600)
    done, _seconds = run_replay(
        "--no-validate",
        "--kafka-client-config", str(client),
        "--bootstrap-servers", users.bootstrap_servers,
        "--topic-format", "eqiad.{meta[topic]}",
        stdin="".join(json.dumps(e) + "\n" for e in events),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "produced 3" in done.stdout, done.stdout
    assert {e["meta"]["id"] for e in events} <= consume_ids(users, "eqiad.test.event")

    # the same lines again: the lookup (READ) finds them, nothing produced twice
    again, _seconds = run_replay(
        "--no-validate",
        "--kafka-client-config", str(client),
        "--bootstrap-servers", users.bootstrap_servers,
        "--topic-format", "eqiad.{meta[topic]}",
        stdin="".join(json.dumps(e) + "\n" for e in events),
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert "produced 0" in again.stdout, again.stdout
    assert "already present 3" in again.stdout, again.stdout

    # without credentials the run is aborted, saying why, and nothing is marked done
    bare, _seconds = run_replay(
        "--no-validate",
        "--bootstrap-servers", users.bootstrap_servers,
        "--topic-format", "eqiad.{meta[topic]}",
        stdin=json.dumps(make_event()) + "\n",
        timeout=120,
    )  # fmt: skip
    assert bare.returncode not in (0, 1), (bare.returncode, bare.stderr)
