"""HTTP layer: the aiohttp application, its routes and thin handlers.

Handlers translate between HTTP and ``Intake``; the error middleware turns anything
unexpected into a 500 without internals (the traceback goes to the service log only).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

import orjson
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from eventbus import metrics, openapi
from eventbus.config import Config
from eventbus.failed_events import FailedEventsLog
from eventbus.intake import Intake
from eventbus.producer import EventProducer
from eventbus.schemas import SchemaNotFoundError, SchemaRepository

log = logging.getLogger("eventbus.http")
INTAKE = web.AppKey("intake", Intake)
PRODUCER = web.AppKey("producer", EventProducer)
CONFIG = web.AppKey("config", Config)


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def problem(status: int, message: str) -> web.Response:
    return json_response({"status": status, "message": message}, status)


class AccessLogger(AbstractAccessLogger):
    """``201 POST /v1/events (10.64.0.71) 1.87ms``, as the runbook's log example."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info(
            "%d %s %s (%s) %.2fms",
            response.status,
            request.method,
            request.path_qs,
            request.remote,
            time * 1000,
        )


@web.middleware
async def metrics_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    started = time.perf_counter()
    metrics.IN_FLIGHT.inc()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    finally:
        metrics.IN_FLIGHT.dec()
        route = (
            request.match_info.route.resource.canonical
            if request.match_info.route.resource
            else "unmatched"
        )
        metrics.REQUESTS.labels(request.method, route, str(status)).observe(
            time.perf_counter() - started
        )


@web.middleware
async def errors_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[CONFIG].max_body_bytes
        return problem(413, f"the body is larger than the limit of {limit} bytes")
    except web.HTTPException as err:
        if err.status >= 400 and err.content_type != "application/json":
            return problem(err.status, err.reason)
        raise
    except Exception:
        log.exception("unexpected error on %s %s", request.method, request.path)
        return problem(500, "internal error; it was logged")


async def post_events(request: web.Request) -> web.Response:
    if request.content_type != "application/json":
        return problem(415, "send events as application/json")
    body = await request.read()
    hasty = request.query.get("hasty", "").lower() in ("1", "true", "yes")
    result = await request.app[INTAKE].handle(body, hasty=hasty)
    if result.status != 201:
        log.info("%d out of %d events were accepted.", result.accepted, len(result.outcomes))
    if result.status in (201, 202):
        return web.Response(status=result.status)
    return json_response(result.body(), result.status)


async def healthz(request: web.Request) -> web.Response:
    if await request.app[PRODUCER].healthy():
        return json_response({"status": "ok"})
    return problem(503, "Kafka is not reachable")


async def test_event(request: web.Request) -> web.Response:
    """Send the configured test event end to end (the deploy gate): 201 once Kafka has it."""
    template = request.app[INTAKE].config.test_event
    if template is None:
        return problem(404, "no test_event is configured")
    event = orjson.loads(orjson.dumps(template))
    meta = event.setdefault("meta", {})
    meta["id"] = str(uuid.uuid4())
    meta["dt"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    result = await request.app[INTAKE].handle(orjson.dumps(event))
    if result.status == 201:
        return web.Response(status=201)
    return json_response(result.body(), result.status)


async def get_metrics(request: web.Request) -> web.Response:
    body, content_type = metrics.render()
    return web.Response(body=body, headers={"Content-Type": content_type})


async def get_openapi(request: web.Request) -> web.Response:
    return json_response(openapi.document())


async def list_topics(request: web.Request) -> web.Response:
    config = request.app[INTAKE].config
    rules = [
        {
            "topic": rule.topic,
            "pattern": rule.pattern.pattern if rule.pattern else None,
            "kafka_topic": f"{config.datacenter}.{rule.topic}" if rule.topic else None,
            "schema_title": rule.schema_title,
        }
        for rule in config.streams
    ]
    return json_response(rules)


async def list_schemas(request: web.Request) -> web.Response:
    return json_response(request.app[INTAKE].schemas.list_uris())


async def get_schema(request: web.Request) -> web.Response:
    try:
        schema = request.app[INTAKE].schemas.get("/" + request.match_info["uri"])
    except SchemaNotFoundError:
        return problem(404, "no such schema")
    return json_response(schema.document)


def create_app(config: Config, producer: EventProducer | None = None) -> web.Application:
    app = web.Application(
        client_max_size=config.max_body_bytes, middlewares=[metrics_middleware, errors_middleware]
    )
    producer = producer or EventProducer(config.kafka)
    schemas = SchemaRepository(config.schema_repositories)
    failed = FailedEventsLog(config.failed_events_log)
    app[CONFIG] = config
    app[PRODUCER] = producer
    app[INTAKE] = Intake(config, schemas, producer, failed)

    async def lifecycle(app: web.Application):  # type: ignore[no-untyped-def]
        yield
        intake = app[INTAKE]
        if intake.background:  # hasty requests still producing
            await asyncio.wait(intake.background, timeout=config.shutdown_timeout)
        await producer.close(timeout=config.shutdown_timeout)
        failed.close()

    app.cleanup_ctx.append(lifecycle)
    app.router.add_post("/v1/events", post_events)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/v1/_test/events", test_event)
    app.router.add_get("/v1/topics", list_topics)
    app.router.add_get("/v1/schemas", list_schemas)
    app.router.add_get("/v1/schemas/{uri:.+}", get_schema)
    app.router.add_get("/metrics", get_metrics)
    app.router.add_get("/openapi.json", get_openapi)
    return app
