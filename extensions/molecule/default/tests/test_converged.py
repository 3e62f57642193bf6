"""What a converged lab must be: services active and enabled, ports listening, every host
pooled (eqiad read with the real confctl, codfw from HAProxy's runtime API), an event posted
to each datacenter's service address answered 201 and consumed from <dc>.test.event, each
host's events in its own datacenter, three KRaft voters per cluster, every topic's
partitions fully in sync; and closed doors: Kafka only on TLS with a login, each user held to
its ACLs, the test event for its host only, etcd and Alertmanager only with a login, no
Prometheus lifecycle API, units sandboxed at least as Debian's prometheus.service, a memory
ceiling."""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from conftest import Lab, datacenter  # extensions/molecule/conftest.py


def post(url: str, event: dict) -> int:
    request = urllib.request.Request(
        url,
        data=json.dumps(event).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status


def test_eventbus_hosts_run_kafka_and_the_service(lab: Lab, eventbus_host: str) -> None:
    node = lab.host(eventbus_host)
    for unit in ("kafka", "eventbus"):
        assert node.service(unit).is_running, f"{unit} on {eventbus_host}"
        assert node.service(unit).is_enabled, f"{unit} on {eventbus_host}"
    assert node.socket("tcp://0.0.0.0:8085").is_listening
    assert node.socket("tcp://9092").is_listening
    current = node.file("/srv/deployment/eventbus/current")
    assert current.is_symlink
    assert current.linked_to.startswith("/srv/deployment/eventbus/releases/")
    assert node.file("/srv/log/eventbus").is_directory


def test_conf_hosts_run_the_voter_etcd_and_the_load_balancer(lab: Lab, lb_host: str) -> None:
    node = lab.host(lb_host)
    units = ["kafka", "etcd", "haproxy"]
    if datacenter(lb_host) == "eqiad":
        units.append("eventbus-pool-agent")
    for unit in units:
        assert node.service(unit).is_running, f"{unit} on {lb_host}"
        assert node.service(unit).is_enabled, f"{unit} on {lb_host}"
    assert node.socket("tcp://127.0.0.1:2379").is_listening
    assert node.socket(f"tcp://{lab.service_address(datacenter(lb_host))}:8085").is_listening
    assert node.file("/run/haproxy/admin.sock").is_socket  # the runtime API


def test_every_host_is_pooled_and_up(lab: Lab, eventbus_host: str, tmp_path: Path) -> None:
    dc = datacenter(eventbus_host)
    if dc == "eqiad":  # conftool: the keys in etcd, read with the real confctl
        assert lab.confctl_get(eventbus_host, tmp_path)["pooled"] == "yes"
    # and HAProxy serves it (in eqiad as the pool agent applied the keys)
    assert lab.haproxy_status(lab.loadbalancer(dc))[eventbus_host] == "UP"


def test_an_event_to_the_service_address_is_in_kafka(lab: Lab, dc: str) -> None:
    event_id = f"molecule-{uuid.uuid4()}"
    event = {"$schema": "/test/event/1.0.0", "meta": {"topic": "test.event", "id": event_id}}
    assert post(f"http://{lab.service_address(dc)}:8085/v1/events", event) == 201
    assert event_id in lab.ids_in_kafka(dc, "test.event")


def test_each_host_puts_events_into_its_own_datacenter(lab: Lab) -> None:
    sent: dict[str, list[str]] = {"eqiad": [], "codfw": []}
    for name in lab.eventbus:
        event_id = f"molecule-{uuid.uuid4()}"
        event = {
            "$schema": "/mediawiki/page/edit/1.0.0",
            "meta": {"topic": "mediawiki.page_edit", "id": event_id},
            "page_id": 1,
            "rev_id": 2,
        }
        assert post(f"http://{lab.address(name)}:8085/v1/events", event) == 201, name
        sent[datacenter(name)].append(event_id)
    for dc, other in (("eqiad", "codfw"), ("codfw", "eqiad")):
        ids = set(lab.ids_in_kafka(dc, "mediawiki.page_edit"))
        assert set(sent[dc]) <= ids
        assert not set(sent[other]) & ids  # each event went to its own datacenter


def test_each_cluster_has_three_voters(lab: Lab, dc: str) -> None:
    quorum = lab.host(lab.broker(dc)).check_output("kafka metadata-quorum describe --status")
    voters = sorted(int(v) for v in re.findall(r'"id": (\d+)', quorum))
    members = [*lab.eventbus, *lab.loadbalancers]
    expected = [lab.hostvar(name, "kafka_node_id") for name in members if datacenter(name) == dc]
    assert voters == sorted(expected)


def test_every_partition_is_fully_in_sync(lab: Lab, dc: str) -> None:
    described = lab.host(lab.broker(dc)).check_output("kafka topic --describe")
    partitions = re.findall(
        r"Topic: (\S+)\s+Partition: \d+.*Replicas: ([\d,]+)\s+Isr: ([\d,]+)", described
    )
    assert {topic for topic, _r, _i in partitions} >= {
        f"{dc}.test.event",
        f"{dc}.mediawiki.page_edit",
    }
    out_of_sync = [
        (topic, replicas, isr)
        for topic, replicas, isr in partitions
        if sorted(replicas.split(",")) != sorted(isr.split(","))
    ]
    assert out_of_sync == []


# Run on a broker with the eventbus release's Python: what a client gets on the client port
# with no login, a wrong password, replay's login (/etc/eventbus/replay-kafka.yaml) and, for
# reading, the service's (its config's kafka.security), as JSON.
KAFKA_DOORS = r"""
import json, sys, yaml
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.errors import KafkaError
servers, topic = sys.argv[1], sys.argv[2]
quick = dict(request_timeout_ms=5000, bootstrap_timeout_ms=5000, reconnect_backoff_max_ms=1000)
def topics(**login):
    try:
        admin = KafkaAdminClient(bootstrap_servers=servers, **quick, **login)
    except KafkaError as err:
        return type(err).__name__
    try:
        return sorted(admin.list_topics())
    except KafkaError as err:
        return type(err).__name__
    finally:
        admin.close()
def reads(**login):
    consumer = KafkaConsumer(
        bootstrap_servers=servers, auto_offset_reset="earliest", **quick, **login
    )
    try:
        consumer.assign([TopicPartition(topic, 0)])
        consumer.poll(timeout_ms=5000)
        return "read"
    except KafkaError as err:
        return type(err).__name__
    finally:
        consumer.close()
replay = yaml.safe_load(open("/etc/eventbus/replay-kafka.yaml"))
service = yaml.safe_load(open("/etc/eventbus/config.yaml"))["kafka"]["security"]
print(json.dumps({
    "none": topics(), "wrong": topics(**dict(replay, sasl_plain_password="not-the-password")),
    "replay": topics(**replay), "replay_reads": reads(**replay), "service_reads": reads(**service),
}))
"""


def test_kafka_wants_tls_a_login_and_an_acl(lab: Lab, dc: str) -> None:
    broker = lab.broker(dc)
    answer = lab.host(broker).check_output(
        "/srv/deployment/eventbus/current/bin/python -c %s %s:9092 %s.test.event",
        KAFKA_DOORS,
        broker,
        dc,
    )
    seen = json.loads(answer)
    assert isinstance(seen["none"], str), seen  # no TLS and no login: refused
    assert isinstance(seen["wrong"], str), seen  # a wrong password: refused
    assert f"{dc}.test.event" in seen["replay"]
    assert seen["replay_reads"] == "read"
    assert seen["service_reads"] == "TopicAuthorizationFailedError"  # it may only produce
    # the nodes' TLS listeners (between brokers, to the controllers) want a certificate
    server = lab.host(broker).check_output("cat /etc/kafka/server.properties")
    assert "listener.security.protocol.map=CLIENT:SASL_SSL,INTERNAL:SSL,CONTROLLER:SSL" in server
    assert "listener.name.internal.ssl.client.auth=required" in server
    assert "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer" in server


def test_etcd_refuses_the_anonymous(lab: Lab, dc: str) -> None:
    """Nobody without a login reads or changes the pool or forges a run lock (the playbooks
    log in as eventbus-ops: the proof and the cases depool, repool and lock through it)."""
    address = lab.address(lab.loadbalancer(dc))
    for method, key in (
        ("GET", "/conftool/v1/pools"),
        ("PUT", f"/conftool/v1/pools/{dc}/eventbus/eventbus/intruder"),
        ("PUT", "/eventbus-ops/locks/pool/forged"),
    ):
        request = urllib.request.Request(
            f"http://{address}:2379/v2/keys{key}",
            data=b"value=x" if method == "PUT" else None,
            method=method,
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                status = answer.status
        except urllib.error.HTTPError as err:
            status = err.code
        assert status == 401, (dc, method, key, status)
    # (test_every_host_is_pooled_and_up reads eqiad's pool with the real confctl, logged in)


def test_alertmanager_answers_only_its_users(lab: Lab, dc: str) -> None:
    """Nobody without a login reads the alerts or makes a silence; the runbook's user does
    (the proof's playbooks silence every host through it; test_proof.py's silenced alerts are
    the ones Prometheus delivered, logged in as its own user)."""
    for path in ("/api/v2/silences", "/api/v2/alerts", "/-/ready"):
        assert lab.alertmanager(dc, path, login=False)[0] == 401, (dc, path)
    status, silences = lab.alertmanager(dc, "/api/v2/silences")
    assert status == 200, dc
    assert isinstance(silences, list)
    assert lab.alertmanager(dc, "/-/ready")[0] == 200, dc


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def test_prometheus_scrapes_every_service_broker_and_load_balancer(lab: Lab, dc: str) -> None:
    prometheus = f"http://{lab.address(lab.loadbalancer(dc))}:9090"
    deadline = time.monotonic() + 60  # the first scrapes after a converge
    while True:
        targets = get_json(f"{prometheus}/api/v1/targets?state=active")["data"]["activeTargets"]
        health = {(t["labels"]["job"], t["labels"]["instance"]): t["health"] for t in targets}
        if all(h == "up" for h in health.values()) or time.monotonic() > deadline:
            break
        time.sleep(2)
    jobs = {job for job, _instance in health}
    assert jobs == {"eventbus", "kafka", "haproxy"}
    members = [*lab.eventbus, *lab.loadbalancers]
    kafka_nodes = [name for name in members if datacenter(name) == dc]
    assert len([1 for job, _i in health if job == "kafka"]) == len(kafka_nodes)
    assert {k: h for k, h in health.items() if h != "up"} == {}
    rules = get_json(f"{prometheus}/api/v1/rules")["data"]["groups"]
    alerts = {rule["name"] for group in rules for rule in group["rules"]}
    expected = {"EventbusServiceDown", "KafkaUnderReplicatedPartitions", "KafkaOfflinePartitions"}
    assert expected <= alerts


def test_the_jmx_exporter_serves_the_broker_metrics_the_alerts_read(lab: Lab, dc: str) -> None:
    with urllib.request.urlopen(f"http://{lab.address(lab.broker(dc))}:7071/metrics") as response:
        text = response.read().decode()
    for name in (
        "kafka_server_replicamanager_underreplicatedpartitions",
        "kafka_server_replicamanager_underminisrpartitioncount",
        "kafka_server_replicamanager_leadercount",
        "kafka_server_replicamanager_isrshrinks_total",
        "kafka_network_requestmetrics_totaltimems",
        "kafka_server_brokertopicmetrics_messagesin_total",
        "jvm_memory_used_bytes",
    ):
        assert re.search(rf"^{name}(\{{| )", text, re.M), name
    assert re.search(r"^kafka_server_replicamanager_underreplicatedpartitions 0\.0$", text, re.M)


# -- exposure and sandboxes (issue 22) ----------------------------------------------------
def status_of(url: str, method: str = "GET") -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=30) as r:
            return r.status
    except urllib.error.HTTPError as err:
        return err.code


def test_the_test_event_answers_its_host_only(lab: Lab, eventbus_host: str) -> None:
    """It produces to Kafka: the controller (like any client) is refused, the host (where
    the runbook sends it from) is answered once Kafka has the event."""
    url = f"http://{lab.address(eventbus_host)}:8085/v1/_test/events"
    assert status_of(url) == 403
    on_host = lab.host(eventbus_host).run(
        f"python3 -c \"import urllib.request; print(urllib.request.urlopen('{url}').status)\""
    )
    assert on_host.stdout.strip() == "201", on_host.stderr


def test_prometheus_has_no_lifecycle_api(lab: Lab, dc: str) -> None:
    prometheus = f"http://{lab.address(lab.loadbalancer(dc))}:9090"
    assert status_of(f"{prometheus}/-/quit", "POST") == 403  # "Lifecycle API is not enabled"
    assert status_of(f"{prometheus}/-/ready") == 200  # and it still runs


def exposure(node: Any, unit: str) -> float:
    """systemd-analyze security's overall exposure of a unit (0 safest, 10 least safe)."""
    text = node.check_output(f"systemd-analyze security --no-pager {unit}")
    found = re.search(rf"Overall exposure level for {re.escape(unit)}: ([\d.]+)", text)
    assert found, text[-500:]
    return float(found.group(1))


def test_the_units_are_sandboxed_at_least_as_debian_sandboxes_prometheus(lab: Lab) -> None:
    """Debian's prometheus.service (NoNewPrivileges, ProtectSystem, ProtectHome, PrivateTmp,
    PrivateDevices, an empty CapabilityBoundingSet, ...) is the baseline; docs/security.md
    records each unit's score."""
    conf, broker = lab.host(lab.loadbalancer("eqiad")), lab.host(lab.broker("eqiad"))
    baseline = exposure(conf, "prometheus.service")
    scores = {
        "eventbus.service": exposure(broker, "eventbus.service"),
        "kafka.service": exposure(broker, "kafka.service"),
        "eventbus-pool-agent.service": exposure(conf, "eventbus-pool-agent.service"),
        # the exporters: HAProxy's runs in HAProxy, the JMX exporter in Kafka
        "haproxy.service": exposure(conf, "haproxy.service"),
        "prometheus-alertmanager.service": exposure(conf, "prometheus-alertmanager.service"),
        "etcd.service": exposure(conf, "etcd.service"),
    }
    print(f"systemd-analyze security: prometheus.service {baseline}, {scores}")
    assert {unit: score for unit, score in scores.items() if score > baseline} == {}
    agent = conf.check_output("systemctl show -P MainPID eventbus-pool-agent")
    assert int(agent) > 0
    assert int(conf.check_output(f"ps -o uid= -p {agent}")) != 0  # the pool agent is not root


def test_the_service_has_a_memory_ceiling(lab: Lab, eventbus_host: str) -> None:
    node = lab.host(eventbus_host)
    limit = int(node.check_output("systemctl show -P MemoryMax eventbus"))
    config = node.check_output("cat /etc/eventbus/config.yaml")
    found = re.search(r"^num_processes: (\d+)$", config, re.MULTILINE)
    assert found, config
    workers = int(found.group(1))
    assert limit == (256 + 512 * workers) * 1024 * 1024
