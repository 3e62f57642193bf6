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
