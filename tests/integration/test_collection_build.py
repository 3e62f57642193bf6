"""The collection builds into a tarball that installs, and ansible-doc renders its modules
from the installed copy (not from the working tree)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

from tests.harness.collection import REPO_ROOT

BIN = Path(sys.executable).parent
MODULES = sorted(
    p.stem for p in (REPO_ROOT / "plugins" / "modules").glob("*.py") if p.stem != "__init__"
)


def run(*argv: str, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        argv, capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=300, check=False
    )
    assert proc.returncode == 0, f"{' '.join(argv)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def test_build_install_and_render_docs(tmp_path: Path) -> None:
    assert MODULES, "the collection has no modules to document"
    run(str(BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(tmp_path), ".")
    (tarball,) = tmp_path.glob("eventplatform-eventbus-*.tar.gz")
    with tarfile.open(tarball) as archive:
        names = archive.getnames()
    assert "galaxy.yml" not in names  # replaced by MANIFEST.json
    assert "MANIFEST.json" in names
    assert not [n for n in names if n.startswith(("tests/", ".venv/", "build/", "extensions/"))]

    installed = tmp_path / "collections"
    # As an operator elsewhere would: not this checkout's ansible.cfg, which points at the tree
    empty_config = tmp_path / "ansible.cfg"
    empty_config.write_text("[defaults]\n")
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(empty_config),
        "ANSIBLE_COLLECTIONS_PATH": str(installed),
    }
    run(
        str(BIN / "ansible-galaxy"),
        "collection",
        "install",
        "--force",
        "-p",
        str(installed),
        str(tarball),
        env=env,
    )
    listed = json.loads(
        run(str(BIN / "ansible-doc"), "--list", "--json", "eventplatform.eventbus", env=env)
    )
    assert sorted(listed) == [f"eventplatform.eventbus.{m}" for m in MODULES]
    for module in MODULES:
        fqcn = f"eventplatform.eventbus.{module}"
        doc = json.loads(
            run(
                str(
                    BIN / "ansible-doc",
                ),
                "--json",
                fqcn,
                env=env,
            )
        )[fqcn]
        assert str(installed) in doc["doc"]["filename"]
        assert doc["doc"]["short_description"]
        assert doc["examples"].strip()
        assert doc["return"]
        if module.startswith("kafka_"):  # the shared connection doc fragment was resolved
            assert "bootstrap_servers" in doc["doc"]["options"]
