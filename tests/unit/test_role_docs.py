"""The roles' documentation says what they do: every default is documented in an entry point's
argument spec with the same value, every entry point a playbook or role calls has a spec (so
ansible validates what it is handed), and every spec names a tasks file that exists."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLES = sorted(path.name for path in (ROOT / "roles").iterdir() if (path / "tasks").is_dir())
CALLERS = ("playbooks", "roles")
TASKS_FROM = re.compile(
    r"name:\s*eventplatform\.eventbus\.(?P<role>[a-z_]+)\s*\n\s*tasks_from:\s*(?P<entry>[a-z_/]+)"
)


def specs(role: str) -> dict[str, Any]:
    text = (ROOT / "roles" / role / "meta" / "argument_specs.yml").read_text()
    return dict(yaml.safe_load(text)["argument_specs"])


def defaults(role: str) -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "roles" / role / "defaults" / "main.yml").read_text()) or {})


@pytest.mark.parametrize("role", ROLES)
def test_every_default_is_documented_with_its_value(role: str) -> None:
    documented: dict[str, list[dict[str, Any]]] = {}
    for entry in specs(role).values():
        for name, option in (entry.get("options") or {}).items():
            documented.setdefault(name, []).append(option)
    role_defaults = {
        name: value for name, value in defaults(role).items() if not name.startswith("_")
    }
    assert not set(role_defaults) - set(documented), sorted(set(role_defaults) - set(documented))
    for name, value in role_defaults.items():
        if isinstance(value, str) and "{{" in value:
            continue  # a templated default is described in words
        for option in documented[name]:
            if "default" in option:
                assert option["default"] == value, (role, name, option["default"], value)


def called_entry_points() -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for top in CALLERS:
        for path in (ROOT / top).rglob("*.yml"):
            for match in TASKS_FROM.finditer(path.read_text()):
                found.add((match["role"], match["entry"]))
    return found


def test_every_entry_point_called_has_an_argument_spec() -> None:
    called = called_entry_points()
    assert ("runbook", "cycle") in called  # the pattern finds the calls
    missing = sorted(f"{role}:{entry}" for role, entry in called if entry not in specs(role))
    assert not missing, missing


@pytest.mark.parametrize("role", ROLES)
def test_every_entry_point_has_its_tasks_file(role: str) -> None:
    for entry, spec in specs(role).items():
        assert (ROOT / "roles" / role / "tasks" / f"{entry}.yml").is_file(), entry
        assert spec.get("short_description"), entry


def test_every_playbook_has_its_section_in_the_docs_site() -> None:
    page = (ROOT / "docs" / "docsite" / "rst" / "playbooks.rst").read_text()
    sections = set(re.findall(r"^([a-z_]+)\n-+$", page, flags=re.MULTILINE))
    playbooks = {p.stem for p in (ROOT / "playbooks").glob("[a-z]*.yml")}
    assert sections == playbooks, sorted(sections ^ playbooks)
    for name in playbooks - {"site", "replay_failed_events"}:  # the runbook's need a reason
        example = page.split(f"\n{name}\n", 1)[1].split("code-block:: console", 1)[1]
        assert f"eventplatform.eventbus.{name} -e runbook_reason=" in example.split("\n\n")[1], name
