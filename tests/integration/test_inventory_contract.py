"""The inventory contract (docs/inventory.md) as operators meet it: the shipped inventories
fill it and site.yml plans every play on them; an inventory that lacks a group or a variable
stops site.yml at its first play with one line naming it, before any host is reached."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.harness.collection import REPO_ROOT, ansible_env

BIN = Path(sys.executable).parent
CONTRACT_PLAY = """
- name: The contract alone
  hosts: all
  gather_facts: false
  tasks:
    - name: Check the inventory
      ansible.builtin.include_role:
        name: eventplatform.eventbus.runbook
        tasks_from: inventory_contract
      vars:
        runbook_contract_scope: "{{ scope }}"
"""
# every host is unreachable by design: a task that tried to connect would fail
ENV = {
    **ansible_env(),
    "ANSIBLE_SSH_ARGS": "-o ConnectTimeout=1",
    "ANSIBLE_RETRY_FILES_ENABLED": "0",
}


def playbook(inventory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(inventory), *args],
        capture_output=True, text=True, env=ENV, cwd=REPO_ROOT, timeout=180, check=False,
    )  # fmt: skip


@pytest.mark.parametrize("inventory", ["production", "lab"])
def test_site_plans_every_play_on_the_shipped_inventories(inventory: str) -> None:
    proc = playbook(REPO_ROOT / "inventories" / inventory, "--list-hosts", "playbooks/site.yml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    listing = r"play #\d+ \(([^)]*)\): (.*?)\tTAGS.*?\n\s+pattern: .*?\n\s+hosts \((\d+)\)"
    plays = re.findall(listing, proc.stdout)
    assert len(plays) == len(yaml.safe_load((REPO_ROOT / "playbooks" / "site.yml").read_text()))
    assert all(int(count) > 0 for _hosts, _name, count in plays), plays


@pytest.mark.parametrize("inventory", ["production", "lab"])
@pytest.mark.parametrize("scope", ["site", "runbook", "kafka"])
def test_the_shipped_inventories_fill_the_contract(
    inventory: str, scope: str, tmp_path: Path
) -> None:
    play = tmp_path / "contract.yml"
    play.write_text(CONTRACT_PLAY)
    proc = playbook(REPO_ROOT / "inventories" / inventory, str(play), "-e", f"scope={scope}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ok=" in proc.stdout
    assert "unreachable=1" not in proc.stdout


def broken_production(tmp_path: Path) -> Path:
    copy = tmp_path / "production"
    shutil.copytree(REPO_ROOT / "inventories" / "production", copy)
    return copy


def test_a_missing_group_stops_site_before_any_host(tmp_path: Path) -> None:
    inventory = broken_production(tmp_path)
    hosts = yaml.safe_load((inventory / "hosts.yml").read_text())
    del hosts["all"]["children"]["loadbalancer"]
    (inventory / "hosts.yml").write_text(yaml.safe_dump(hosts))
    proc = playbook(inventory, "playbooks/site.yml")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "group loadbalancer is missing or empty - each datacenter's load balancer" in proc.stdout
    assert "UNREACHABLE" not in proc.stdout  # nothing was reached
    assert "PLAY [Kafka, one KRaft cluster per datacenter]" not in proc.stdout


def test_a_missing_variable_is_one_line_per_host_naming_it(tmp_path: Path) -> None:
    inventory = broken_production(tmp_path)
    eqiad = inventory / "group_vars" / "eqiad.yml"
    eqiad.write_text(
        "\n".join(
            line
            for line in eqiad.read_text().splitlines()
            if not line.startswith("eventbus_lock_etcd_url:")
        )
    )
    proc = playbook(inventory, "playbooks/site.yml")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    named = re.findall(r"([\w.]+): eventbus_lock_etcd_url is not set - ", proc.stdout)
    assert sorted(set(named)) == [
        "kafka1001.eqiad.wmnet",
        "kafka1002.eqiad.wmnet",
    ]
    assert "codfw.wmnet: eventbus_lock_etcd_url" not in proc.stdout
    assert "UNREACHABLE" not in proc.stdout
