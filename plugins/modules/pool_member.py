#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: eventbus-ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: pool_member
short_description: Pool, depool or drain a host in its load-balancer pool (conftool or HAProxy)
version_added: 0.1.0
description:
  - Replaces the runbook's C(confctl depool --hostname X) and C(confctl pool --hostname X).
  - >-
    With O(backend=conftool) the pool is kept in etcd the way Wikimedia's conftool keeps it:
    the key C(<conftool_prefix>/<datacenter>/<cluster>/<service>/<name>) holds
    C({"pooled": "yes"|"no"|"inactive", "weight": N}), and a load balancer (PyBal, or the
    lab's etcd watcher) applies it. What this module writes C(confctl) reads, and the reverse.
  - With O(backend=haproxy) the pool is HAProxy's own server state, changed through its
    runtime API (C(set server <backend>/<name> state ready|drain|maint), C(weight)).
  - Refuses to take a member out when that would leave fewer members serving than
    O(min_pooled) (by default all others, so at most one member of a pool is out at a time),
    unless O(force=true).
  - Reads the pool once, then writes one member only; a conftool write is a compare-and-swap,
    so a concurrent change is reported and nothing is half-written.
author:
  - eventbus-ops maintainers (@eventplatform)
extends_documentation_fragment:
  - eventplatform.eventbus.attributes.CHANGES_STATE
options:
  backend:
    description:
      - Where the pool lives.
    type: str
    required: true
    choices: [conftool, haproxy]
  name:
    description:
      - The member - the host's FQDN for conftool (as C(confctl --hostname) takes it), the
        server name for HAProxy.
    type: str
    required: true
  state:
    description:
      - V(pooled) takes traffic. V(depooled) takes none (conftool C(pooled=no), HAProxy
        C(maint)). V(drained) (HAProxy only) gets no new connections while existing ones
        finish. V(inactive) (conftool only) is C(pooled=inactive) - out of the pool's
        configuration altogether.
      - When omitted, only O(weight) is changed.
    type: str
    choices: [pooled, depooled, drained, inactive]
  weight:
    description:
      - Weight to set.
    type: int
  min_pooled:
    description:
      - Fewest other members that must remain serving for this one to be taken out. By
        default all other members of the pool must be serving.
    type: int
  force:
    description:
      - Take the member out even if O(min_pooled) is not met.
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
  etcd_url:
    description:
      - etcd client URL (conftool). The v2 keys API must be enabled.
    type: str
    default: http://127.0.0.1:2379
  etcd_ca_path:
    description:
      - CA bundle to verify etcd's certificate with, for an C(https) O(etcd_url).
    type: path
  datacenter:
    description:
      - conftool datacenter, for example V(eqiad). Required with O(backend=conftool).
    type: str
  cluster:
    description:
      - conftool cluster, for example V(eventbus). Required with O(backend=conftool).
    type: str
  service:
    description:
      - conftool service, for example V(eventbus). Required with O(backend=conftool).
    type: str
  conftool_prefix:
    description:
      - Key prefix of conftool's pools (conftool's namespace and API version).
    type: str
    default: /conftool/v1/pools
  haproxy_socket:
    description:
      - Path of HAProxy's runtime API unix socket (C(stats socket ... level admin)).
    type: path
  haproxy_address:
    description:
      - C(host:port) of HAProxy's runtime API over TCP, instead of O(haproxy_socket).
    type: str
  haproxy_backend:
    description:
      - HAProxy backend the server belongs to. Required with O(backend=haproxy).
    type: str
  timeout:
    description:
      - Seconds to wait for each answer from etcd or HAProxy.
    type: float
    default: 10.0
seealso:
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

- name: Drain a server in HAProxy and wait for its connections to finish
  eventplatform.eventbus.pool_member:
    backend: haproxy
    haproxy_socket: /run/haproxy/admin.sock
    haproxy_backend: eventbus
    name: kafka2001
    state: drained
    wait: true
    wait_sessions: true
    wait_timeout: 120

- name: Pool it back
  eventplatform.eventbus.pool_member:
    backend: haproxy
    haproxy_socket: /run/haproxy/admin.sock
    haproxy_backend: eventbus
    name: kafka2001
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
    C(health) (V(up), V(down), V(starting), V(stopping)) from their health check.
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
from ansible_collections.eventplatform.eventbus.plugins.module_utils._conftool import (
    DEFAULT_PREFIX,
    ConftoolPool,
)
from ansible_collections.eventplatform.eventbus.plugins.module_utils._haproxy import (
    HAProxyPool,
    HAProxyRuntime,
)
from ansible_collections.eventplatform.eventbus.plugins.module_utils._pool import (
    DRAINED,
    INACTIVE,
    PoolError,
    set_membership,
)


def argument_spec():
    return dict(
        backend=dict(type="str", required=True, choices=["conftool", "haproxy"]),
        name=dict(type="str", required=True),
        state=dict(type="str", choices=["pooled", "depooled", "drained", "inactive"]),
        weight=dict(type="int"),
        min_pooled=dict(type="int"),
        force=dict(type="bool", default=False),
        wait=dict(type="bool", default=False),
        wait_sessions=dict(type="bool", default=False),
        wait_timeout=dict(type="float", default=60.0),
        etcd_url=dict(type="str", default="http://127.0.0.1:2379"),
        etcd_ca_path=dict(type="path"),
        datacenter=dict(type="str"),
        cluster=dict(type="str"),
        service=dict(type="str"),
        conftool_prefix=dict(type="str", default=DEFAULT_PREFIX),
        haproxy_socket=dict(type="path"),
        haproxy_address=dict(type="str"),
        haproxy_backend=dict(type="str"),
        timeout=dict(type="float", default=10.0),
    )


def build_store(params):
    if params["backend"] == "conftool":
        return ConftoolPool(
            params["etcd_url"],
            params["datacenter"],
            params["cluster"],
            params["service"],
            prefix=params["conftool_prefix"],
            timeout=params["timeout"],
            ca_path=params["etcd_ca_path"],
        )
    runtime = HAProxyRuntime(
        socket_path=params["haproxy_socket"],
        address=params["haproxy_address"],
        timeout=params["timeout"],
    )
    return HAProxyPool(runtime, params["haproxy_backend"])


def validate(module):
    params = module.params
    if params["state"] is None and params["weight"] is None:
        module.fail_json(msg="nothing to do: set state, weight, or both")
    if params["weight"] is not None and params["weight"] < 0:
        module.fail_json(msg="weight must be 0 or more, got %d" % params["weight"])
    if params["backend"] == "conftool" and params["state"] == DRAINED:
        module.fail_json(
            msg="state=drained needs backend=haproxy; with conftool use state=depooled"
        )
    if params["backend"] == "haproxy" and params["state"] == INACTIVE:
        module.fail_json(msg="state=inactive is a conftool state; with haproxy use state=depooled")
    if params["wait_sessions"] and params["backend"] != "haproxy":
        module.fail_json(msg="wait_sessions needs backend=haproxy, which can count sessions")


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        required_if=[
            ("backend", "conftool", ("datacenter", "cluster", "service")),
            ("backend", "haproxy", ("haproxy_backend",)),
            ("backend", "haproxy", ("haproxy_socket", "haproxy_address"), True),
        ],
        mutually_exclusive=[("haproxy_socket", "haproxy_address")],
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
