"""The collection builds into a tarball that holds what a user needs (and nothing of the
developers' own), installs, and ansible-doc renders its modules from the installed copy (not
from the working tree); no role or playbook reaches outside the installed collection."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

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
    for needed in ("LICENSE", "README.md", "changelogs/changelog.yaml", "meta/runtime.yml",
                   "meta/execution-environment.yml", "bindep.txt", "requirements.txt",
                   "files/eventbus/constraints.txt", "playbooks/rolling_restart.yml",
                   "docs/security.md", "docs/kafka-upgrade.md"):  # fmt: skip
        assert needed in names, needed
    # the developers' figures and fault matrix stay in the repository
    for developers in ("docs/benchmarks.md", "docs/faults.md", "CONTRIBUTING.md"):
        assert developers not in names, developers
    developers_own = ("tests/", ".venv/", "build/", "extensions/", "scripts/", "benchmarks/",
                      "inventories/lab/", "requirements/", ".ci/", ".config/")  # fmt: skip
    assert not [n for n in names if n.startswith(developers_own)]
    assert "ansible.cfg" not in names  # the checkout's turns host key checking off
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    license_name = yaml.safe_load((REPO_ROOT / "galaxy.yml").read_text())["license"]
    assert license_name == ["GPL-3.0-or-later"]
    with tarfile.open(tarball) as archive:
        license_text = archive.extractfile("LICENSE").read().decode()
    assert "GNU GENERAL PUBLIC LICENSE" in license_text
    assert "Version 3" in license_text

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


# Paths the roles and playbooks build from their own location: each must stay inside the
# collection and exist in the installed copy (the tarball holds no requirements/, scripts/...).
RELATIVE = re.compile(r"(role_path|playbook_dir)\s*(?:\}\}\s*|~\s*['\"])(/[^'\"\s}]*)")
DEVELOPERS_PATHS = re.compile(r"\b(requirements/|scripts/|inventories/lab|build/|tests/|\.venv)")


def collection_texts(root: Path) -> list[tuple[Path, str]]:
    files = [*(root / "roles").rglob("*"), *(root / "playbooks").rglob("*")]
    return [(f, f.read_text()) for f in files if f.is_file()]


def base_of(root: Path, path: Path, kind: str) -> Path:
    relative = path.relative_to(root)
    return root / "roles" / relative.parts[1] if kind == "role_path" else root / "playbooks"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("installed")
    run(str(BIN / "python"), str(REPO_ROOT / "scripts" / "install_collection.py"), str(dest))
    return dest / "ansible_collections" / "eventplatform" / "eventbus"


def test_no_role_or_playbook_reaches_outside_the_collection(installed: Path) -> None:
    checked = 0
    for path, text in collection_texts(installed):
        for kind, tail in RELATIVE.findall(text):
            target = (base_of(installed, path, kind) / tail.lstrip("/")).resolve()
            assert target.is_relative_to(installed), f"{path}: {kind}{tail} leaves the collection"
            assert target.exists(), f"{path}: {kind}{tail} is not in the installed collection"
            checked += 1
        for line in text.splitlines():
            if not line.lstrip().startswith("#"):
                assert not DEVELOPERS_PATHS.search(line), f"{path}: {line.strip()}"
        assert str(REPO_ROOT) not in text, f"{path} names the checkout"
    assert checked >= 4  # the schemas, the service's project, the Kafka resolver, the lb helper


def test_the_installed_playbooks_parse_by_fqcn(installed: Path, tmp_path: Path) -> None:
    empty_config = tmp_path / "ansible.cfg"
    empty_config.write_text("[defaults]\n")
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(empty_config),
        "ANSIBLE_COLLECTIONS_PATH": str(installed.parents[2]),
    }
    playbooks = sorted(p.stem for p in (installed / "playbooks").glob("*.yml"))
    assert "rolling_restart" in playbooks
    for name in playbooks:
        run(
            str(BIN / "ansible-playbook"),
            "-i",
            str(REPO_ROOT / "inventories" / "production"),
            "--syntax-check",
            f"eventplatform.eventbus.{name}",
            env=env,
        )


def test_ansible_builder_makes_an_execution_environment_context(
    installed: Path, tmp_path: Path
) -> None:
    """As an AWX/AAP user would: an execution-environment definition that installs the
    collection's tarball; `ansible-builder create` writes the build context, and the
    introspection the build runs finds the collection's Python and system dependencies."""
    run(str(BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(tmp_path), ".")
    (tarball,) = tmp_path.glob("eventplatform-eventbus-*.tar.gz")
    (tmp_path / "requirements.yml").write_text(
        yaml.safe_dump({"collections": [{"name": f"collections/{tarball.name}", "type": "file"}]})
    )
    definition = {
        "version": 3,
        "images": {"base_image": {"name": "quay.io/ansible/awx-ee:latest"}},
        "dependencies": {
            "ansible_core": {"package_pip": "ansible-core==2.19.14"},
            "ansible_runner": {"package_pip": "ansible-runner"},
            "galaxy": "requirements.yml",
        },
        "additional_build_files": [{"src": tarball.name, "dest": "collections"}],
    }
    (tmp_path / "execution-environment.yml").write_text(yaml.safe_dump(definition))
    context = tmp_path / "context"
    run(str(BIN / "ansible-builder"), "create", "-f", str(tmp_path / "execution-environment.yml"),
        "-c", str(context))  # fmt: skip
    assert (context / "_build" / "collections" / tarball.name).is_file()
    containerfile = next(
        p for p in (context / "Containerfile", context / "Dockerfile") if p.exists()
    )
    assert "ansible-galaxy collection install" in containerfile.read_text()

    found = run(str(BIN / "ansible-builder"), "introspect", str(installed.parents[2]))
    dependencies = yaml.safe_load(found.split("\n", 1)[1])
    # ranges, not pins: other collections in the same environment can agree on a version
    (kafka_python,) = [line for line in dependencies["python"] if line.startswith("kafka-python")]
    assert ">=3.0.12" in kafka_python, kafka_python
    assert "<4" in kafka_python, kafka_python
    assert "==" not in " ".join(dependencies["python"])
    system = " ".join(dependencies["system"])
    assert "maven" in system
    assert "openjdk-17-jdk-headless [platform:dpkg]" in system
