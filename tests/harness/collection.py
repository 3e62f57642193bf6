"""Make this checkout importable and runnable as the eventplatform.eventbus collection.

Ansible finds collections under ``<path>/ansible_collections/<namespace>/<name>``; the
tracked link .collections/ansible_collections/eventplatform/eventbus points at the repository
root, so the tests run the working tree's modules with ``ansible`` and import its
module_utils without building and installing a tarball. (What users get, the installed
tarball, is what scripts/install_collection.py makes; the lab proofs run that.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
COLLECTIONS_PATH = REPO_ROOT / ".collections"
FQCN_PREFIX = "eventplatform.eventbus."


def ensure_collection_link() -> Path:
    link = COLLECTIONS_PATH / "ansible_collections" / "eventplatform" / "eventbus"
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.is_symlink():
        link.symlink_to(REPO_ROOT, target_is_directory=True)
    if str(COLLECTIONS_PATH) not in sys.path:
        sys.path.insert(0, str(COLLECTIONS_PATH))
    return COLLECTIONS_PATH


def ansible_env() -> dict[str, str]:
    return {
        **os.environ,
        "ANSIBLE_COLLECTIONS_PATH": str(ensure_collection_link()),
        "ANSIBLE_HOST_KEY_CHECKING": "0",
        "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
        "ANSIBLE_LOCALHOST_WARNING": "0",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0",
    }


def run_module(
    name: str,
    args: dict[str, Any],
    check: bool = False,
    diff: bool = False,
    ad_hoc: bool = False,
) -> dict[str, Any]:
    """Run one module on localhost and return its result (``failed`` and ``msg`` included
    when it failed).

    By default the module's file runs directly with this Python, its arguments in a file as
    AnsiballZ hands them over (``_ansible_check_mode`` and ``_ansible_diff`` included): the
    same module code against the same servers, without ``ansible``'s start-up (about 1 s
    idle, 3-5 s on a loaded CI machine, per call). ``ad_hoc=True`` runs it as operators do,
    ``ansible localhost -m <fqcn> -a ...``: AnsiballZ packs the module with the module_utils
    it imports (tests/integration/test_modules_ad_hoc.py runs every module that way)."""
    if ad_hoc:
        return _run_module_ad_hoc(name, args, check, diff)
    ensure_collection_link()
    module = REPO_ROOT / "plugins" / "modules" / f"{name}.py"
    if not module.is_file():
        raise AssertionError(f"no module {name} in plugins/modules")
    with tempfile.TemporaryDirectory(prefix="ansible-module-") as tmp:
        args_file = Path(tmp) / "args.json"
        internal = {"_ansible_check_mode": check, "_ansible_diff": diff, "_ansible_tmpdir": tmp}
        args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {**args, **internal}}))
        env = {**os.environ, "PYTHONPATH": str(COLLECTIONS_PATH)}
        proc = subprocess.run(
            [sys.executable, str(module), str(args_file)],
            capture_output=True, text=True, env=env, timeout=300, check=False, cwd=tmp,
        )  # fmt: skip
    try:
        result: dict[str, Any] = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise AssertionError(
            f"module {name} printed no result (exit {proc.returncode}):\n"
            f"{proc.stdout}\n{proc.stderr}"
        ) from exc
    result.setdefault("changed", False)
    for kind in ("warnings", "deprecations"):  # summaries, as the controller's result shows them
        if kind in result:
            result[kind] = [_summary_text(entry) for entry in result[kind]]
    return result


def _summary_text(entry: Any) -> Any:
    """A module's warning as ansible's result holds it: its text (ansible-core 2.19 modules
    print {"event": {"msg": ...}, "__ansible_type": "WarningSummary"})."""
    if isinstance(entry, dict) and isinstance(entry.get("event"), dict):
        return entry["event"].get("msg", entry)
    return entry


def _run_module_ad_hoc(name: str, args: dict[str, Any], check: bool, diff: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="ansible-result-") as tmp:
        result_file = Path(tmp) / "result.json"
        argv = [
            str(Path(sys.executable).parent / "ansible"),
            "localhost",
            "-m",
            FQCN_PREFIX + name,
            "-a",
            json.dumps(args),
        ]
        if check:
            argv.append("--check")
        if diff:
            argv.append("--diff")
        env = {
            **ansible_env(),
            "ANSIBLE_CALLBACK_PLUGINS": str(Path(__file__).parent / "callback_plugins"),
            "ANSIBLE_CALLBACKS_ENABLED": "result_file",
            "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
            "EVENTBUS_OPS_RESULT_FILE": str(result_file),
        }
        proc = subprocess.run(
            argv, capture_output=True, text=True, env=env, timeout=300, check=False
        )
        if not result_file.exists():
            raise AssertionError(f"ansible produced no result:\n{proc.stdout}\n{proc.stderr}")
        result: dict[str, Any] = json.loads(result_file.read_text())["localhost"]
    return result


def run_playbook(
    workdir: Path,
    playbook: str,
    inventory: str,
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 180,
) -> subprocess.CompletedProcess[str]:
    """Run a playbook (its text) on an inventory (its text) in ``workdir`` with the
    repository's ansible.cfg and this checkout as the collection, as tests of the runbook
    role's task files do; the completed process (returncode, stdout, stderr)."""
    (workdir / "inventory").write_text(inventory)
    (workdir / "playbook.yml").write_text(playbook)
    return subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "inventory",
         "playbook.yml", *args],
        capture_output=True, text=True, cwd=workdir, timeout=timeout, check=False,
        env={**ansible_env(), "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg"), **(env or {})},
    )  # fmt: skip
