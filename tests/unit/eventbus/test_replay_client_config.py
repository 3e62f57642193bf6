"""eventbus-replay's own Kafka credentials (--kafka-client-config): the keys of the service's
kafka.security, checked the same way; a bad file is a usage error (exit 2) before anything is
read or produced."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from eventbus import replay
from eventbus.config import ConfigError, load_client_security


def write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "replay-kafka.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_credentials_are_read_in_kafkas_spelling(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {
            "security_protocol": "sasl_ssl",
            "sasl_mechanism": "scram-sha-512",
            "sasl_plain_username": "eventbus-replay",
            "sasl_plain_password": "secret",
            "ssl_cafile": "/etc/eventbus/kafka-ca.pem",
        },
    )
    security = load_client_security(path)
    assert security["security_protocol"] == "SASL_SSL"
    assert security["sasl_mechanism"] == "SCRAM-SHA-512"
    assert security["sasl_plain_username"] == "eventbus-replay"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"security_protocol": "SASL_SSL"}, "needs sasl_mechanism"),
        ({"security_protocol": "TLS"}, "must be one of"),
        ({"bootstrap_servers": ["a:9092"]}, "unknown"),
        (["SASL_SSL"], "must be a mapping"),
        ({"ssl_check_hostname": "yes"}, "of the right type"),
    ],
)
def test_bad_files_are_refused_by_name(tmp_path: Path, data: object, expected: str) -> None:
    path = write(tmp_path, data)
    with pytest.raises(ConfigError) as refused:
        load_client_security(path)
    assert str(path) in str(refused.value)
    assert expected in str(refused.value)


def test_replay_stops_with_usage_error_on_a_bad_or_missing_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for path in (write(tmp_path, {"security_protocol": "SASL_SSL"}), tmp_path / "absent.yaml"):
        code = replay.run(
            [
                "--no-validate",
                "--kafka-client-config", str(path),
                "--bootstrap-servers", "127.0.0.1:1",
                "--topic-format", "eqiad.{meta[topic]}",
                "--input", str(tmp_path / "nothing.log"),
            ]
        )  # fmt: skip
        assert code == replay.EXIT_USAGE
        assert str(path) in capsys.readouterr().err


def test_default_file_is_used_only_when_it_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(replay, "DEFAULT_CLIENT_CONFIG", tmp_path / "absent.yaml")
    assert replay.client_security(None) == {}
    present = write(tmp_path, {"security_protocol": "SSL", "ssl_cafile": "/ca.pem"})
    monkeypatch.setattr(replay, "DEFAULT_CLIENT_CONFIG", present)
    assert replay.client_security(None) == {"security_protocol": "SSL", "ssl_cafile": "/ca.pem"}
