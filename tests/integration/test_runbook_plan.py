"""The plan a rolling playbook shows before it changes anything (issue 24, item 12): the hosts
in order, how many at a time, each pool's size and how many must stay in, the run locks, the
silences (a datacenter without an Alertmanager says so); it goes on at once with
runbook_yes=true or without a terminal."""

from __future__ import annotations

from pathlib import Path

from tests.harness.collection import run_playbook

PLAYBOOK = """
- name: The plan of a run over two datacenters
  hosts: all
  gather_facts: false
  vars:
    runbook_run_name: rolling restart
    runbook_reason: T1234
    runbook_lock_scopes: [[http://conf1001:2379, pool/eqiad/eventbus/eventbus],
                          [http://conf2001:2379, pool/codfw/eventbus/eventbus]]
  tasks:
    - name: What pre-flight read of each host's pool
      ansible.builtin.set_fact:
        runbook_skip_host: "{{ inventory_hostname == 'kafka1003.eqiad.wmnet' }}"
        runbook_preflight_pool:
          pool: "{{ pools[eventbus_datacenter] }}"
          serving: >-
            {{ pools[eventbus_datacenter] | dict2items | selectattr('value.serving')
               | map(attribute='key') | list }}
    - name: The plan
      ansible.builtin.include_role:
        name: eventplatform.eventbus.runbook
        tasks_from: plan.yml
    - name: Reached after the plan
      ansible.builtin.debug:
        msg: WENT ON
"""

INVENTORY = """
[eqiad]
kafka1001.eqiad.wmnet
kafka1002.eqiad.wmnet
kafka1003.eqiad.wmnet
[codfw]
kafka2001.codfw.wmnet
[eqiad:vars]
eventbus_datacenter=eqiad
eventbus_alertmanager_url=http://alert1001:9093
[codfw:vars]
eventbus_datacenter=codfw
[all:vars]
ansible_connection=local
"""

POOLS = (
    '{"pools": {"eqiad": {'
    '"kafka1001.eqiad.wmnet": {"state": "pooled", "weight": 10, "serving": true},'
    '"kafka1002.eqiad.wmnet": {"state": "pooled", "weight": 10, "serving": true},'
    '"kafka1003.eqiad.wmnet": {"state": "depooled", "weight": 10, "serving": false},'
    '"kafka1004.eqiad.wmnet": {"state": "inactive", "weight": 10, "serving": false}},'
    '"codfw": {"kafka2001.codfw.wmnet": {"state": "pooled", "weight": 10, "serving": true},'
    '"kafka2002.codfw.wmnet": {"state": "pooled", "weight": 10, "serving": true}}}}'
)


def test_the_plan_says_what_the_run_will_do(tmp_path: Path) -> None:
    proc = run_playbook(tmp_path, PLAYBOOK, INVENTORY, "-e", POOLS, "-e", "runbook_batch_size=1")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    flat = " ".join(out.split())
    assert (
        "PLAN rolling restart (T1234), 1 host(s) at a time, in this order: "
        "kafka1001.eqiad.wmnet, kafka1002.eqiad.wmnet, kafka2001.codfw.wmnet; "
        "skipped: kafka1003.eqiad.wmnet"
    ) in flat, flat[-3000:]
    # eqiad: four members, three intended (one inactive), half of three rounded up
    assert "eqiad 4 members, 2 serving, 2 must stay in (runbook_pool_threshold 0.5)" in flat
    assert "codfw 2 members, 2 serving, 1 must stay in" in flat
    assert "run locks: pool/eqiad/eventbus/eventbus, pool/codfw/eventbus/eventbus" in flat
    assert (
        "silences: eqiad http://alert1001:9093; codfw NONE - no eventbus_alertmanager_url" in flat
    )
    assert "WENT ON" in out  # no terminal: it does not wait
