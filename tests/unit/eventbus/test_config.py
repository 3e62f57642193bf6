"""Bad configuration stops the start with a message naming the key."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from eventbus import config


@pytest.fixture
def good(tmp_path: Path) -> dict:
    (tmp_path / "schemas").mkdir()
    return {
        "datacenter": "eqiad",
        "kafka": {"bootstrap_servers": ["kafka1001.eqiad.wmnet:9092"]},
        "schema_repositories": [str(tmp_path / "schemas")],
        "streams": [
            {"topic": "test.event", "schema_title": "test/event"},
            {"pattern": r"mediawiki\..*"},
        ],
        "failed_events_log": str(tmp_path / "failed.log"),
    }


def test_a_good_config_gets_defaults(good: dict) -> None:
    parsed = config.parse(good)
    assert parsed.port == 8085
    assert parsed.kafka.producer == {"acks": "all"}
    assert parsed.streams[0].matches("test.event")
    assert parsed.streams[1].matches("mediawiki.page_edit")
    assert not parsed.streams[1].matches("xmediawiki.page_edit")


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (["datacenter"], "EQIAD!", "config key datacenter:"),
        (["kafka", "bootstrap_servers"], [], "config key kafka.bootstrap_servers:"),
        (["kafka", "bootstrap_servers"], ["nohostport"], "config key kafka.bootstrap_servers:"),
        (["kafka", "producer"], {"linger": 5}, "config key kafka.producer.linger: unknown"),
        (["kafka", "producer"], {"acks": "some"}, "config key kafka.producer.acks:"),
        (["kafka", "producer"], {"linger_ms": "5"}, "config key kafka.producer.linger_ms:"),
        (["kafka", "security"], {"sasl_password": 1}, "config key kafka.security.sasl_password:"),
        (["kafka", "produce_timeout"], 0, "config key kafka.produce_timeout:"),
        (["streams"], [], "config key streams:"),
        (["streams"], [{"topic": "a", "pattern": "b"}], "config key streams[0]: give exactly one"),
        (["streams"], [{"pattern": "("}], "config key streams[0].pattern:"),
        (["streams"], [{"topic": "a", "schema": "x"}], "config key streams[0].schema: unknown"),
        (["schema_repositories"], ["/no/such/dir"], "config key schema_repositories: /no/such/dir"),
        (["listen"], {"port": 70000}, "config key listen.port:"),
        (["num_processes"], 0, "config key num_processes:"),
        (["num_processes"], True, "config key num_processes:"),
        (["bogus"], 1, "config key bogus: unknown"),
        (["max_in_flight_body_bytes"], 1000, "config key max_in_flight_body_bytes: 1000 is less"),
        (["kafka", "queue_max_bytes"], 1000, "config key kafka.queue_max_bytes: 1000 is less"),
        (["hasty_max_in_flight_bytes"], 0, "config key hasty_max_in_flight_bytes:"),
        (["test_event_allowed_from"], "10.0.0.0/8", "config key test_event_allowed_from: must"),
        (["test_event_allowed_from"], ["10.0.0.0/33"], "config key test_event_allowed_from: '10"),
        (["test_event_allowed_from"], [10], "config key test_event_allowed_from: must"),
    ],
)
def test_bad_values_name_the_key(good: dict, path: list[str], value: object, message: str) -> None:
    data = copy.deepcopy(good)
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(config.ConfigError) as err:
        config.parse(data)
    assert str(err.value).startswith(message)


def test_memory_budgets_and_allowed_networks(good: dict) -> None:
    parsed = config.parse(good)
    assert parsed.max_in_flight_body_bytes == 32 * 1024 * 1024 >= parsed.max_body_bytes
    assert parsed.hasty_max_in_flight_bytes == 16 * 1024 * 1024
    assert parsed.kafka.queue_max_bytes == 64 * 1024 * 1024
    assert parsed.test_event_allowed_from == ()
    good["test_event_allowed_from"] = ["10.64.0.0/12", "2620:0:861::1", "10.1.2.3/8"]
    networks = config.parse(good).test_event_allowed_from
    assert [str(n) for n in networks] == ["10.64.0.0/12", "2620:0:861::1/128", "10.0.0.0/8"]


@pytest.mark.parametrize(
    "missing", ["datacenter", "kafka", "schema_repositories", "streams", "failed_events_log"]
)
def test_missing_keys_are_named(good: dict, missing: str) -> None:
    del good[missing]
    with pytest.raises(config.ConfigError, match=f"config key {missing}: missing"):
        config.parse(good)


def test_load_reports_unreadable_and_invalid_files(tmp_path: Path, good: dict) -> None:
    with pytest.raises(config.ConfigError, match="cannot read"):
        config.load(tmp_path / "absent.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("datacenter: [unclosed")
    with pytest.raises(config.ConfigError, match="not valid YAML"):
        config.load(broken)
    ok = tmp_path / "ok.yaml"
    ok.write_text(yaml.safe_dump(good))
    assert config.load(ok).datacenter == "eqiad"
