"""What the fault tests share (tests/service/test_faults*.py): a Kafka cluster of each module's
own (the ``faults_cluster`` fixture of conftest.py), a service launched on it, replay, and
readings of the failed-events log and the health check."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from tests.harness._net import free_port
from tests.harness.kafka import KafkaCluster
from tests.service.conftest import Service, service_config, start_service

TOPIC = "eqiad.test.event"


def launch(
    cluster: KafkaCluster, tmp: Path, kafka: dict[str, object] | None = None, **overrides: object
) -> Service:
    """A service of its own on the cluster; ``kafka`` adds to (or changes) its kafka settings."""
    port = free_port()
    settings = {"bootstrap_servers": cluster.bootstrap_servers.split(","), "produce_timeout": 20,
                **(kafka or {})}  # fmt: skip
    config = service_config(tmp, cluster.bootstrap_servers, port, kafka=settings, **overrides)
    return start_service(tmp, config, port)


def replay(service: Service, cluster: KafkaCluster) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "eventbus.replay", "--config", str(service.config_path),
         "--input", str(service.failed_log), "--bootstrap-servers", cluster.bootstrap_servers],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def logged_ids(service: Service, code: str = "produce") -> set[str]:
    return {
        json.loads(r["event"]["rawEvent"])["meta"]["id"]
        for r in service.failed_records()
        if r["event"]["code"] == code
    }


def health_answers(svc: Service, seconds: float) -> list[int]:
    """/healthz's status every 0.5 s for ``seconds``."""
    answers = []
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        answers.append(svc.request("GET", "/healthz").status)
        time.sleep(0.5)
    return answers
