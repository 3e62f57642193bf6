"""The alert rules pass their promtool unit tests, and the Grafana dashboard is a dashboard:
valid JSON of Grafana's shape, every panel placed and queried, every query valid PromQL
(promtool parses it), the panels an operator reads during a rolling operation present."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "files" / "prometheus" / "alerts.yml"
DASHBOARD = REPO / "files" / "grafana" / "eventbus.json"


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is missing: sudo make prerequisites installs it (Debian prometheus)")
    return path


def run(*argv: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, cwd=cwd, timeout=120, check=False)


def test_the_alert_rules_are_valid_and_pass_their_unit_tests(promtool: str) -> None:
    check = run(promtool, "check", "rules", str(RULES))
    assert check.returncode == 0, check.stdout + check.stderr
    tests = run(promtool, "test", "rules", "alerts_test.yml", cwd=REPO / "tests" / "prometheus")
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "SUCCESS" in tests.stdout


def test_every_alert_has_a_unit_test() -> None:
    rules = yaml.safe_load(RULES.read_text())
    alerts = {r["alert"] for group in rules["groups"] for r in group["rules"]}
    tests = yaml.safe_load((REPO / "tests" / "prometheus" / "alerts_test.yml").read_text())
    tested = {
        check["alertname"]
        for case in tests["tests"]
        for check in case.get("alert_rule_test", [])
        if check.get("exp_alerts")
    }
    assert alerts == tested


def test_the_dashboard_is_a_grafana_dashboard(promtool: str, tmp_path: Path) -> None:
    board = json.loads(DASHBOARD.read_text())
    assert board["uid"]
    assert board["title"]
    assert board["schemaVersion"] >= 30
    panels = board["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    exprs = []
    for panel in panels:
        assert panel["type"] == "timeseries", panel["title"]
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"]), panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip(), panel["title"]
            exprs.append(target["expr"])
    titles = " | ".join(p["title"] for p in panels).lower()
    for needed in (
        "requests/s",
        "latency",
        "events/s, by topic",
        "produce latency",
        "failed events",
        "under-replicated",
        "isr shrinks",
        "leaders per broker",
    ):
        assert needed in titles, needed
    # promtool parses each query (as a recording rule)
    queries = [{"record": f"dashboard:query{i}", "expr": expr} for i, expr in enumerate(exprs)]
    rules = {"groups": [{"name": "dashboard", "rules": queries}]}
    path = tmp_path / "queries.yml"
    path.write_text(yaml.safe_dump(rules))
    check = run(promtool, "check", "rules", str(path))
    assert check.returncode == 0, check.stdout + check.stderr
