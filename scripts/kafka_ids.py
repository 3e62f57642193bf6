"""Run on a lab host with the eventbus release's Python (it has kafka-python): print, as a
JSON list, the meta.id of every event in a topic (all partitions, from the beginning). With
Kafka on TLS it logs in as replay does (/etc/eventbus/replay-kafka.yaml, the eventbus role's).

    kafka_ids.py BROKER TOPIC
"""

import json
import os
import sys

import yaml
from kafka import KafkaConsumer, TopicPartition

LOGIN = "/etc/eventbus/replay-kafka.yaml"
security = {}
if os.path.exists(LOGIN):
    with open(LOGIN, encoding="utf-8") as login:
        security = yaml.safe_load(login) or {}
consumer = KafkaConsumer(
    bootstrap_servers=sys.argv[1],
    consumer_timeout_ms=5000,
    auto_offset_reset="earliest",
    **security,
)
partitions = consumer.partitions_for_topic(sys.argv[2]) or set()
consumer.assign([TopicPartition(sys.argv[2], partition) for partition in sorted(partitions)])
print(json.dumps([json.loads(record.value)["meta"]["id"] for record in consumer]))
