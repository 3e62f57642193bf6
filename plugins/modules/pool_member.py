#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: eventbus-ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: pool_member
short_description: Pool or depool a host in its load-balancer pool (conftool or HAProxy)
version_added: 0.1.0
description:
  - Replaces the runbook's C(confctl depool --hostname X) and C(confctl pool --hostname X).
  - Refuses to take a member out of service (out of the pool, or to weight 0) when that would
    leave fewer other members serving than O(threshold) of the pool's intended members (those
    not inactive, counted before the change), as PyBal's C(depool-threshold) does, or than
    O(min_pooled) when given; unless O(force=true).
  - The read, the check and the write hold a write lock over the whole pool (conftool - a key
    under C(/eventbus-ops/pool-writes) in etcd; HAProxy - a lock file on the host that runs
    the module), so two changes of different members cannot both pass the threshold; a
    conftool write is also a compare-and-swap on the member's key, so a change made meanwhile
    by confctl is reported and nothing is half-written.
  - To read a pool without changing it, use M(eventplatform.eventbus.pool_member_info).
author:
  - eventbus-ops maintainers (@eventplatform)
extends_documentation_fragment:
  - eventplatform.eventbus.pool
  - eventplatform.eventbus.attributes.CHANGES_STATE
attributes:
  diff_mode:
    support: full
    details: The member's pooled state and weight before and after.
options:
  name:
    description:
      - The member - the host's FQDN for conftool (as C(confctl --hostname) takes it), the
        server name for HAProxy.
    type: str
    required: true
  state:
    description:
      - V(pooled) takes traffic. V(depooled) gets no new connections while its current ones
        finish, and stays health-checked (conftool C(pooled=no), HAProxy C(drain)).
        V(inactive) is out of the pool's configuration altogether (conftool
        C(pooled=inactive), HAProxy C(maint)).
      - When omitted, only O(weight) is changed.
    type: str
    choices: [pooled, depooled, inactive]
  weight:
    description:
      - Weight to set.
    type: int
  threshold:
    description:
      - Share of the pool's intended members (all but the inactive ones) that must stay
        serving when a member is taken out - rounded up, and at least one member. PyBal's
        C(depool-threshold), whose default this is - in a pool of two, one member may be out;
        of five, two.
    type: float
    default: 0.5
  min_pooled:
    description:
      - Fewest other members that must remain serving for this one to be taken out, instead
        of O(threshold).
    type: int
  force:
    description:
      - Take the member out even if O(threshold) or O(min_pooled) is not met.
    type: bool
    default: false
  wait:
    description:
      - Wait until the change is in effect - the member reads back as asked and, with
        O(wait_sessions), HAProxy reports no current sessions on it.
    type: bool
    default: false
  wait_sessions:
    description:
      - With O(wait), also wait until the member has no current sessions (HAProxy only).
    type: bool
    default: false
  wait_timeout:
    description:
      - Seconds to wait with O(wait).
    type: float
    default: 60.0
seealso:
  - module: eventplatform.eventbus.pool_member_info
  - name: conftool
    description: Wikimedia's configuration tool, whose etcd layout the conftool backend uses.
    link: https://wikitech.wikimedia.org/wiki/Conftool
  - name: HAProxy runtime API
    description: The commands the haproxy backend sends.
    link: https://docs.haproxy.org/2.6/management.html#9.3
"""

EXAMPLES = r"""
- name: Depool kafka1001 (confctl depool --hostname kafka1001.eqiad.wmnet)
  eventplatform.eventbus.pool_member:
    backend: conftool
    etcd_url: https://conf1001.eqiad.wmnet:2379
    datacenter: eqiad
    cluster: eventbus
    service: eventbus
    name: kafka1001.eqiad.wmnet
    state: depooled
  register: depool

