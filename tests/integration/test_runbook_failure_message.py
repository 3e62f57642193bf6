"""The runbook's rescues keep what failed: the failing host's own message, and on a host that
any_errors_fatal stopped alongside it (no failed result of its own), a message that says so
instead of an undefined-variable error that would skip the lock release (CI11)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.harness.collection import REPO_ROOT, ansible_env, run_playbook

BIN = Path(sys.executable).parent

PLAYBOOK = """
- name: Two hosts, one fails
  hosts: all
  gather_facts: false
  any_errors_fatal: true
  tasks:
    - name: Fail on one host only
      block:
        - name: Fail on host a
          ansible.builtin.fail:
            msg: "broker 1002 is not safe to stop: {{ 'replica ' * 100 }}"
          when: inventory_hostname == 'a'
      rescue:
        - name: Keep what failed
          ansible.builtin.include_role:
            name: eventplatform.eventbus.runbook
            tasks_from: keep_failure
        - name: Write it down
          ansible.builtin.copy:
            content: "{{ runbook_failure }}"
            dest: "{{ playbook_dir }}/{{ inventory_hostname }}.failure"
            mode: "0644"
"""


def test_each_host_keeps_its_own_failure_or_says_another_host_failed(tmp_path: Path) -> None:
    (tmp_path / "inventory").write_text("a ansible_connection=local\nb ansible_connection=local\n")
    (tmp_path / "playbook.yml").write_text(PLAYBOOK)
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", "inventory", "playbook.yml"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={
            **ansible_env(),
            "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg"),
            "ANSIBLE_COLLECTIONS_PATH": str(REPO_ROOT / ".collections"),
            "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
        },
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    shown = {host: (tmp_path / f"{host}.failure").read_text() for host in ("a", "b")}
    assert shown["a"].startswith("broker 1002 is not safe to stop: replica replica")
    assert len(shown["a"]) <= 600
    assert shown["b"] == "stopped with the run: another host failed first (its error is above)"


LOOP_PLAYBOOK = """
- name: A loop with one failing item
  hosts: all
  gather_facts: false
  tasks:
    - name: Fail on the second item only
      block:
        - name: Take two locks
          ansible.builtin.fail:
            msg: "refusing to start: the run lock {{ item }} is held by bob"
          when: item == 'kafka/eqiad'
          loop: [pool/eqiad, kafka/eqiad]
      rescue:
        - name: Keep what failed
          ansible.builtin.include_role:
            name: eventplatform.eventbus.runbook
            tasks_from: keep_failure
        - name: Write it down
          ansible.builtin.copy:
            content: "{{ runbook_failure }}"
            dest: "{{ playbook_dir }}/{{ inventory_hostname }}.failure"
            mode: "0644"
"""


def test_a_loops_failure_keeps_its_failed_items_message(tmp_path: Path) -> None:
    """A loop's own message is "One or more items failed": the run says which and why (the
    lock of the Kafka cluster refused while the pool's was taken, in the fault matrix)."""
    proc = run_playbook(tmp_path, LOOP_PLAYBOOK, "a ansible_connection=local\n")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    kept = (tmp_path / "a.failure").read_text()
    assert kept == "refusing to start: the run lock kafka/eqiad is held by bob"
