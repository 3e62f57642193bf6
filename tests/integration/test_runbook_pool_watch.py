"""The cycle reads the pool watcher before each of the operation's own steps: when the pool fell
below its threshold while the host was out, the run stops there, saying who stopped serving and
that the watcher repooled the host; with the pool healthy the step runs. The watcher is the real
pool_watch, started as the depool step starts it (async), on a real etcd in conftool's layout."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from tests.harness.collection import run_playbook
from tests.harness.etcd import EtcdServer
from tests.integration.test_pool_watch import OTHER, OUT, PEER, POOL, Health, pool_with_one_out

PLAYBOOK = """
- name: The cycle's step runner after a depool, the pool watched
  hosts: kafka1001.eqiad.wmnet
  gather_facts: false
  module_defaults:
    group/eventplatform.eventbus.pool:
      backend: conftool
      etcd_url: "{{ etcd_url }}"
      datacenter: eqiad
      cluster: eventbus
      service: eventbus
  tasks:
    - name: Watch the pool, as the depool step does
      eventplatform.eventbus.pool_watch:
        name: kafka1001.eqiad.wmnet
        own_health_url: "{{ health.own }}"
        health_urls: "{{ health.peers }}"
        interval: 0.5
        duration: 60
        stop_file: "{{ stop_file }}"
      async: 120
      poll: 0
      register: runbook_pool_watcher

    - name: Let the watcher see the pool (the test's own wait, not the cycle's)
      ansible.builtin.async_status:
        jid: "{{ runbook_pool_watcher.ansible_job_id }}"
      register: seen
      until: seen.finished | bool or expect_breach != 'yes'
      retries: 60
      delay: 0.5

    - name: The operation's own step, through the cycle's step runner
      ansible.builtin.include_role:
        name: eventplatform.eventbus.runbook
        tasks_from: run_step
      vars:
        runbook_step: "{{ item }}"
        runbook_steps: [restart]
      loop: [restart, repool]
"""

# the operation's own step (the runner finds it in the playbook's steps/); the repool is the
# role's own, told that this run did not depool the host (it writes nothing then)
STEPS = {
    "restart.yml": "- name: Restart\n  ansible.builtin.debug:\n    msg: THE HOST RESTARTED\n",
}


@pytest.fixture
def pool(etcd: EtcdServer) -> EtcdServer:
    return pool_with_one_out(etcd)


def stop_file(run_id: str) -> Path:
    """Where the cycle's runner asks the watcher to stop (the runbook role's
    __runbook_pool_watch_stop for this run and host)."""
    return Path(f"/tmp/eventbus-ops-pool-watch.{run_id}.{OUT}")


def run(tmp_path: Path, etcd: EtcdServer, peers_up: bool, run_id: str) -> tuple[int, str]:
    (tmp_path / "steps").mkdir()
    for name, text in STEPS.items():
        (tmp_path / "steps" / name).write_text(text)
    endpoints = {name: Health() for name in (OUT, PEER, OTHER)}
    endpoints[OTHER].up = peers_up
    try:
        health = {
            "own": endpoints[OUT].url,
            "peers": {name: endpoints[name].url for name in (PEER, OTHER)},
        }
        extra = {
            "etcd_url": etcd.url,
            "health": health,
            "stop_file": str(stop_file(run_id)),
            "runbook_run_id": run_id,
            "expect_breach": "no" if peers_up else "yes",
            "eventbus_pool_manager": "kafka1001.eqiad.wmnet",
            "runbook_lock_ttl": 10**12,  # no lock renewal: this test holds no run lock
            "runbook_depooled_by_run": False,
            "runbook_confirm_traffic": False,
        }
        proc = run_playbook(
            tmp_path, PLAYBOOK, "kafka1001.eqiad.wmnet ansible_connection=local\n",
            "-e", json.dumps(extra),
        )  # fmt: skip
    finally:
        for endpoint in endpoints.values():
            endpoint.close()
    return proc.returncode, proc.stdout + proc.stderr


def test_a_pool_below_its_threshold_stops_the_run_before_the_next_step(
    tmp_path: Path, pool: EtcdServer
) -> None:
    code, out = run(tmp_path, pool, peers_up=False, run_id=uuid.uuid4().hex)
    assert code != 0, out[-3000:]
    assert "THE HOST RESTARTED" not in out, out[-3000:]
    assert "fell below its threshold while the host was out (seen before step 'restart')" in out
    assert "1 other member(s) served (kafka1002.eqiad.wmnet), 2 required" in out, out[-3000:]
    assert "not serving: kafka1003.eqiad.wmnet" in out
    assert "The watcher repooled kafka1001.eqiad.wmnet at once" in out
    assert json.loads(pool.get(f"{POOL}/{OUT}"))["pooled"] == "yes"


def test_a_healthy_pool_lets_the_steps_run_and_the_repool_ends_the_watch(
    tmp_path: Path, pool: EtcdServer
) -> None:
    run_id = uuid.uuid4().hex
    code, out = run(tmp_path, pool, peers_up=True, run_id=run_id)
    assert code == 0, out[-3000:]
    assert "THE HOST RESTARTED" in out
    assert "TASK [eventplatform.eventbus.runbook : Repool]" in out
    assert json.loads(pool.get(f"{POOL}/{OUT}"))["pooled"] == "no"  # the test's repool only says so
    assert not stop_file(run_id).exists()  # the watcher read its stop file and ended
