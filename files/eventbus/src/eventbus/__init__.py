"""EventBus: validated HTTP intake of JSON events into Kafka.

Modules, each one concern: ``config`` (YAML, validated on load), ``schemas`` (schema
repositories and compiled validators), ``streams`` (which topics are accepted, with which
schema), ``failed_events`` (the EventError log), ``producer`` (Kafka, acknowledged),
``intake`` (one request's events from bytes to outcomes), ``http`` (routes and handlers),
``server`` (processes and signals), ``replay`` (re-producing failed events).
"""

__version__ = "0.2.0"
