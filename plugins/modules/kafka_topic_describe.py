#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: eventbus-ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: kafka_topic_describe
short_description: Describe Kafka topics, partition health and whether a broker can be stopped
version_added: 0.1.0
description:
  - Replaces the runbook's C(kafka topic --describe). For each topic it returns the partitions
    with their leader, replicas, in-sync replicas (ISR), preferred leader and offline replicas,
    with the topic's replication factor and C(min.insync.replicas).
  - Summarises the cluster - under-replicated partitions, partitions under
    C(min.insync.replicas), offline partitions, leader count per broker, partitions not led by
    their preferred leader, the live brokers and the KRaft quorum - so a playbook can gate on
    one field such as RV(summary.healthy).
  - With O(broker_id) it also answers "what if this broker stops" - the partitions it leads
    and replicates and RV(broker.safe_to_stop), false with reasons when stopping it would leave
    a partition offline or below C(min.insync.replicas), or the KRaft quorum without a majority.
  - Reads only; never changes anything.
  - With O(healthy_samples) it waits until the cluster stays healthy, as a rolling operation
    does before its next node.
author:
  - eventbus-ops maintainers (@eventplatform)
extends_documentation_fragment:
  - eventplatform.eventbus.kafka
  - eventplatform.eventbus.attributes.READ_ONLY
