"""A pool manager that cannot be reached fails the cycle's pool steps: the cycle lets
unreachable tasks through (so that its rescue runs), and a depool or repool delegated to an
unreachable manager once counted as done, leaving the host out of its pool with the run
ending in a pass (issue 24)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness._net import free_port
from tests.harness.collection import run_playbook

# The cycle's own block keywords around one of its pool steps.
PLAYBOOK = """
- name: One pool step of the cycle, the pool manager unreachable
  hosts: kafka1001.eqiad.wmnet
  gather_facts: false
  tasks:
    - name: The step
      ignore_unreachable: true
      block:
        - name: Run it
          ansible.builtin.include_role:
            name: eventplatform.eventbus.runbook
            tasks_from: "steps/{{ step }}.yml"
        - name: Reached only when the step passed
          ansible.builtin.debug:
            msg: THE STEP PASSED
"""


@pytest.mark.parametrize(
    ("step", "said"),
    [("depool", "cannot be read, so it is not depooled"), ("repool", "could not be repooled")],
)
def test_a_pool_step_fails_when_the_pool_manager_is_unreachable(
    tmp_path: Path, step: str, said: str
) -> None:
    inventory = (
        "kafka1001.eqiad.wmnet ansible_connection=local\n"
        f"lb1001.eqiad.wmnet ansible_host=127.0.0.1 ansible_port={free_port()} "
        "ansible_connection=ssh ansible_ssh_common_args='-o ConnectTimeout=3'\n"
    )
    # (check mode: the run lock's record, which needs etcd, is skipped as in --check runs)
    proc = run_playbook(
        tmp_path, PLAYBOOK, inventory, "--check",
        "-e", f"step={step}", "-e", "eventbus_pool_manager=lb1001.eqiad.wmnet",
        "-e", "runbook_depooled_by_run=true", "-e", "runbook_confirm_traffic=false",
        "-e", "eventbus_pool_backend=conftool",
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-3000:]
    assert "THE STEP PASSED" not in out, out[-3000:]
    assert "the pool manager lb1001.eqiad.wmnet" in out, out[-3000:]
    assert said in out, out[-3000:]
