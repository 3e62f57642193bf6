"""The README is the users' (issue 25): at most a third of the developers' 272 lines it
replaced, and nothing in it outside its "Developing" section points at what a collection user
does not have (the repository's scripts, CI, make targets, the lab, its virtualenv)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DEVELOPERS_ONLY = re.compile(r"scripts/|\.ci/run|\bmake\b|inventories/lab|\.venv/bin|molecule")


def test_the_readme_is_short() -> None:
    assert len(README.read_text().splitlines()) <= 272 // 3


def test_only_its_developing_section_names_the_repositorys_tools() -> None:
    users_part = README.read_text().split("\n## Developing", 1)[0]
    found = [line for line in users_part.splitlines() if DEVELOPERS_ONLY.search(line)]
    assert found == []


def test_every_example_of_a_playbook_that_needs_a_reason_gives_it() -> None:
    needing = {path.stem for path in (ROOT / "playbooks").glob("*.yml")
               if "runbook_reason" in path.read_text()}  # fmt: skip
    assert needing
    rows = [line for line in README.read_text().splitlines()
            if line.startswith("| `") and "ansible-playbook" in line]  # fmt: skip
    assert rows
    for row in rows:
        name = row.split("`")[1]
        assert ("-e runbook_reason=" in row) == (name in needing), name
