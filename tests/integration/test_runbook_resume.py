"""The runbook's side of a resume, against a real etcd in conftool's layout: a host the
interrupted run depooled is this run's to repool only while its pool member still holds that
run's own write (an operator's confctl depool in between keeps it out); and the run lock
names the operator (runbook_operator, else SUDO_USER, else the login name)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.harness.collection import run_module, run_playbook
from tests.harness.etcd import EtcdServer

POOL = "/conftool/v1/pools/eqiad/eventbus/eventbus"
HOSTS = ("kafka1001.eqiad.wmnet", "kafka1002.eqiad.wmnet")
HOST = HOSTS[1]

# The preflight's two inputs (the pool read of the host, run_lock's result), then the role's
# decision, written out as JSON.
PLAYBOOK = """
- name: Decide about a host the interrupted run depooled
  hosts: all
  gather_facts: false
  tasks:
    - name: Read the host's pool membership
      eventplatform.eventbus.pool_member_info:
        backend: conftool
        etcd_url: "{{ etcd_url }}"
        datacenter: eqiad
        cluster: eventbus
        service: eventbus
        name: "{{ inventory_hostname }}"
      register: runbook_preflight_pool
    - name: The runbook's decision
      ansible.builtin.include_role:
        name: eventplatform.eventbus.runbook
        tasks_from: resumed_depool.yml
        public: true
      vars:
        runbook_lock: {lock: {wrote: "{{ wrote | from_json }}"}}
        runbook_depooled_before: true
    - name: Write it down
      ansible.builtin.copy:
        content: >-
          {{ {'ours': runbook_depooled_before, 'changed_since': runbook_depool_changed_since,
              'holder': __runbook_holder} | to_json }}
        dest: "{{ playbook_dir }}/decision.json"
        mode: "0644"
"""


@pytest.fixture
def pool(etcd: EtcdServer) -> EtcdServer:
    for host in HOSTS:
        etcd.put(f"{POOL}/{host}", json.dumps({"pooled": "yes", "weight": 10}))
    return etcd


def depool(etcd: EtcdServer) -> dict:
    """The run's depool (pool_member, as the cycle's step runs it): what the lock records."""
    result = run_module(
        "pool_member",
        {"backend": "conftool", "etcd_url": etcd.url, "datacenter": "eqiad",
         "cluster": "eventbus", "service": "eventbus", "name": HOST, "state": "depooled"},
    )  # fmt: skip
    assert result["changed"] is True, result.get("msg")
    after = result["after"]
    assert isinstance(after["index"], int)
    return {key: after[key] for key in ("state", "weight", "index")}


def decide(
    tmp_path: Path, etcd: EtcdServer, wrote: dict, *extra: str, env: dict | None = None
) -> dict:
    proc = run_playbook(
        tmp_path, PLAYBOOK, f"{HOST} ansible_connection=local\n",
        "-e", f"etcd_url={etcd.url}", "-e", json.dumps({"wrote": json.dumps(wrote)}), *extra,
        env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads((tmp_path / "decision.json").read_text())


def test_the_interrupted_runs_depool_is_repooled_only_while_the_member_holds_it(
    pool: EtcdServer, confctl, tmp_path: Path
) -> None:
    wrote = depool(pool)
    untouched = decide(tmp_path, pool, {HOST: wrote})
    assert untouched["ours"] is True
    assert untouched["changed_since"] is False

    # an operator depools the host again in between: the same state, another write
    confctl("select", f"name={HOST}", "set/pooled=no")
    rewritten = decide(tmp_path, pool, {HOST: wrote})
    assert rewritten["ours"] is False
    assert rewritten["changed_since"] is True

    # no record of the write (the run was cut off between its depool and the record): kept
    assert decide(tmp_path, pool, {})["ours"] is True


def test_a_weight_changed_since_makes_the_depool_the_operators(
    pool: EtcdServer, confctl, tmp_path: Path
) -> None:
    wrote = depool(pool)
    confctl("select", f"name={HOST}", "set/weight=5")
    decided = decide(tmp_path, pool, {HOST: wrote})
    assert decided["ours"] is False


def test_the_lock_names_the_operator_not_only_the_account(pool: EtcdServer, tmp_path: Path) -> None:
    wrote = {HOST: {"state": "pooled", "weight": 10, "index": None}}
    by_sudo = decide(tmp_path, pool, wrote, env={"SUDO_USER": "carol", "USER": "root"})
    assert by_sudo["holder"].startswith("carol@")
    named = decide(tmp_path, pool, wrote, "-e", "runbook_operator=dave",
                   env={"SUDO_USER": "carol", "USER": "root"})  # fmt: skip
    assert named["holder"].startswith("dave@")
    plain = decide(tmp_path, pool, wrote, env={"SUDO_USER": "", "LOGNAME": "erin"})
    assert plain["holder"].startswith("erin@")
