#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: eventbus-ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: tcp_idle_check
short_description: Wait until a port gets no new TCP connections (after a depool)
version_added: 0.1.0
description:
  - Replaces the runbook's manual check after a depool,
    C(tcpdump dst eventbus.svc.eqiad.wmnet and port 8085 and "tcp[tcpflags] & tcp-syn != 0")
    piped to C(pv -l).
  - Counts new connections (inbound SYNs) to O(port) over O(window) seconds and repeats until
    the rate is at or under O(max_rate) in O(windows) consecutive samples, or fails after
    O(timeout) with the rate and the top source addresses.
  - O(destination) counts only connections to the service address, as the runbook's C(dst)
    does, so a load balancer's health checks to the host's own address do not count;
    O(ignore_sources) leaves out given sources.
  - With O(wait_drained), then also waits until no connection to the port is established.
  - Needs root (C(become=true)) on the host it runs on.
author:
  - eventbus-ops maintainers (@eventplatform)
extends_documentation_fragment:
  - eventplatform.eventbus.attributes.READ_ONLY
attributes:
  check_mode:
    support: full
    details:
      - It watches the traffic in check mode too. The C(nftables) method adds a table that
        counts SYNs and deletes it before it returns (also on failure), so nothing it adds
        stays; the C(tcpdump) method changes nothing.
options:
  port:
    description:
      - TCP port to watch.
    type: int
    default: 8085
  destination:
    description:
      - Count only connections to this address or name (all its addresses).
    type: str
  ignore_sources:
    description:
      - Source addresses or networks (CIDR) whose connections do not count, such as a load
        balancer's health checker.
    type: list
    elements: str
    default: []
  window:
    description:
      - Seconds each sample lasts.
    type: float
    default: 5.0
  windows:
    description:
      - Consecutive samples that must be at or under O(max_rate) - one quiet window can be
        luck when traffic is sparse.
    type: int
    default: 1
  max_rate:
    description:
      - Highest rate of new connections per second that counts as idle.
    type: float
    default: 0.0
  timeout:
    description:
      - Seconds to keep sampling (and, with O(wait_drained), waiting) before failing.
    type: float
    default: 120.0
  wait_drained:
    description:
      - Once idle, also wait until no connection to O(port) is established (within the same
        O(destination) and O(ignore_sources) filters).
    type: bool
    default: false
  method:
    description:
      - V(tcpdump) captures packets, as the runbook does. V(nftables) counts in the kernel with
        a temporary nftables table that only counts (it filters nothing) and is removed after
        each sample. V(auto) uses tcpdump when it is installed, nftables otherwise.
    type: str
    choices: [auto, tcpdump, nftables]
    default: auto
  interface:
    description:
      - Interface tcpdump listens on.
    type: str
    default: any
requirements:
  - root on the host
  - tcpdump or nftables (C(nft))
seealso:
  - module: eventplatform.eventbus.pool_member
"""

EXAMPLES = r"""
- name: Wait until the depooled host gets no new connections to the service address
  eventplatform.eventbus.tcp_idle_check:
    port: 8085
    destination: eventbus.svc.eqiad.wmnet
    window: 5
    timeout: 120
  become: true

- name: Same, without a capture tool, ignoring the load balancer's health checks
  eventplatform.eventbus.tcp_idle_check:
    port: 8085
    method: nftables
    ignore_sources: [10.64.0.10/32]
    wait_drained: true
  become: true
"""

RETURN = r"""
idle:
  description: Whether the last sample was at or under O(max_rate).
  returned: success
  type: bool
  sample: true
rate:
  description: New connections per second in the last sample.
  returned: always
  type: float
  sample: 0.0
count:
  description: New connections counted in the last sample.
  returned: always
  type: int
  sample: 0
samples:
  description: Every sample taken, oldest first.
  returned: always
  type: list
  elements: dict
  sample: [{"count": 42, "rate": 8.4}, {"count": 0, "rate": 0.0}]
top_sources:
  description: Sources with the most new connections in the last sample.
  returned: always
  type: list
  elements: dict
  sample: [{"address": "10.64.0.10", "count": 40}]
established:
  description: Established connections (remote C(address:port)) left when the task ended.
  returned: when O(wait_drained=true)
  type: list
  elements: str
  sample: []
method:
  description: How connections were counted.
  returned: always
  type: str
  sample: tcpdump
elapsed:
  description: Seconds the check took.
  returned: always
  type: float
  sample: 10.2
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.eventplatform.eventbus.plugins.module_utils._tcp_idle import (
    IdleCheckError,
    run,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            port=dict(type="int", default=8085),
            destination=dict(type="str"),
            ignore_sources=dict(type="list", elements="str", default=[]),
            window=dict(type="float", default=5.0),
            windows=dict(type="int", default=1),
            max_rate=dict(type="float", default=0.0),
            timeout=dict(type="float", default=120.0),
            wait_drained=dict(type="bool", default=False),
            method=dict(type="str", choices=["auto", "tcpdump", "nftables"], default="auto"),
            interface=dict(type="str", default="any"),
        ),
        supports_check_mode=True,
    )
    try:
        result = run(module.params, module.get_bin_path)
    except IdleCheckError as err:
        module.fail_json(msg=str(err), **err.result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
