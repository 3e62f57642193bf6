"""The eventbus role's wheelhouse is built for the managed hosts' platform, not the
controller's: built here (Python 3.11) for hosts on Python 3.12, every compiled wheel is a
CPython 3.12 (or stable-ABI) manylinux wheel for their architecture, and a Python 3.12
virtualenv installs the service from it with no package index, as the hosts do."""

from __future__ import annotations

import glob
import json
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.harness.archives import extract_all
from tests.harness.collection import REPO_ROOT

BUILDER = REPO_ROOT / "roles" / "eventbus" / "files" / "build_wheelhouse.py"
PROJECT = REPO_ROOT / "files" / "eventbus"
TARGET = {"python": "3.12", "machine": "x86_64", "libc": ["glibc", "2.36"]}


def python312() -> str | None:
    found = shutil.which("python3.12")
    candidates = [found] if found else []
    candidates += sorted(glob.glob(str(Path.home() / ".pyenv/versions/3.12*/bin/python3.12")))
    for candidate in candidates:
        probe = subprocess.run(
            [candidate, "--version"], capture_output=True, text=True, check=False
        )
        if probe.returncode == 0:
            return candidate
    return None


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    archive = tmp_path_factory.mktemp("cache") / "wheelhouse" / "0.2.0-test-cp312.tar"
    proc = subprocess.run(
        [sys.executable, str(BUILDER), str(PROJECT), str(PROJECT / "constraints.txt"),
         str(archive), json.dumps(TARGET)],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == "built"
    return archive


def test_every_wheel_is_for_the_hosts_python_and_architecture(wheelhouse: Path) -> None:
    with tarfile.open(wheelhouse) as tar:
        names = tar.getnames()
    assert sys.version_info[:2] != (3, 12)  # the controller builds for another Python
    pinned = {line.split("==")[0].lower().replace("-", "_")
              for line in (PROJECT / "constraints.txt").read_text().splitlines()
              if "==" in line and not line.startswith("#")}  # fmt: skip
    found = {name.split("-")[0].lower() for name in names}
    assert pinned | {"eventbus"} == found, sorted(pinned ^ found)
    compiled = [name for name in names if not name.endswith("-none-any.whl")]
    assert len(compiled) >= 8, names  # aiohttp, orjson, uvloop, confluent-kafka, ...
    for name in compiled:
        python_tag, abi_tag, platforms = name[:-4].split("-")[-3:]
        assert abi_tag in ("cp312", "abi3"), name
        assert python_tag == "cp312" or abi_tag == "abi3", name
        assert all(re.fullmatch(r"manylinux(_2_\d+|1|2010|2014)_x86_64", tag)
                   for tag in platforms.split(".")), name  # fmt: skip
    assert not [name for name in names if "cp311" in name]


def test_a_python_3_12_host_installs_the_service_from_it(wheelhouse: Path, tmp_path: Path) -> None:
    interpreter = python312()
    if interpreter is None:
        pytest.skip("no Python 3.12 on this machine to install with (the tags are checked above)")
    wheels = tmp_path / "wheels"
    with tarfile.open(wheelhouse) as tar:
        extract_all(tar, wheels)
    venv = tmp_path / "venv"
    subprocess.run([interpreter, "-m", "venv", str(venv)], check=True, timeout=120)
    install = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", "--no-index", "--find-links",
         str(wheels), "eventbus==0.2.0"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert install.returncode == 0, install.stdout + install.stderr
    version = subprocess.run(
        [str(venv / "bin" / "eventbus-service"), "--version"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert version.stdout.strip() == "eventbus-service 0.2.0"
    imported = subprocess.run(
        [str(venv / "bin" / "python"), "-c",
         "import sys, orjson, uvloop, confluent_kafka, jsonschema_rs, eventbus.server; "
         "print(sys.version_info[:2])"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert imported.stdout.strip() == "(3, 12)"
