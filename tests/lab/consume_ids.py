"""Run on a lab host (with the eventbus release's Python): print the meta.id of every event
in a topic's partition 0 as a JSON list. Usage: consume_ids.py BROKER TOPIC"""

import json
import sys

from kafka import KafkaConsumer, TopicPartition

consumer = KafkaConsumer(
    bootstrap_servers=sys.argv[1], consumer_timeout_ms=5000, auto_offset_reset="earliest"
)
consumer.assign([TopicPartition(sys.argv[2], 0)])
print(json.dumps([json.loads(record.value)["meta"]["id"] for record in consumer]))
