"""/openapi.json matches the behaviour (schemathesis finds no undocumented answer and no 5xx
but 503), /metrics counts events, and SIGHUP reloads schemas and streams."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import yaml

from tests.harness._net import wait_until
from tests.service.conftest import Service, make_event


def test_schemathesis_finds_no_server_error_or_undocumented_answer(
    eventbus: Service, tmp_path: Path
) -> None:
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "schemathesis"),
            "run",
            f"{eventbus.url}/openapi.json",
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
            "--max-examples",
            "40",
            "--exclude-path",
            "/v1/_test/events",  # produces a real event per call; tested on its own
            "--seed",
            "1",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:]
    assert "passed" in result.stdout.lower()
    assert "Traceback" not in eventbus.log()


def test_metrics_count_events_by_topic_and_outcome(eventbus: Service) -> None:
    def count(text: str, topic: str, outcome: str) -> float:
        for line in text.splitlines():
            if (
                line.startswith("eventbus_events_total{")
                and f'topic="{topic}"' in line
                and f'outcome="{outcome}"' in line
            ):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    before = eventbus.request("GET", "/metrics").body.decode()
    assert eventbus.post([make_event(), make_event(), make_event(count="x")]).status == 207
    after = eventbus.request("GET", "/metrics").body.decode()
    assert (
        count(after, "eqiad.test.event", "accepted") - count(before, "eqiad.test.event", "accepted")
        == 2
    )
    assert count(after, "-", "invalid") - count(before, "-", "invalid") == 1
    assert (
        'eventbus_request_duration_seconds_bucket{le="0.001",method="POST",route="/v1/events",status="207"}'
        in after
    )
    assert "eventbus_requests_in_flight" in after


def test_sighup_reloads_streams_and_schemas(eventbus: Service) -> None:
    config = yaml.safe_load(eventbus.config_path.read_text())
    original = eventbus.config_path.read_text()
    schemas = Path(config["schema_repositories"][0])
    event = make_event(topic="new.stream")
    event["$schema"] = "/new/thing/1.0.0"
    assert "not accepted" in eventbus.post(event).json()["failures"][0]["message"]
    try:
        (schemas / "new" / "thing").mkdir(parents=True)
        (schemas / "new" / "thing" / "1.0.0.json").write_text(
            json.dumps({"title": "new/thing", "type": "object"})
        )
        config["streams"].append({"topic": "new.stream", "schema_title": "new/thing"})
        eventbus.config_path.write_text(yaml.safe_dump(config))
        assert eventbus.process is not None
        eventbus.process.send_signal(signal.SIGHUP)
        wait_until(lambda: "reloaded schemas" in eventbus.log(), 10, "the reload")
        # accepted by the new rule and schema; Kafka has no such topic, so 400 "does not exist"
        message = eventbus.post(event).json()["failures"][0]["message"]
        assert "eqiad.new.stream does not exist in Kafka" in message
        assert eventbus.request("GET", "/v1/schemas/new/thing/1.0.0").status == 200
        # a broken file is refused and the running configuration kept
        eventbus.config_path.write_text("datacenter: [broken")
        eventbus.process.send_signal(signal.SIGHUP)
        wait_until(lambda: "reload refused" in eventbus.log(), 10, "the refusal")
        assert eventbus.post(make_event()).status == 201
    finally:
        eventbus.config_path.write_text(original)
        shutil.rmtree(schemas / "new", ignore_errors=True)
        eventbus.process.send_signal(signal.SIGHUP)
