#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: eventbus-ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: pool_watch
short_description: Watch a pool while one member is out; put it back if the pool needs it
version_added: 0.1.0
description:
  - A run checks the pool once before it takes a host out; a reboot keeps it out for minutes. This
    module watches the pool meanwhile - run it with C(async) and C(poll=0) on the pool manager
    right after the depool, and read it with M(ansible.builtin.async_status).
  - Every O(interval) seconds it counts the other members that serve - pooled in the store
    (for HAProxy, its own health check up) and answering their O(health_urls) with 200.
  - When fewer serve than O(threshold) of the pool's intended members (those not inactive, at
    least one, as M(eventplatform.eventbus.pool_member) counts them), the pool needs the member
    back - it repools O(name) as soon as O(own_health_url) answers 200 (unless O(repool=false))
    and returns with RV(breached). The run reads that and stops.
  - It also returns when O(stop_file) exists (the run is done with the member), when O(name) is
    serving again (the run repooled it), when the others serve again before O(name) could be
    repooled, after O(duration) seconds, and when the pool cannot be read six times in a row.
author:
  - eventbus-ops maintainers (@eventplatform)
extends_documentation_fragment:
  - eventplatform.eventbus.pool
  - eventplatform.eventbus.attributes.CHANGES_STATE
attributes:
  check_mode:
    support: full
    details: In check mode it reads the pool once and repools nothing.
  diff_mode:
    support: none
    details: A repool it made is returned in RV(repooled), with what it saw in RV(breach).
options:
  name:
    description: The member out for maintenance.
    type: str
    required: true
  own_health_url:
    description: The health URL of O(name); it is repooled only while it answers 200.
    type: str
    required: true
  health_urls:
    description:
      - The health URL of each other member, by name. A member missing here counts as serving
        when the store says it is.
    type: dict
    default: {}
  threshold:
    description: The share of the pool's intended members that must serve (0 to 1).
    type: float
    default: 0.5
  interval:
    description: Seconds between two readings of the pool.
    type: float
    default: 5.0
  duration:
    description: Seconds after which the watch ends by itself (set it above the longest time out).
    type: float
    default: 3600.0
  stop_file:
    description:
      - A path on the host that runs the module; the watch ends within half a second once it
        exists, and removes it.
    type: path
  repool:
    description: Repool O(name) when the pool needs it; V(false) only reports.
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: Watch the pool while the host is out
  eventplatform.eventbus.pool_watch:
    backend: conftool
    etcd_url: http://127.0.0.1:2379
    datacenter: eqiad
    cluster: eventbus
    service: eventbus
    name: kafka1001.eqiad.wmnet
    own_health_url: http://kafka1001.eqiad.wmnet:8085/healthz
    health_urls:
      kafka1002.eqiad.wmnet: http://kafka1002.eqiad.wmnet:8085/healthz
    stop_file: /run/eventbus-ops/pool-watch-kafka1001
  delegate_to: conf1001.eqiad.wmnet
  async: 3700
  poll: 0
  register: watcher

- name: Later - what it saw
  ansible.builtin.async_status:
    jid: "{{ watcher.ansible_job_id }}"
  delegate_to: conf1001.eqiad.wmnet
  register: watched
"""

RETURN = r"""
breached:
  description: Whether fewer members than required served at some reading.
  returned: success
  type: bool
  sample: true
breach:
  description: The first reading below the threshold - who served, who did not, how many were
    needed, when (epoch seconds).
  returned: success
  type: dict
  sample: {"serving": [], "not_serving": ["kafka1002.eqiad.wmnet"], "needed": 1, "at": 1765090000.5}
repooled:
  description: Whether the watch put O(name) back in the pool.
  returned: success
  type: bool
  sample: true
ended:
  description: Why the watch returned - V(stopped), V(pooled) (the run put it back), V(repooled),
    V(recovered) (the others came back first), V(deadline), V(unreadable), V(repool failed), or
    V(checked) in check mode.
  returned: success
  type: str
  sample: repooled
last:
  description: The last reading (or the error of the last failed one).
  returned: success
  type: dict
  sample: {"serving": ["kafka1002.eqiad.wmnet"], "not_serving": [], "needed": 1}
samples:
  description: How many readings were taken.
  returned: success
  type: int
  sample: 24
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.eventplatform.eventbus.plugins.module_utils._pool import PoolError
from ansible_collections.eventplatform.eventbus.plugins.module_utils._pool_args import (
    POOL_MUTUALLY_EXCLUSIVE,
    POOL_REQUIRED_IF,
    POOL_REQUIRED_TOGETHER,
    build_store,
    pool_connection_argspec,
)
from ansible_collections.eventplatform.eventbus.plugins.module_utils._pool_watch import (
    watch_pool,
)


def argument_spec():
    spec = pool_connection_argspec()
    spec.update(
        name=dict(type="str", required=True),
        own_health_url=dict(type="str", required=True),
        health_urls=dict(type="dict", default={}),
        threshold=dict(type="float", default=0.5),
        interval=dict(type="float", default=5.0),
        duration=dict(type="float", default=3600.0),
        stop_file=dict(type="path"),
        repool=dict(type="bool", default=True),
    )
    return spec


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        required_if=POOL_REQUIRED_IF,
        mutually_exclusive=POOL_MUTUALLY_EXCLUSIVE,
        required_together=POOL_REQUIRED_TOGETHER,
        supports_check_mode=True,
    )
    params = module.params
    if not 0 <= params["threshold"] <= 1:
        module.fail_json(
            msg="threshold is a share of the pool, from 0 to 1; got %s" % params["threshold"]
        )
    if params["interval"] <= 0 or params["duration"] < 0:
        module.fail_json(msg="interval must be above 0 and duration 0 or more")
    try:
        result = watch_pool(
            build_store(params),
            params["name"],
            dict((k, str(v)) for k, v in params["health_urls"].items()),
            params["own_health_url"],
            params["threshold"],
            interval=params["interval"],
            duration=0.0 if module.check_mode else params["duration"],
            stop_file=params["stop_file"],
            repool=params["repool"] and not module.check_mode,
        )
    except PoolError as err:
        module.fail_json(msg=str(err))
    if module.check_mode:
        result["ended"] = "checked"
    if result["ended"] in ("unreadable", "repool failed"):
        module.fail_json(
            msg="watching %s: %s (%s); check the pool by hand"
            % (params["name"], result["ended"], result["last"].get("error")),
            **result,
        )
    module.exit_json(changed=result["repooled"], **result)


if __name__ == "__main__":
    main()
