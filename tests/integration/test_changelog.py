"""The changelog reads as a first release: released in a copy of the collection with
antsibull-changelog (as a maintainer would), it has a release summary, what the release
brings (minor changes, the new modules, plugins, roles and playbooks) and no bugfixes,
breaking changes or development history of a version nobody installed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from tests.harness.collection import REPO_ROOT

BIN = Path(sys.executable).parent
FIRST_RELEASE_SECTIONS = {
    "Release Summary",
    "Minor Changes",
    "New Modules",
    "New Plugins",
    "New Roles",
    "New Playbooks",
}


def release_copy(tmp_path: Path) -> str:
    collection = tmp_path / "ansible_collections" / "eventplatform" / "eventbus"
    collection.mkdir(parents=True)
    for part in ("galaxy.yml", "changelogs", "plugins", "meta", "roles", "playbooks"):
        source = REPO_ROOT / part
        if source.is_dir():
            shutil.copytree(source, collection / part, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, collection / part)
    version = yaml.safe_load((REPO_ROOT / "galaxy.yml").read_text())["version"]
    proc = subprocess.run(
        [str(BIN / "antsibull-changelog"), "release", "--version", version, "--date", "2026-12-07"],
        cwd=collection,
        env={
            **os.environ,
            "PATH": f"{BIN}:{os.environ['PATH']}",
            "ANSIBLE_COLLECTIONS_PATH": str(tmp_path),
        },
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "no release_summary" not in proc.stderr
    return (collection / "CHANGELOG.rst").read_text()


def test_the_changelog_reads_as_a_first_release(tmp_path: Path) -> None:
    assert yaml.safe_load((REPO_ROOT / "changelogs" / "changelog.yaml").read_text())[
        "releases"
    ] in ({}, None), "a release was made: this test is for the first one"
    rendered = release_copy(tmp_path)
    # RST section titles: a line followed by a line of - (sections) under the version's =
    sections = set(re.findall(r"^(.+)\n-{3,}$", rendered, flags=re.MULTILINE))
    assert sections == FIRST_RELEASE_SECTIONS, sorted(sections)
    modules = sorted(p.stem for p in (REPO_ROOT / "plugins" / "modules").glob("[a-z]*.py"))
    new_modules = rendered.split("New Modules\n-----------\n", 1)[1]
    for module in modules:
        assert f"\n- {module} - " in new_modules, module
    for role in ("kafka", "eventbus", "loadbalancer", "monitoring"):
        assert f"\n- {role} - " in rendered.split("New Roles\n", 1)[1], role
    # nothing of the development: no CI runs, issues or sessions
    assert not re.search(r"\bCI\d+\b|\bsession\b|\bissue \d+", rendered)