options:
  topics:
    description:
      - Topics to describe. All topics when omitted.
      - Naming a topic that does not exist fails the task.
    type: list
    elements: str
  topic_pattern:
    description:
      - Regular expression a topic name must match in full to be described.
    type: str
  include_internal:
    description:
      - Whether to include Kafka's internal topics such as C(__consumer_offsets) when
        O(topics) is not given.
    type: bool
    default: false
  broker_id:
    description:
      - Broker whose stop to assess; adds RV(broker) to the result.
    type: int
  healthy_samples:
    description:
      - Wait until RV(summary.healthy) holds in this many consecutive samples, taken
        O(sample_interval) seconds apart (and, with O(broker_id), the broker is registered),
        and return the last one; V(0) describes once, without waiting.
      - A rolling operation's grace before its next node, as Yelp's C(kafka-rolling-restart)
        does with 12 checks 10 seconds apart (C(--check-count), C(--check-interval)).
    type: int
    default: 0
  sample_interval:
    description:
      - Seconds between two samples of O(healthy_samples).
    type: float
    default: 10.0
  wait_timeout:
    description:
      - Seconds O(healthy_samples) may wait before the task fails, saying what the last
        sample found (Yelp's C(--unhealthy-time-limit) is 600).
    type: float
    default: 600.0
seealso:
  - module: eventplatform.eventbus.kafka_leader_election
notes:
  - The check Kafka operators make by hand before a reboot ("is every ISR complete, is the
    host among the leaders") is RV(summary.healthy) and RV(broker.safe_to_stop).
"""

EXAMPLES = r"""
- name: Describe every topic (the runbook's "kafka topic --describe")
  eventplatform.eventbus.kafka_topic_describe:
    bootstrap_servers:
      - kafka1001.eqiad.wmnet:9092
      - kafka1002.eqiad.wmnet:9092
  register: kafka

- name: Refuse to continue unless every partition is fully replicated
  ansible.builtin.assert:
    that: kafka.summary.healthy
    fail_msg: "under-replicated: {{ kafka.summary.under_replicated_partitions }}"

- name: Wait until the cluster stays healthy for 2 minutes (12 samples, 10 s apart)
  eventplatform.eventbus.kafka_topic_describe:
    bootstrap_servers: [kafka1001.eqiad.wmnet:9092]
    include_internal: true
    broker_id: 1001
    healthy_samples: 12
    sample_interval: 10

- name: Can kafka1001 (broker 1001) be stopped right now?
  eventplatform.eventbus.kafka_topic_describe:
    bootstrap_servers: [kafka1001.eqiad.wmnet:9092]
    topic_pattern: 'eqiad\..*'
    broker_id: 1001
  register: impact
  failed_when: not impact.broker.safe_to_stop
"""

RETURN = r"""
topics:
  description: Described topics by name.
  returned: success
  type: dict
  sample:
    eqiad.test.event:
      partition_count: 1
      replication_factor: 2
      min_insync_replicas: 1
      internal: false
      partitions:
        - topic: eqiad.test.event
          partition: 0
          leader: 1002
          preferred_leader: 1002
          replicas: [1002, 1001]
          isr: [1001, 1002]
          offline_replicas: []
          under_replicated: false
          under_min_isr: false
          offline: false
          leader_is_preferred: true
summary:
  description: Cluster-wide findings over the described topics.
  returned: success
  type: dict
  contains:
    topic_count:
      description: Number of described topics.
      type: int
      sample: 8
    partition_count:
      description: Number of described partitions.
      type: int
      sample: 9
    brokers:
      description: Ids of the live (registered, unfenced) brokers.
      type: list
      elements: int
      sample: [1001, 1002]
    controller_id:
      description: Broker id the cluster reports as controller for admin requests.
      type: int
      sample: 1001
    under_replicated_partitions:
      description: Partitions (C(topic-N)) whose ISR is smaller than their replica set.
      type: list
      elements: str
      sample: []
    under_min_isr_partitions:
      description: Partitions whose ISR is smaller than the topic's C(min.insync.replicas).
      type: list
      elements: str
      sample: []
    offline_partitions:
      description: Partitions without a leader.
      type: list
      elements: str
      sample: []
    not_preferred_leader_partitions:
      description: Partitions led by a broker other than their preferred (first) replica.
      type: list
      elements: str
      sample: [eqiad.test.event-0]
    leader_count:
      description: Number of described partitions each live broker leads, by broker id.
      type: dict
      sample: {"1001": 5, "1002": 4}
    quorum:
      description: The KRaft metadata quorum - leader, voters, voters in sync, observers, and
        whether the voters in sync are a majority.
      type: dict
      sample:
        leader_id: 1001
        leader_epoch: 3
        high_watermark: 1200
        voters: [1001, 1002, 1003]
        voters_in_sync: [1001, 1002, 1003]
        observers: []
        has_majority: true
    healthy:
      description: True when no described partition is under-replicated, under min ISR or
        offline and the quorum has a majority.
      type: bool
      sample: true
broker:
  description: What stopping O(broker_id) would do.
  returned: when O(broker_id) is set
  type: dict
  contains:
    id:
      description: The broker asked about.
      type: int
      sample: 1001
    registered:
      description: Whether the broker is live in the cluster now.
      type: bool
      sample: true
    is_quorum_voter:
      description: Whether the broker is a KRaft controller voter.
      type: bool
      sample: true
    leads:
      description: Partitions it leads.
      type: list
      elements: str
      sample: [eqiad.mediawiki.page_delete-0]
    replicates:
      description: Partitions it holds a replica of.
      type: list
      elements: str
      sample: [eqiad.mediawiki.page_delete-0, eqiad.test.event-0]
    safe_to_stop:
      description: Judged on every topic of the cluster, internal ones included, as Strimzi's
        canRoll does - false when stopping it would leave a partition offline or under
        C(min.insync.replicas), when it is an out-of-sync replica of a partition already
        under C(min.insync.replicas), when a topic's metadata or C(min.insync.replicas) could
        not be read (fail closed), or when the KRaft quorum would lose its majority.
      type: bool
      sample: true
    reasons:
      description: Why it is not safe to stop; empty when it is.
      type: list
      elements: str
      sample: []
    warnings:
      description: Topics whose replication factor is at or below their
        C(min.insync.replicas) - they cannot lose a replica and stay writable, and are not
        allowed to block a roll forever.
      type: list
      elements: str
      sample: []
"""

from ansible_collections.eventplatform.eventbus.plugins.module_utils._kafka_admin import (
    KafkaModuleError,
    admin_session,
    fetch_cluster_metadata,
    kafka_module,
)
from ansible_collections.eventplatform.eventbus.plugins.module_utils._kafka_describe import (
    describe_cluster,
    wait_until_steady,
)


def argument_spec():
    return dict(
        topics=dict(type="list", elements="str"),
        topic_pattern=dict(type="str"),
        include_internal=dict(type="bool", default=False),
        broker_id=dict(type="int"),
        healthy_samples=dict(type="int", default=0),
        sample_interval=dict(type="float", default=10.0),
        wait_timeout=dict(type="float", default=600.0),
    )


def main():
    module = kafka_module(argument_spec())
    params = module.params
    if params["healthy_samples"] < 0 or params["sample_interval"] < 0:
        module.fail_json(msg="healthy_samples and sample_interval cannot be negative")

    def describe(admin):
        # a broker's safety is judged on every topic of the cluster
        wanted = None if params["broker_id"] is not None else params["topics"]
        return describe_cluster(
            fetch_cluster_metadata(admin, wanted),
            topics=params["topics"],
            topic_pattern=params["topic_pattern"],
            include_internal=params["include_internal"],
            broker_id=params["broker_id"],
        )

    try:
        with admin_session(params) as admin:
            if params["healthy_samples"]:
                result = wait_until_steady(
                    lambda: describe(admin),
                    params["healthy_samples"],
                    params["sample_interval"],
                    params["wait_timeout"],
                )
            else:
                result = describe(admin)
    except KafkaModuleError as err:
        module.fail_json(msg=str(err))
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
