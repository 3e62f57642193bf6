#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: eventbus-ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: run_lock
short_description: Take, renew and release a rolling operation's lock in etcd
version_added: 0.1.0
description:
  - One rolling operation at a time on a pool or a Kafka cluster, as spicerack's locks do.
    The lock is a key in etcd (v2 keys API) under O(prefix)/O(scope), holding who holds it,
    the playbook, the required reason, when it started and was renewed, its O(ttl), and the
    run's progress (hosts done, hosts depooled and not yet put back).
  - V(held) takes the lock, or renews it when this run (O(run_id)) holds it. It refuses a
    lock another run holds, naming its holder, playbook, reason and age. A lock not renewed
    within its ttl is taken over afresh with a warning that names the hosts that run left
    depooled (nothing of its progress is carried over).
  - With O(resume=true), the operator's word that the other run is gone (for example after a
    Ctrl-C), the new run carries over the old one's progress, only when that run has the same
    O(holder), O(playbook) and O(parameters) and was renewed within its ttl plus
    O(resume_window); otherwise the task fails, saying which of those differs.
  - V(progress) renews this run's lock and records a host in O(done), O(depooled) (with
    O(wrote), the member as the depool left it) or O(undepooled). V(released) removes it if
    this run holds it.
  - Writes are compare-and-swap, so two runs cannot both take the lock.
author:
  - eventbus-ops maintainers (@eventplatform)
extends_documentation_fragment:
  - eventplatform.eventbus.attributes.CHANGES_STATE
attributes:
  diff_mode:
    support: none
    details: The lock's record as it stands after the call is returned in RV(lock).
