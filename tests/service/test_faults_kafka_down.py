"""Faults with Kafka down, or its brokers stopped or SIGKILLed one after the other: the
service answers 503 (never a 5xx of its own) and logs each event for replay while Kafka is
away, and its topic list and health check hold while one broker of three is. A 3-node KRaft
cluster of this module's own (conftest.py's faults_cluster)."""

from __future__ import annotations

import re
import time
from pathlib import Path

from tests.harness._net import free_port, wait_until
from tests.harness.kafka import KafkaCluster
from tests.service.conftest import make_event, service_config, start_service, stop_service
from tests.service.faults import health_answers, launch, logged_ids


def test_kafka_down_longer_than_the_topic_trust_window(
    healthy: KafkaCluster, tmp_path: Path
) -> None:
    svc = launch(healthy, tmp_path, {"produce_timeout": 2, "topic_trust_seconds": 1},
                 request_timeout=4)  # fmt: skip
    try:
        assert svc.post(make_event()).status == 201
        for node_id in healthy.nodes:
            healthy.stop_node(node_id, timeout=30)
        time.sleep(2)  # the topic list is older than its trust window now
        event, hasty = make_event(), make_event()
        response = svc.post(event)
        assert response.status == 503, response.body
        assert svc.post(hasty, "?hasty=true").status == 202
        wait_until(lambda: hasty["meta"]["id"] in logged_ids(svc), 20, "the hasty event logged")
        assert event["meta"]["id"] in logged_ids(svc)
        assert svc.request("GET", "/healthz").status == 503
        assert "Traceback" not in svc.log()
    finally:
        stop_service(svc)


def test_a_worker_started_while_kafka_is_down(healthy: KafkaCluster, tmp_path: Path) -> None:
    for node_id in healthy.nodes:
        healthy.stop_node(node_id, timeout=30)
    kafka = {"bootstrap_servers": healthy.bootstrap_servers.split(","), "produce_timeout": 2}
    port = free_port()
    config = service_config(tmp_path, "", port, kafka=kafka, request_timeout=4)
    svc = start_service(tmp_path, config, port)
    try:
        event = make_event()
        response = svc.post(event)
        assert response.status == 503, response.body
        assert event["meta"]["id"] in logged_ids(svc)
        healthy.ensure_all_running()
        wait_until(lambda: svc.request("GET", "/healthz").status == 200, 60, "healthy again")
        assert svc.post(make_event()).status == 201
        log = svc.log()
        assert "Traceback" not in log
        # librdkafka said the brokers were away, but not as the service's error: the
        # runbook's log check (after a host's reboot, Kafka may come up after the service)
        # reads " ERROR (...) eventbus...: " lines as the service failing
        assert re.search(r" WARNING \([^)]*\) eventbus\.kafka: .*Connect to", log), log[-2000:]
        assert not re.search(r" (ERROR|CRITICAL) \([^)]*\) eventbus", log), log[-2000:]
    finally:
        stop_service(svc)


def test_one_broker_down_the_topic_list_and_the_health_check_hold(
    healthy: KafkaCluster, tmp_path: Path
) -> None:
    """With any one broker of three stopped in turn, the topic list is refreshed through the
    brokers left: requests are accepted and the health check stays up. In the lab (CI8) a
    refresh through kafka-python's admin client failed while a broker restarted (503s for
    0.3 s of traffic) or was stopped (the load balancer saw the host down); this clean stop on
    one machine does not reproduce that, it guards the behaviour."""
    svc = launch(healthy, tmp_path, {"produce_timeout": 10, "topic_trust_seconds": 1},
                 request_timeout=15)  # fmt: skip
    try:
        assert svc.post(make_event()).status == 201
        for node_id in list(healthy.nodes):  # whichever broker a client stays on
            healthy.stop_node(node_id, timeout=30)
            for _round in range(2):
                time.sleep(2.2)  # older than the trust window, and than /healthz's 2 s
                assert svc.request("GET", "/healthz").status == 200, f"broker {node_id} down"
                response = svc.post(make_event())
                assert response.status == 201, (node_id, response.body)
            healthy.ensure_all_running()
        assert "Traceback" not in svc.log()
    finally:
        stop_service(svc)


def test_a_broker_sigkilled_the_health_check_holds(healthy: KafkaCluster, tmp_path: Path) -> None:
    """Each broker of three SIGKILLed in turn, no traffic (the check lists the topics itself):
    the topic list's client fails over to a broker left, and /healthz answers 200 all along.
    The lab saw the check fail while a broker restarted (CI9, CI10: an emptied pool); on one
    machine this passes without the retry too (kafka-python moved on by itself here), so it
    guards the behaviour; the module's twin (test_kafka_modules) did reproduce its failure."""
    svc = launch(healthy, tmp_path, {"produce_timeout": 10, "topic_trust_seconds": 1})
    try:
        assert svc.post(make_event()).status == 201
        for node_id in list(healthy.nodes):  # whichever broker the client stays on
            assert svc.request("GET", "/healthz").status == 200
            healthy.kill_node(node_id)
            answers = health_answers(svc, seconds=6)
            assert set(answers) == {200}, (node_id, answers)
            healthy.ensure_all_running()
        assert "Traceback" not in svc.log()
    finally:
        stop_service(svc)
