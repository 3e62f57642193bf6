"""Running the collection's playbooks on the lab, as a user of the collection would: by FQCN,
from the collection installed from its tarball (scripts/install_collection.py), against the
lab's inventory."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from eventbus_lab._run import progress
from eventbus_lab.inventory import REPO, Lab

BIN = Path(sys.executable).parent
COLLECTIONS = Path(os.environ.get("EVENTBUS_COLLECTIONS_PATH", REPO / "build" / "installed"))
# where the runbook playbooks write START and END lines (runbook_operations_log's default)
OPERATIONS_LOG = Path.home() / ".local" / "state" / "eventbus-ops" / "operations.log"


def log_mark() -> int:
    """Where the operations log ends now."""
    return len(OPERATIONS_LOG.read_text().splitlines()) if OPERATIONS_LOG.exists() else 0


def log_since(mark: int) -> list[str]:
    """The operations log's lines written after ``mark``."""
    return OPERATIONS_LOG.read_text().splitlines()[mark:] if OPERATIONS_LOG.exists() else []


def ansible_env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "ANSIBLE_FORCE_COLOR"}
    return {
        **env,
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        # the collection as installed from its tarball, not the checkout
        "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS),
        "ANSIBLE_NOCOLOR": "1",  # output is read
        "ANSIBLE_CALLBACK_RESULT_FORMAT": "json",  # one line per message: nothing folded
        "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
    }


def playbook(  # type: ignore[no-untyped-def]
    lab: Lab, *args: str, capture: bool = True, timeout: float = 1800, reason: str = "lab test"
):
    """``ansible-playbook -i <lab inventory> ARGS`` with a reason for the run lock and the
    operations log (``-e runbook_reason=...``, which ARGS may override); the CompletedProcess."""
    return subprocess.run(
        playbook_argv(lab, *args, reason=reason),
        cwd=REPO,
        env=ansible_env(),
        stdin=subprocess.DEVNULL,  # never the lab's shared stdin (see machines.ssh)
        capture_output=capture,
        text=True,
        timeout=timeout,
        check=False,
    )


def recorded(lab: Lab, *args: str, reason: str = "lab test", keep: int = 20000) -> dict[str, Any]:
    """:func:`playbook`, said on stdout, as the lab scripts record it: its exit code and the
    last ``keep`` characters of its output and of its errors (ansible's own errors, such as a
    playbook or an inventory it cannot load, go to stderr only)."""
    progress(f"ansible-playbook {shlex.join(args)}")
    done = playbook(lab, *args, reason=reason)
    return {"rc": done.returncode, "stdout": done.stdout[-keep:], "stderr": done.stderr[-keep:]}


def playbook_argv(lab: Lab, *args: str, reason: str = "lab test") -> list[str]:
    """The command line of :func:`playbook` (run it with ``cwd=REPO, env=ansible_env()``)."""
    reason_var = json.dumps({"runbook_reason": reason})
    return [str(BIN / "ansible-playbook"), "-i", str(lab.inventory), "-e", reason_var, *args]


def failure_message(stdout: str) -> str:
    """The run's last failure message (the runbook's own, which names host and step)."""
    messages = re.findall(r'"msg": "((?:[^"\\]|\\.)*)"', stdout)
    return json.loads(f'"{messages[-1]}"') if messages else ""


def install_collection() -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO / "scripts" / "install_collection.py"), str(COLLECTIONS)],
        check=False,
        text=True,
    )
