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
