#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: eventbus-ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: kafka_leader_election
short_description: Move Kafka partition leadership back to the preferred replicas
version_added: 0.1.0
description:
  - Replaces the runbook's C(kafka preferred-replica-election), run after a broker is back
    from a restart or reboot so that it leads its share of partitions again.
  - A preferred election moves each selected partition whose leader is not its preferred
    (first) replica, if that replica is in sync. Partitions whose preferred replica is not in
    sync are reported in RV(blocked) and left alone.
  - An unclean election gives a leader to partitions that have none, from replicas that are
    not in sync; acknowledged messages can be lost. Use it only to recover from an outage.
  - Waits until the cluster metadata shows the new leaders, and reports only partitions
    whose leader really moved; C(changed) is true only then.
author:
  - eventbus-ops maintainers (@eventplatform)
extends_documentation_fragment:
  - eventplatform.eventbus.kafka
  - eventplatform.eventbus.attributes.CHANGES_STATE
attributes:
  diff_mode:
    support: none
    details: The moves are returned in RV(moved) instead.
options:
  election_type:
    description:
      - V(preferred) moves leadership to preferred replicas; V(unclean) elects leaders for
        offline partitions from out-of-sync replicas.
    type: str
    choices: [preferred, unclean]
    default: preferred
  topics:
    description:
      - Elect for every partition of these topics. With neither O(topics) nor
        O(partitions), every partition of the cluster is considered.
    type: list
    elements: str
  partitions:
    description:
      - Elect for these partitions only.
    type: list
    elements: dict
    suboptions:
      topic:
        description: Topic name.
        type: str
        required: true
      partition:
        description: Partition number.
        type: int
        required: true
  wait_timeout:
    description:
      - Seconds to wait for the new leaders to show in the cluster metadata.
    type: float
    default: 30.0
seealso:
  - module: eventplatform.eventbus.kafka_topic_describe
"""

EXAMPLES = r"""
- name: Give the rebooted broker its preferred leaderships back
  eventplatform.eventbus.kafka_leader_election:
    bootstrap_servers: [kafka1001.eqiad.wmnet:9092]
  register: election

- name: Only the event topics
  eventplatform.eventbus.kafka_leader_election:
    bootstrap_servers: [kafka1001.eqiad.wmnet:9092]
    topics: [eqiad.test.event, eqiad.mediawiki.page_edit]

- name: Show what would move, without moving anything
  eventplatform.eventbus.kafka_leader_election:
    bootstrap_servers: [kafka1001.eqiad.wmnet:9092]
  check_mode: true
"""

RETURN = r"""
election_type:
  description: The election that ran.
  returned: always
  type: str
  sample: preferred
moved:
  description: Partitions whose leader moved (in check mode - would move).
  returned: always
  type: list
  elements: dict
  sample:
    - partition: eqiad.test.event-0
      leader_before: 1002
      leader_after: 1001
blocked:
  description: Partitions not led by their preferred replica that a preferred election
    cannot move, with the reason.
  returned: always
  type: list
  elements: dict
  sample:
    - partition: eqiad.test.event-0
      reason: preferred leader 1001 is not in the ISR [1002]
failed_partitions:
  description: Partitions the election was asked to move that did not move, with the reason;
    the task fails when this is not empty.
  returned: always
  type: list
  elements: dict
  sample: []
"""

from ansible_collections.eventplatform.eventbus.plugins.module_utils._kafka_admin import (
    KafkaModuleError,
    admin_session,
    kafka_module,
)
from ansible_collections.eventplatform.eventbus.plugins.module_utils._kafka_election import (
    run_leader_election,
)


def argument_spec():
    return dict(
        election_type=dict(type="str", choices=["preferred", "unclean"], default="preferred"),
        topics=dict(type="list", elements="str"),
        partitions=dict(
            type="list",
            elements="dict",
            options=dict(
                topic=dict(type="str", required=True), partition=dict(type="int", required=True)
            ),
        ),
        wait_timeout=dict(type="float", default=30.0),
    )


def main():
    module = kafka_module(argument_spec())
    params = module.params
    try:
        with admin_session(params) as admin:
            result = run_leader_election(
                admin,
                params["election_type"],
                topic_names=params["topics"],
                partitions=params["partitions"],
                check_mode=module.check_mode,
                wait_timeout=params["wait_timeout"],
            )
    except KafkaModuleError as err:
        module.fail_json(msg=str(err))
    if result["failed_partitions"]:
        module.fail_json(
            msg="%d partition(s) did not get a new leader: %s. Check that their preferred replicas "
            "are in sync (kafka_topic_describe) and run the election again"
            % (
                len(result["failed_partitions"]),
                ", ".join(f["partition"] for f in result["failed_partitions"]),
            ),
            **result,
        )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
