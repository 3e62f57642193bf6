"""No wait of a run may outlive its run lock (issue 24, item 10): pre-flight refuses a run
whose longest wait, plus the sixth of the ttl a renewal may lag, reaches the lock's ttl."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness.collection import run_playbook

PLAYBOOK = """
- name: The pre-flight's check of the waits against the lock
  hosts: all
  gather_facts: false
  tasks:
    - name: Check
      ansible.builtin.include_role:
        name: eventplatform.eventbus.runbook
        tasks_from: lock_lifetime.yml
    - name: Reached only when the check passed
      ansible.builtin.debug:
        msg: THE CHECK PASSED
"""


@pytest.mark.parametrize(
    ("extra", "passes"),
    [
        ((), True),  # the role's defaults: a 600 s reboot or steady wait, a 900 s lock
        (("-e", "runbook_lock_ttl=700"), False),
        (
            (
                "-e",
                "runbook_lock_ttl=700",
                "-e",
                "runbook_reboot_timeout=300",
                "-e",
                "runbook_kafka_steady_timeout=300",
            ),
            True,
        ),
        (("-e", "runbook_kafka_steady_timeout=1200"), False),
    ],
)
def test_a_wait_longer_than_the_lock_is_refused(
    tmp_path: Path, extra: tuple[str, ...], passes: bool
) -> None:
    proc = run_playbook(tmp_path, PLAYBOOK, "host ansible_connection=local\n", *extra)
    out = proc.stdout + proc.stderr
    assert ("THE CHECK PASSED" in out) is passes, out[-3000:]
    if not passes:
        assert "would outlive the run lock" in out
        assert "raise runbook_lock_ttl above" in out
