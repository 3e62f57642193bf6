"""The OpenAPI document served at /openapi.json; it describes what the handlers do."""

from __future__ import annotations

from typing import Any

from eventbus import __version__

_FAILURES = {
    "type": "object",
    "required": ["accepted", "total", "failures"],
    "properties": {
        "accepted": {"type": "integer", "minimum": 0},
        "total": {"type": "integer", "minimum": 0},
        "failures": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["status", "index", "id", "message"],
                "properties": {
                    "status": {"type": "string", "enum": ["invalid", "error"]},
                    "index": {"type": "integer", "minimum": 0},
                    "id": {"type": "string", "nullable": True},
                    "message": {"type": "string"},
                },
            },
        },
    },
}
_PROBLEM = {
    "type": "object",
    "required": ["status", "message"],
    "properties": {"status": {"type": "integer"}, "message": {"type": "string"}},
}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def document() -> dict[str, Any]:
    event = {
        "type": "object",
        "description": "An event: names its topic in meta.topic (or meta.stream) "
        "and its schema in $schema.",
        "properties": {
            "$schema": {"type": "string"},
            "meta": {
                "type": "object",
                "properties": {"topic": {"type": "string"}, "id": {"type": "string"}},
            },
        },
    }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "EventBus",
            "version": __version__,
            "description": "Validated HTTP intake of events into Kafka.",
        },
        "paths": {
            "/v1/events": {
                "post": {
                    "summary": "Validate events and produce them to Kafka",
                    "parameters": [
                        {
                            "name": "hasty",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "boolean"},
                            "description": "Answer 202 once validated, before Kafka "
                            "acknowledges (weaker: a later produce failure only reaches the "
                            "failed-events log).",
                        }
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"oneOf": [event, {"type": "array", "items": event}]}
                            }
                        },
                    },
                    "responses": {
                        "201": {"description": "All events acknowledged by Kafka"},
                        "202": {"description": "hasty=true: all events valid, produce pending"},
                        "207": _json(_FAILURES, "Some events accepted; the others are listed"),
                        "400": _json(
                            {"oneOf": [_PROBLEM, _FAILURES]},
                            "No event accepted: all invalid, the body is not JSON, or its "
                            "Content-Encoding does not decode",
                        ),
                        "408": _json(_PROBLEM, "The body did not arrive within body_timeout"),
                        "413": _json(
                            {"oneOf": [_PROBLEM, _FAILURES]},
                            "The body, the number of events or every event is over the limit",
                        ),
                        "415": _json(_PROBLEM, "The body is not application/json"),
                        "503": _json(
                            {"oneOf": [_PROBLEM, _FAILURES]},
                            "Valid events could not be produced: Kafka is unreachable or slow; "
                            "or (a problem, with Retry-After) the worker is handling "
                            "max_in_flight_body_bytes of bodies already, and the body was not read",
                        ),
                    },
                }
            },
            "/healthz": {
                "get": {
                    "summary": "Health for the load balancer: 200 only when Kafka is reachable "
                    "and the failed-events log can be written",
                    "responses": {
                        "200": _json({"type": "object"}, "Kafka is reachable, the log writable"),
                        "503": _json(_PROBLEM, "Kafka is not reachable, or the log is not"),
                    },
                }
            },
            "/v1/_test/events": {
                "get": {
                    "summary": "Send the configured test event end to end (from the service's "
                    "host or test_event_allowed_from only)",
                    "responses": {
                        "201": {"description": "The test event was acknowledged by Kafka"},
                        "403": _json(_PROBLEM, "The client is not on the host nor allowed"),
                        "404": _json(_PROBLEM, "No test event is configured"),
                        "503": _json(_FAILURES, "Kafka did not acknowledge the test event"),
                        "400": _json(_FAILURES, "The configured test event is invalid"),
                    },
                }
            },
            "/v1/topics": {
                "get": {
                    "summary": "Accepted topics",
                    "responses": {"200": _json({"type": "array"}, "Stream rules")},
                }
            },
            "/v1/schemas": {
                "get": {
                    "summary": "Known schema URIs",
                    "responses": {
                        "200": _json({"type": "array", "items": {"type": "string"}}, "URIs")
                    },
                }
            },
            "/v1/schemas/{uri}": {
                "get": {
                    "summary": "One schema",
                    "parameters": [
                        {
                            "name": "uri",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        }
                    ],
                    "responses": {
                        "200": _json({"type": "object"}, "The schema"),
                        "404": _json(_PROBLEM, "No such schema"),
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "responses": {
                        "200": {
                            "description": "Metrics",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
        },
    }
