"""The lab for the tests: booted once per session with scripts/lab.py, powered off at the end."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from eventbus_lab import inventory

from tests.harness.collection import REPO_ROOT, ansible_env

LAB = [sys.executable, str(REPO_ROOT / "scripts" / "lab.py")]
MODEL = inventory.load()  # the one model of the lab (lab/eventbus_lab)
INVENTORY = str(MODEL.inventory)
BIN = Path(sys.executable).parent

# One lab on this machine: its tests are one module (test_lab.py), which pytest-xdist's
# --dist loadfile runs in one worker, one test after the other.
needs_lab = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("systemd-nspawn") is None,
    reason="the lab needs root and systemd-nspawn (bash .ci/run installs it)",
)


def lab(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*LAB, *args], stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=timeout, check=False,
    )  # fmt: skip


def lab_env() -> dict[str, str]:
    return {**ansible_env(), "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg")}


def ansible(pattern: str, module: str, args: str = "") -> dict[str, dict]:
    """Run a module on lab hosts; {host: result} (one-line output parsed)."""
    argv = [str(BIN / "ansible"), "-i", INVENTORY, pattern, "-m", module, "-o"]
    if args:
        argv += ["-a", args]
    proc = subprocess.run(
        argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, env=lab_env(),
        timeout=300, check=False, cwd=REPO_ROOT,
    )  # fmt: skip
    results = {}
    for line in proc.stdout.splitlines():
        host, _sep, rest = line.partition(" | ")
        status, _sep, payload = rest.partition(" => ")
        if payload:
            results[host] = {"status": status, **json.loads(payload)}
        else:  # command-style one-line output: "host | CHANGED | rc=0 | (stdout) ..."
            results[host] = {"status": status.split(" | ")[0], "line": rest}
    return results


def playbook(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", INVENTORY, *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=lab_env(),
        timeout=1800,
        check=False,
        cwd=REPO_ROOT,
    )


@pytest.fixture(scope="session")
def running_lab() -> Iterator[None]:
    """The lab, up; powered off afterwards only if these tests brought it up (a lab that was
    already running - a developer's, or molecule's - is left as it was)."""
    was_up = lab("status").returncode == 0
    result = lab("up")
    try:
        assert result.returncode == 0, result.stdout + result.stderr
        yield
    finally:
        if not was_up:
            down = lab("down")
            assert down.returncode == 0, down.stdout + down.stderr
