#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: eventbus-ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: kafka_metadata_version
short_description: Read, or finalize after an upgrade, a KRaft cluster's metadata.version
version_added: 0.1.0
description:
  - A Kafka upgrade rolls every node onto the new release first; the cluster's finalized
    C(metadata.version) stays at the old release's level, so that any node can still go back.
    Once every node runs the new release and the cluster is healthy, finalizing raises it,
    as Strimzi's C(metadataVersion) and C(kafka-features upgrade) do. After that the old
    release cannot start on this cluster.
  - Without O(level) and O(highest) the module only reads - every broker's supported range,
    the finalized level - and changes nothing.
  - Refuses to lower the metadata version, and to raise it to a level some broker does not
    support (naming the brokers still on an older release). The controllers check that every
    KRaft voter supports the level too.
  - In check mode the controller validates the change without making it.
  - Waits until every broker reports the new level.
author:
  - eventbus-ops maintainers (@eventplatform)
extends_documentation_fragment:
  - eventplatform.eventbus.kafka
  - eventplatform.eventbus.attributes.CHANGES_STATE
attributes:
  diff_mode:
    support: none
    details: The levels before and after are returned in RV(before) and RV(after).
options:
  level:
    description:
      - The C(metadata.version) level to finalize, a number (C(kafka-features
        version-mapping) names them; for example 27 is Kafka 4.1's, 29 is Kafka 4.2's).
    type: int
  highest:
    description:
      - Finalize the highest level every broker supports (the new release's, once every
        broker runs it).
    type: bool
    default: false
  wait_timeout:
    description:
      - Seconds to wait for every broker to report the new level.
    type: float
    default: 60.0
notes:
  - Finalize with the eventplatform.eventbus.kafka_finalize_upgrade playbook, which checks
    that every node of the cluster runs the new release and that the cluster is healthy
    first, under the cluster's run lock.
"""

EXAMPLES = r"""
- name: Read the finalized metadata.version and what each broker supports
  eventplatform.eventbus.kafka_metadata_version:
    bootstrap_servers: ["kafka1001.eqiad.wmnet:9092"]
  register: metadata_version

- name: Finalize the upgrade once every node runs the new release
  eventplatform.eventbus.kafka_metadata_version:
    bootstrap_servers: ["kafka1001.eqiad.wmnet:9092"]
    highest: true
"""

RETURN = r"""
level:
  description: The level finalized (or that check mode validated); absent when only reading.
  returned: when O(level) or O(highest) is set
  type: int
  sample: 29
before:
  description: What the brokers reported before any change.
  returned: success
  type: dict
  contains:
    brokers:
      description: The registered brokers' ids.
      type: list
      elements: int
    supported:
      description: Each broker's supported C(metadata.version) range, C([min, max]).
      type: dict
    finalized:
      description: The finalized level (the highest any broker reports).
      type: int
    finalized_by:
      description: The finalized level each broker reports.
      type: dict
    highest:
      description: The highest level every broker supports.
      type: int
  sample:
    brokers: [1, 2]
    supported: {"1": [7, 29], "2": [7, 27]}
    finalized: 27
    finalized_by: {"1": 27, "2": 27}
    highest: 27
after:
  description: The same, read after the change (in check mode, the state before).
  returned: success
  type: dict
  sample:
    brokers: [1, 2]
    supported: {"1": [7, 29], "2": [7, 29]}
    finalized: 29
    finalized_by: {"1": 29, "2": 29}
    highest: 29
"""

from ansible_collections.eventplatform.eventbus.plugins.module_utils._kafka_admin import (
    KafkaModuleError,
    admin_session,
    kafka_module,
)
from ansible_collections.eventplatform.eventbus.plugins.module_utils._kafka_features import (
    finalize_metadata_version,
    read_metadata_version,
)


def argument_spec():
    return dict(
        level=dict(type="int"),
        highest=dict(type="bool", default=False),
        wait_timeout=dict(type="float", default=60.0),
    )


def main():
    module = kafka_module(argument_spec())
    params = module.params
    if params["level"] is not None and params["highest"]:
        module.fail_json(msg="give level or highest=true, not both")
    if params["level"] is not None and params["level"] < 1:
        module.fail_json(msg="level must be 1 or more (kafka-features version-mapping lists them)")
    try:
        with admin_session(params) as admin:
            if params["level"] is None and not params["highest"]:
                state = read_metadata_version(admin)
                module.exit_json(changed=False, before=state, after=state)
            result = finalize_metadata_version(
                admin, params["level"], module.check_mode, params["wait_timeout"]
            )
    except KafkaModuleError as err:
        module.fail_json(msg=str(err))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
