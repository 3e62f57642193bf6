# -*- coding: utf-8 -*-
# Copyright: eventbus-ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The kafka_topic_describe result, from fetched metadata (see _kafka_admin)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.eventplatform.eventbus.plugins.module_utils._kafka_admin import (
    KafkaModuleError,
)
from ansible_collections.eventplatform.eventbus.plugins.module_utils._kafka_health import (
    broker_impact,
    describe_topics,
    quorum_summary,
    select_topics,
    summarize,
    unreadable_topics,
)


def describe_cluster(
    metadata, topics=None, topic_pattern=None, include_internal=False, broker_id=None
):
    if topic_pattern:
        try:
            re.compile(topic_pattern)
        except re.error as err:
            raise KafkaModuleError(
                "topic_pattern %r is not a valid regular expression: %s" % (topic_pattern, err)
            ) from err
    selected, missing = select_topics(metadata["topics"], topics, topic_pattern, include_internal)
    if missing:
        raise KafkaModuleError(
            "topic(s) not found in the cluster: %s; check the names, or describe by topic_pattern"
            % ", ".join(missing)
        )
    described = describe_topics(selected, metadata["min_isr"])
    quorum = quorum_summary(metadata.get("quorum"))
    result = dict(
        topics=described,
        summary=summarize(described, metadata["brokers"], quorum, metadata.get("controller_id")),
    )
    if broker_id is not None:
        # safety is the whole cluster's, whatever the description selected
        everything, _missing = select_topics(metadata["topics"], include_internal=True)
        impact = broker_impact(
            describe_topics(everything, metadata["min_isr"]),
            broker_id,
            metadata["brokers"],
            quorum,
            unreadable_topics(metadata["topics"], metadata["min_isr"]),
        )
        if not impact["registered"] and not impact["replicates"] and not impact["is_quorum_voter"]:
            raise KafkaModuleError(
                "broker %d is not live in the cluster and holds no replica of the described "
                "topics; live brokers are %s" % (broker_id, sorted(metadata["brokers"]))
            )
        result["broker"] = impact
    return result


def _steady_sample(result):
    """Whether one sample counts toward a steady cluster, and what is wrong when not."""
    summary = result["summary"]
    wrong = []
    for field, label in (
        ("under_replicated_partitions", "under-replicated"),
        ("under_min_isr_partitions", "under min ISR"),
        ("offline_partitions", "offline"),
    ):
        if summary.get(field):
            wrong.append("%s %s" % (label, ", ".join(summary[field][:10])))
    quorum = summary.get("quorum")
    if quorum and not quorum.get("has_majority"):
        wrong.append("the KRaft quorum has no majority")
    broker = result.get("broker")
    if broker is not None and not broker.get("registered"):
        wrong.append("broker %s is not registered" % broker.get("id"))
    if not summary.get("healthy") and not wrong:
        wrong.append("not healthy")
    return not wrong, wrong


def wait_until_steady(sample, count, interval, timeout, clock=None, sleep=None):
    """Describe (``sample()``) until the cluster is healthy in ``count`` consecutive samples,
    ``interval`` seconds apart; KafkaModuleError after ``timeout`` seconds, naming what the
    last sample found. The last sample's result, with ``samples`` (how many were taken) and
    ``waited`` (seconds)."""
    import time

    clock = clock or time.monotonic
    sleep = sleep or time.sleep
    started = clock()
    streak = taken = 0
    while True:
        result = sample()
        taken += 1
        steady, wrong = _steady_sample(result)
        streak = streak + 1 if steady else 0
        waited = clock() - started
        if streak >= count:
            result.update(samples=taken, waited=round(waited, 1))
            return result
        if waited + interval > timeout:
            raise KafkaModuleError(
                "the cluster was not healthy in %d consecutive samples %ss apart within %ss "
                "(%d taken, the last %d healthy in a row); the last found: %s"
                % (count, interval, timeout, taken, streak, "; ".join(wrong) or "healthy")
            )
        sleep(interval)