options:
  etcd_url:
    description:
      - etcd client URL with the v2 keys API (both datacenters' conf hosts run one).
    type: str
    required: true
  etcd_username:
    description:
      - The etcd user to log in as, where etcd's v2 authentication is on; its role must allow
        writing the lock's keys (under O(prefix)).
    type: str
  etcd_password:
    description:
      - Its password.
    type: str
  etcd_ca_path:
    description:
      - CA bundle to verify etcd's certificate with, for an C(https) O(etcd_url).
    type: path
  scope:
    description:
      - What the lock guards, for example V(pool/eqiad/eventbus/eventbus) or
        V(kafka/main-eqiad).
    type: str
    required: true
  prefix:
    description:
      - Key prefix of the locks.
    type: str
    default: /eventbus-ops/locks
  state:
    description:
      - V(held), V(progress) or V(released).
    type: str
    default: held
    choices: [held, progress, released]
  run_id:
    description:
      - This run's identity (the same for every task of one run).
    type: str
    required: true
  holder:
    description:
      - Who runs it, C(operator@controller); the operator is the person (C(SUDO_USER) or the
        login user), not only the account. Default the account running the module.
    type: str
  playbook:
    description:
      - The operation (playbook) taking the lock.
    type: str
  reason:
    description:
      - Why it runs (a task id); required with O(state=held).
    type: str
  ttl:
    description:
      - Seconds the holder has between two renewals before the lock counts as stale.
    type: int
    default: 900
  parameters:
    description:
      - What makes this run this run, beside its holder and playbook (its limit, hosts and
        settings); stored in the lock, and compared by O(resume=true).
    type: dict
    default: {}
  resume:
    description:
      - Take over a lock of the same holder, playbook and O(parameters) at once, resuming its
        progress (the operator says that run is gone).
    type: bool
    default: false
  resume_window:
    description:
      - Seconds past the held lock's ttl during which O(resume=true) may still resume it;
        later, its record is too old to act on and the task fails.
    type: int
    default: 900
  done:
    description:
      - With O(state=progress), a host this run finished.
    type: str
  depooled:
    description:
      - With O(state=progress), a host this run takes out of its pool (recorded before the
        depool, and again after it with O(wrote)).
    type: str
  wrote:
    description:
      - With O(depooled), the pool member as this run's depool left it (for example
        pool_member's C(after)); a resumed run repools the host only while the member is
        still so.
    type: dict
  undepooled:
    description:
      - With O(state=progress), a host this run put back in its pool.
    type: str
  timeout:
    description:
      - Seconds to wait for each answer from etcd.
    type: float
    default: 10.0
seealso:
  - module: eventplatform.eventbus.pool_member
"""

EXAMPLES = r"""
- name: Take the lock of eqiad's pool for a rolling restart
  eventplatform.eventbus.run_lock:
    etcd_url: https://conf1001.eqiad.wmnet:2379
    scope: pool/eqiad/eventbus/eventbus
    run_id: "{{ run_id }}"
    holder: "{{ lookup('env', 'SUDO_USER') or lookup('env', 'USER') }}@cumin1001"
    playbook: rolling_restart
    reason: T123456
    parameters:
      limit: eqiad
      batch: 1
  delegate_to: localhost
  register: lock

- name: Release it
  eventplatform.eventbus.run_lock:
    etcd_url: https://conf1001.eqiad.wmnet:2379
    scope: pool/eqiad/eventbus/eventbus
    run_id: "{{ run_id }}"
    state: released
  delegate_to: localhost
"""

RETURN = r"""
lock:
  description: The lock as it stands after the task (before it, for V(released)).
  returned: success
  type: dict
  sample: {"holder": "ops@cumin1001", "playbook": "rolling_restart", "reason": "T123456",
           "parameters": {"limit": "eqiad", "batch": 1},
           "run_id": "4f1c", "started": 1795680000.0, "renewed": 1795680030.0, "ttl": 900,
           "done": ["kafka1001.eqiad.wmnet"], "depooled": [], "wrote": {}}
resumed:
  description: Whether this run took over an earlier run of the same holder and playbook,
    with its progress.
  returned: state=held
  type: bool
  sample: false
took_over:
  description: The run whose stale (or resumed) lock this one took over, or null.
  returned: state=held
  type: str
  sample: null
left_depooled:
  description: The hosts a stale run taken over afresh had recorded as depooled (this run
    does not repool them; check them).
  returned: state=held
  type: list
  elements: str
  sample: []
key:
  description: The lock's etcd key.
  returned: always
  type: str
  sample: /eventbus-ops/locks/pool/eqiad/eventbus/eventbus
"""

import getpass
import socket

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.eventplatform.eventbus.plugins.module_utils._run_lock import (
    DEFAULT_PREFIX,
    LockError,
    RunLock,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            etcd_url=dict(type="str", required=True),
            etcd_ca_path=dict(type="path"),
            etcd_username=dict(type="str"),
            etcd_password=dict(type="str", no_log=True),
            scope=dict(type="str", required=True),
            prefix=dict(type="str", default=DEFAULT_PREFIX),
            state=dict(type="str", default="held", choices=["held", "progress", "released"]),
            run_id=dict(type="str", required=True),
            holder=dict(type="str"),
            playbook=dict(type="str"),
            reason=dict(type="str"),
            ttl=dict(type="int", default=900),
            parameters=dict(type="dict", default={}),
            resume=dict(type="bool", default=False),
            resume_window=dict(type="int", default=900),
            done=dict(type="str"),
            depooled=dict(type="str"),
            undepooled=dict(type="str"),
            wrote=dict(type="dict"),
            timeout=dict(type="float", default=10.0),
        ),
        required_if=[("state", "held", ("playbook", "reason"))],
        required_together=[("etcd_username", "etcd_password")],
        required_by={"wrote": "depooled"},
        supports_check_mode=True,
    )
    params = module.params
    if params["state"] == "held" and not (params["reason"] or "").strip():
        module.fail_json(msg="say why this runs: a reason is required (e.g. a task id)")
    holder = params["holder"] or "%s@%s" % (getpass.getuser(), socket.getfqdn())
    result = {}
    try:
        lock = RunLock(params["etcd_url"], params["scope"], params["prefix"], params["timeout"],
                       params["etcd_ca_path"], username=params["etcd_username"],
                       password=params["etcd_password"])  # fmt: skip
        result["key"] = lock.key
        if module.check_mode:
            current, _index = lock.read()
            module.exit_json(changed=params["state"] != "released" or current is not None,
                             lock=current, resumed=False, took_over=None, left_depooled=[],
                             **result)  # fmt: skip
        if params["state"] == "held":
            changed, held, notes = lock.acquire(
                holder, params["playbook"], params["reason"].strip(), params["run_id"],
                params["ttl"], params["resume"], params["parameters"], params["resume_window"],
            )  # fmt: skip
            result.update(lock=held, **notes)
        elif params["state"] == "progress":
            held = lock.update(params["run_id"], params["done"], params["depooled"],
                               params["undepooled"], params["wrote"])  # fmt: skip
            changed = True
            result.update(lock=held)
        else:
            changed, before = lock.release(params["run_id"])
            result.update(lock=before)
    except LockError as err:
        module.fail_json(msg=str(err), lock=err.lock, **result)
    if result.get("took_over"):
        module.warn("took over the run lock %s from %s" % (result["key"], result["took_over"]))
    if result.get("left_depooled"):
        module.warn(
            "that run had recorded %s as depooled; this run does not repool them (it was not "
            "asked to resume): check them, and repool by hand what should be"
            % ", ".join(result["left_depooled"])
        )
    module.exit_json(changed=changed, **result)


if __name__ == "__main__":
    main()
