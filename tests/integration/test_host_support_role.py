"""The internal host_support role, which every role includes first, on this machine (Debian 12,
a supported host) over a local connection: a missing package is found from dpkg's database
and, in check mode, only reported; installed packages are left alone; with the packages
managed elsewhere, a missing command stops the role naming it. (Installing for real is the
lab's: its hosts get their packages through the controller's apt proxy.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from tests.harness.collection import ansible_env

BIN = Path(sys.executable).parent
MISSING = "eventbus-ops-no-such-package"


def run_role(
    tmp_path: Path, check: bool = False, **role_vars: object
) -> subprocess.CompletedProcess[str]:
    play = [{
        "name": "host_support alone",
        "hosts": "localhost",
        "gather_facts": False,
        "roles": [{"role": "eventplatform.eventbus.host_support",
                   "vars": {"host_support_component": "test", **role_vars}}],
    }]  # fmt: skip
    playbook = tmp_path / "play.yml"
    playbook.write_text(yaml.safe_dump(play))
    return subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", str(playbook),
         *(["--check"] if check else [])],
        capture_output=True, text=True, env=ansible_env(), timeout=300, check=False,
    )  # fmt: skip


def test_a_missing_package_is_found_and_check_mode_only_reports_it(tmp_path: Path) -> None:
    proc = run_role(tmp_path, check=True, host_support_packages=["coreutils", MISSING],
                    host_support_hold_services=True)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"test would install {MISSING}" in proc.stdout
    assert "coreutils" not in proc.stdout.split("would install", 1)[1].splitlines()[0]
    assert (
        not Path("/usr/sbin/policy-rc.d").exists()
        or "eventplatform" not in Path("/usr/sbin/policy-rc.d").read_text()
    )


def test_installed_packages_are_left_alone(tmp_path: Path) -> None:
    proc = run_role(
        tmp_path, host_support_packages=["coreutils", "dpkg"], host_support_hold_services=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "changed=0" in proc.stdout
    install = proc.stdout.split("host_support : Install the missing ones of coreutils, dpkg]", 1)[1]
    assert install.split("TASK [", 1)[0].strip().endswith("skipping: [localhost]")


def test_packages_managed_elsewhere_need_their_commands(tmp_path: Path) -> None:
    proc = run_role(tmp_path, host_support_packages=["haproxy"], host_support_manage_packages=False,
                    host_support_commands=["sh", "eventbus-ops-no-such-command"])  # fmt: skip
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert (
        "test: localhost lacks eventbus-ops-no-such-command (the packages haproxy provide them)"
        in proc.stdout
    )
    install = proc.stdout.split("host_support : Install the missing ones of haproxy]", 1)[1]
    assert install.split("TASK [", 1)[0].strip().endswith("skipping: [localhost]")
    assert "changed=0" in proc.stdout
