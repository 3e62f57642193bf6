"""eventbus-service's command line: --version, and --check-config, which the eventbus role
runs as the `validate:` of its config template so a bad file never reaches a running host;
the served OpenAPI document is valid OpenAPI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from eventbus import __version__, openapi
from openapi_spec_validator import validate

SCHEMA = {"title": "test/event", "type": "object", "required": ["meta"]}


def service(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "eventbus.service", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def config_file(tmp_path: Path) -> tuple[Path, dict]:
    schemas = tmp_path / "schemas"
    (schemas / "test" / "event").mkdir(parents=True)
    (schemas / "test" / "event" / "1.0.0.json").write_text(json.dumps(SCHEMA))
    data = {
        "datacenter": "eqiad",
        "kafka": {"bootstrap_servers": ["kafka1001.eqiad.wmnet:9092"]},
        "schema_repositories": [str(schemas)],
        "streams": [{"topic": "test.event", "schema_title": "test/event"}],
        "failed_events_log": str(tmp_path / "failed.log"),
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path, data


def test_version() -> None:
    run = service("--version")
    assert run.returncode == 0
    assert run.stdout.strip() == f"eventbus-service {__version__}"


def test_check_config_accepts_a_good_file(config_file: tuple[Path, dict]) -> None:
    path, _data = config_file
    run = service("--check-config", str(path))
    assert run.returncode == 0, run.stderr
    assert f"{path}: ok (1 stream rule(s)" in run.stdout


# Configurations that load but would fail, or break a promise, once running (issue 22, item 9)
KAFKA = {"bootstrap_servers": ["k:9092"]}
RUN_TIME_CASES = [
    ({"listen": {"address": "192.0.2.1"}}, "listen.address: 192.0.2.1 cannot be bound"),
    ({"failed_events_log": "/nonexistent/dir/x.log"}, "/nonexistent/dir is not a directory"),
    ({"failed_events_log": "/proc/self"}, "/proc/self is not a regular file"),
    ({"kafka": {**KAFKA, "producer": {"acks": 0}}}, "breaks the service's promise"),
    ({"kafka": {**KAFKA, "producer": {"acks": 1}}}, "kafka.allow_weak_acks"),
    (
        {"kafka": {**KAFKA, "security": {"security_protocol": "tls"}}},
        "kafka.security.security_protocol: must be one of PLAINTEXT, SSL",
    ),
    (
        {"kafka": {**KAFKA, "security": {"security_protocol": "sasl_ssl"}}},
        "SASL_SSL needs sasl_mechanism",
    ),
    (
        {"request_timeout": 10, "kafka": {**KAFKA, "produce_timeout": 15}},
        "config key request_timeout: 10 s is not longer than kafka.produce_timeout (15 s)",
    ),
    (
        {"body_timeout": 10, "request_timeout": 20, "load_balancer_timeout": 30},
        "body_timeout + request_timeout (30 s) must be below the load balancer's server timeout",
    ),
    (
        {"test_event": {"meta": {"topic": "test.event"}, "$schema": "/no/such/1.0.0"}},
        "config key test_event: the test event is refused: schema /no/such/1.0.0 not found",
    ),
    (
        {"test_event": {"meta": {"topic": "other.topic"}, "$schema": "/test/event/1.0.0"}},
        "config key test_event: the test event is refused",
    ),
]


@pytest.mark.parametrize(("change", "message"), RUN_TIME_CASES)
def test_check_config_catches_what_would_fail_once_running(
    config_file: tuple[Path, dict], change: dict, message: str
) -> None:
    path, data = config_file
    path.write_text(yaml.safe_dump({**data, **change}))
    run = service("--check-config", str(path))
    assert run.returncode == 1, run.stdout
    assert message in run.stderr, run.stderr
    assert "Traceback" not in run.stderr


def test_weak_acks_and_a_lowercase_protocol_when_asked_for(config_file: tuple[Path, dict]) -> None:
    """acks=1 is accepted when the operator says so; "ssl" is read as Kafka's SSL (the topic
    list compared it case-sensitively and connected in plaintext)."""
    path, data = config_file
    kafka = {
        "bootstrap_servers": ["k:9093"],
        "producer": {"acks": 1},
        "allow_weak_acks": True,
        "security": {"security_protocol": "ssl"},
    }
    path.write_text(yaml.safe_dump({**data, "kafka": kafka}))
    run = service("--check-config", str(path))
    assert run.returncode == 0, run.stderr
    from eventbus import config as config_module

    loaded = config_module.load(path)
    assert loaded.kafka.security["security_protocol"] == "SSL"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"kafka": {"bootstrap_servers": []}}, "config key kafka.bootstrap_servers:"),
        ({"listen": {"port": 70000}}, "config key listen.port:"),
        ({"no_such_key": 1}, "config key no_such_key: unknown"),
        (
            {"streams": [{"topic": "test.event", "schema_title": "nope/event"}]},
            "config key streams[0].schema_title: no schema titled nope/event",
        ),
    ],
)
def test_check_config_names_what_is_wrong(
    config_file: tuple[Path, dict], change: dict, message: str
) -> None:
    path, data = config_file
    path.write_text(yaml.safe_dump({**data, **change}))
    run = service("--check-config", str(path))
    assert run.returncode == 1
    assert message in run.stderr
    assert "Traceback" not in run.stderr


def test_check_config_reports_an_unusable_schema(config_file: tuple[Path, dict]) -> None:
    path, data = config_file
    bad = Path(data["schema_repositories"][0]) / "broken" / "1.0.0.json"
    bad.parent.mkdir()
    bad.write_text('{"type": 12}')
    run = service("--check-config", str(path))
    assert run.returncode == 1
    assert "config key schema_repositories: schema /broken/1.0.0" in run.stderr


def test_check_config_of_a_missing_or_broken_file(tmp_path: Path) -> None:
    missing = service("--check-config", str(tmp_path / "nope.yaml"))
    assert missing.returncode == 1
    assert "cannot read" in missing.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text("port: [")
    run = service("--check-config", str(broken))
    assert run.returncode == 1
    assert "is not valid YAML" in run.stderr


def test_the_openapi_document_is_valid_openapi() -> None:
    validate(openapi.document())  # raises on an invalid document
    assert openapi.document()["info"]["version"] == __version__