- name: Depool a server in HAProxy and wait for its connections to finish
  eventplatform.eventbus.pool_member:
    backend: haproxy
    haproxy_socket: /run/haproxy/admin.sock
    haproxy_backend: eventbus
    name: kafka2001.codfw.wmnet
    state: depooled
    wait: true
    wait_sessions: true
    wait_timeout: 120

- name: Pool it back
  eventplatform.eventbus.pool_member:
    backend: haproxy
    haproxy_socket: /run/haproxy/admin.sock
    haproxy_backend: eventbus
    name: kafka2001.codfw.wmnet
    state: pooled
    wait: true
"""

RETURN = r"""
before:
  description: The member before the task.
  returned: success
  type: dict
  sample: {"state": "pooled", "weight": 10, "serving": true}
after:
  description: The member after the task (in check mode - as it would be).
  returned: success
  type: dict
  sample: {"state": "depooled", "weight": 10, "serving": false}
pool:
  description: Every member of the pool after the task, by name; HAProxy members also carry
    C(health) (V(up), V(down), V(starting), V(stopping)) from their health check, conftool
    members the C(index) of the etcd write their key holds.
  returned: success
  type: dict
  sample:
    kafka1001.eqiad.wmnet: {"state": "depooled", "weight": 10, "serving": false}
    kafka1002.eqiad.wmnet: {"state": "pooled", "weight": 10, "serving": true}
diff:
  description: Before and after, with C(--diff).
  returned: changed and diff mode
  type: dict
  sample:
    before: {"state": "pooled", "weight": 10}
    after: {"state": "depooled", "weight": 10}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.eventplatform.eventbus.plugins.module_utils._pool import (
    PoolError,
    set_membership,
)
from ansible_collections.eventplatform.eventbus.plugins.module_utils._pool_args import (
    POOL_MUTUALLY_EXCLUSIVE,
    POOL_REQUIRED_IF,
    POOL_REQUIRED_TOGETHER,
    build_store,
    pool_connection_argspec,
)


def argument_spec():
    spec = pool_connection_argspec()
    spec.update(
        name=dict(type="str", required=True),
        state=dict(type="str", choices=["pooled", "depooled", "inactive"]),
        weight=dict(type="int"),
        threshold=dict(type="float", default=0.5),
        min_pooled=dict(type="int"),
        force=dict(type="bool", default=False),
        wait=dict(type="bool", default=False),
        wait_sessions=dict(type="bool", default=False),
        wait_timeout=dict(type="float", default=60.0),
    )
    return spec


def validate(module):
    params = module.params
    if params["state"] is None and params["weight"] is None:
        module.fail_json(msg="nothing to do: set state, weight, or both")
    if params["weight"] is not None and params["weight"] < 0:
        module.fail_json(msg="weight must be 0 or more, got %d" % params["weight"])
    if not 0 <= params["threshold"] <= 1:
        module.fail_json(
            msg="threshold is a share of the pool, from 0 to 1; got %s" % params["threshold"]
        )
    if params["wait_sessions"] and params["backend"] != "haproxy":
        module.fail_json(msg="wait_sessions needs backend=haproxy, which can count sessions")


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        required_if=POOL_REQUIRED_IF,
        mutually_exclusive=POOL_MUTUALLY_EXCLUSIVE,
        required_together=POOL_REQUIRED_TOGETHER,
        supports_check_mode=True,
    )
    validate(module)
    params = module.params
    try:
        result = set_membership(
            build_store(params),
            params["name"],
            state=params["state"],
            weight=params["weight"],
            min_pooled=params["min_pooled"],
            threshold=params["threshold"],
            force=params["force"],
            check_mode=module.check_mode,
            wait=params["wait"],
            wait_timeout=params["wait_timeout"],
            wait_sessions=params["wait_sessions"],
        )
    except PoolError as err:
        module.fail_json(msg=str(err))
    if module._diff and result["changed"]:
        result["diff"] = dict(
            before=dict(state=result["before"]["state"], weight=result["before"]["weight"]),
            after=dict(state=result["after"]["state"], weight=result["after"]["weight"]),
        )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
