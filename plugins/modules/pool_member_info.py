#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: eventbus-ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: pool_member_info
short_description: Read a load-balancer pool and its members (conftool or HAProxy)
version_added: 0.1.0
description:
  - Reads every member of a pool - its state, weight, whether it is serving and, for HAProxy,
    its health check's verdict - without changing anything; what C(confctl select ... get)
    shows for conftool pools.
  - With O(name), also returns that member and fails if the pool has no such member.
  - The playbooks' pre-flight reads pools with it.
author:
  - eventbus-ops maintainers (@eventplatform)
extends_documentation_fragment:
  - eventplatform.eventbus.pool
  - eventplatform.eventbus.attributes.READ_ONLY
options:
  name:
    description:
      - A member to return on its own (the host's FQDN for conftool, the server name for
        HAProxy).
    type: str
seealso:
  - module: eventplatform.eventbus.pool_member
"""

EXAMPLES = r"""
- name: Read kafka1001's pool membership (confctl select 'name=kafka1001.eqiad.wmnet' get)
  eventplatform.eventbus.pool_member_info:
    backend: conftool
    etcd_url: https://conf1001.eqiad.wmnet:2379
    datacenter: eqiad
    cluster: eventbus
    service: eventbus
    name: kafka1001.eqiad.wmnet
  register: membership

- name: Refuse to go on unless it is pooled
  ansible.builtin.assert:
    that: membership.member.state == 'pooled'

- name: Read a whole HAProxy backend
  eventplatform.eventbus.pool_member_info:
    backend: haproxy
    haproxy_socket: /run/haproxy/admin.sock
    haproxy_backend: eventbus
  register: pool
"""

RETURN = r"""
pool:
  description: Every member of the pool, by name. HAProxy members also carry C(health)
    (V(up), V(down), V(starting), V(stopping)) from their health check, conftool members the
    C(index) of the etcd write their key holds.
  returned: success
  type: dict
  sample:
    kafka1001.eqiad.wmnet: {"state": "depooled", "weight": 10, "serving": false}
    kafka1002.eqiad.wmnet: {"state": "pooled", "weight": 10, "serving": true}
member:
  description: The member named by O(name).
  returned: success, when O(name) is given
  type: dict
  sample: {"state": "pooled", "weight": 10, "serving": true}
serving:
  description: Names of the members that serve (pooled, weight above 0, and for HAProxy
    up by their health check), sorted.
  returned: success
  type: list
  elements: str
  sample: ["kafka1001.eqiad.wmnet", "kafka1002.eqiad.wmnet"]
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.eventplatform.eventbus.plugins.module_utils._pool import (
    PoolError,
    read_pool,
)
from ansible_collections.eventplatform.eventbus.plugins.module_utils._pool_args import (
    POOL_MUTUALLY_EXCLUSIVE,
    POOL_REQUIRED_IF,
    POOL_REQUIRED_TOGETHER,
    build_store,
    pool_connection_argspec,
)


def main():
    spec = pool_connection_argspec()
    spec.update(name=dict(type="str"))
    module = AnsibleModule(
        argument_spec=spec,
        required_if=POOL_REQUIRED_IF,
        mutually_exclusive=POOL_MUTUALLY_EXCLUSIVE,
        required_together=POOL_REQUIRED_TOGETHER,
        supports_check_mode=True,
    )
    try:
        result = read_pool(build_store(module.params), module.params["name"])
    except PoolError as err:
        module.fail_json(msg=str(err))
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
