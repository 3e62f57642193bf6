"""HTTP layer: the aiohttp application, its routes and thin handlers.

The app factory (``create_app``) opens what the service needs in ``cleanup_ctx`` - the Kafka
producer with its topic catalog, the failed-events log, the intake - and closes it when the
app stops (hasty produces still running are finished or logged first); SIGHUP reloads the
configuration's schemas and stream rules through ``Intake.reload``. Handlers translate
between HTTP and ``Intake``; what a client sends never turns into a 500: a body that does
not decode is a 400, a body too slow to arrive a 408, a client gone mid-body one log line.
The request middleware turns anything unexpected into a 500 without internals (the traceback
goes to the service log only).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import signal
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from eventbus import config as config_module
from eventbus import metrics, openapi
from eventbus.config import Config
from eventbus.failed_events import FailedEventsLog, event_error
from eventbus.intake import Intake, text_of
from eventbus.producer import EventProducer
from eventbus.schemas import SchemaInvalidError, SchemaNotFoundError, SchemaRepository

log = logging.getLogger("eventbus.http")
INTAKE = web.AppKey("intake", Intake)
CONFIG_PATH = web.AppKey("config_path", Path)


class Drain:
    """The requests in flight, for a graceful stop that lets each one finish before aiohttp
    shuts its connections down: once it does, aiohttp drops whatever a connection still
    receives (aio-libs/aiohttp#2298), so a request whose body had not all arrived waited
    body_timeout for it and was answered 408. While stopping, every answer closes its
    connection, so that no client sends another request on it."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.stopping = False
        # the loop's time by which the whole stop ends (set when it starts): the requests in
        # flight, then the hasty produces and the producer's flush share one shutdown_timeout
        self.deadline: float | None = None
        self._idle = asyncio.Event()
        self._idle.set()

    def left(self, otherwise: float, least: float = 0.0) -> float:
        """Seconds until the stop's deadline (``otherwise`` when no stop has started), and at
        least ``least``."""
        if self.deadline is None:
            return otherwise
        return max(self.deadline - asyncio.get_running_loop().time(), least)

    def enter(self) -> None:
        self.in_flight += 1
        self._idle.clear()

    def leave(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0:
            self._idle.set()

    async def wait_idle(self, timeout: float) -> bool:
        """Whether every request in flight finished within ``timeout`` seconds."""
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True


DRAIN = web.AppKey("drain", Drain)
# Once a stop's deadline has passed: the hasty produces still waiting are cancelled at once
# (their events logged for replay), the producer still gets this long to flush, and aiohttp
# this long to end the requests cut short (the supervisor kills a worker shutdown_timeout +
# KILL_MARGIN after the stop: server.py).
FINAL_SECONDS = 2.0
CUT_SHORT_SECONDS = 0.5


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def problem(status: int, message: str) -> web.Response:
    return json_response({"status": status, "message": message}, status)


class RequestMetrics:
    """The request-duration histogram's child for each (method, route, status), bound once:
    ``labels()`` on every request cost a lock and a dict lookup of a tuple built anew."""

    def __init__(self) -> None:
        self.children: dict[tuple[str, str, int], Any] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        child = self.children.get(key)
        if child is None:
            child = self.children[key] = metrics.REQUESTS.labels(method, route, str(status))
        child.observe(seconds)


REQUEST_METRICS = web.AppKey("request_metrics", RequestMetrics)


@web.middleware
async def request_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Around every request, in one layer: the drain count, the requests in flight, the
    duration by route and status, and what an unexpected error becomes (a 500 without
    internals; the traceback goes to the service log)."""
    started = time.perf_counter()
    app = request.app
    metrics.IN_FLIGHT.inc()
    drain = app[DRAIN]
    drain.enter()
    status = 500
    try:
        response = await _answer(request, handler)
        status = response.status
        if drain.stopping and not response.prepared:
            response.force_close()  # "Connection: close": no next request on it
        return response
    finally:
        drain.leave()
        metrics.IN_FLIGHT.dec()
        resource = request.match_info.route.resource
        app[REQUEST_METRICS].observe(
            request.method,
            resource.canonical if resource else "unmatched",
            status,
            time.perf_counter() - started,
        )


async def _answer(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[INTAKE].config.max_body_bytes
        # a line for it (bounded: the body was not read, only its size is known)
        size = request.content_length
        request.app[INTAKE].failed.write([event_error(
            "", f"request body refused: larger than the limit of {limit} bytes"
            + (f" (Content-Length {size})" if size is not None else ""), "parse",
        )])  # fmt: skip
        return problem(413, f"the body is larger than the limit of {limit} bytes")
    except web.HTTPException as err:
        if err.status >= 400 and err.content_type != "application/json":
            return problem(err.status, err.reason)
        raise
    except Exception:
        log.exception("unexpected error on %s %s", request.method, request.path)
        return problem(500, "internal error; it was logged")


class BodyError(Exception):
    """The body could not be read; ``response`` says why to the client."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.text)
        self.response = response


async def read_body(request: web.Request, timeout: float) -> bytes:
    """The request's body, decoded (Content-Encoding) and within ``timeout``; BodyError with a
    4xx otherwise. A client gone mid-body is not the service failing: one INFO line."""
    try:
        if request.content.is_eof():  # all of it came with the headers (decoded as it came)
            return await request.read()
        async with asyncio.timeout(timeout):
            return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise
    except TimeoutError:
        log.info("body from %s not received within %ss: 408", request.remote, timeout)
        raise BodyError(problem(408, f"the body did not arrive within {timeout:g} s")) from None
    except (HttpProcessingError, RequestPayloadError) as err:  # e.g. gzip that is not gzip
        message = (getattr(err, "message", "") or str(err)).strip().splitlines()[0]
        raise BodyError(problem(400, f"the body could not be read: {message}")) from None
    except (ConnectionError, asyncio.IncompleteReadError) as err:
        log.info("client %s went away before its body arrived: %r", request.remote, err)
        raise BodyError(problem(400, "the body did not arrive")) from None


def body_reservation(request: web.Request, max_body_bytes: int) -> int:
    """The bytes a request's body may take once read: its Content-Length, or the most a body
    may be when the size is unknown or the body is compressed (decoded, it can be larger)."""
    size = request.content_length
    if size is None or request.headers.get("Content-Encoding", "identity") != "identity":
        return max_body_bytes
    return min(size, max_body_bytes)


async def post_events(request: web.Request) -> web.Response:
    """POST /v1/events, within the worker's budget of bodies in flight: a request that would
    exceed it is answered 503 with Retry-After before its body is read (any content type)."""
    intake = request.app[INTAKE]
    reserved = body_reservation(request, intake.config.max_body_bytes)
    budget = intake.config.max_in_flight_body_bytes
    if intake.body_bytes_in_flight + reserved > budget:
        # a line for it (bounded: the body is not read); the client may send it again
        intake.failed.write([event_error(
            "", f"request body refused: the worker is handling {intake.body_bytes_in_flight} "
            f"bytes of bodies, {reserved} more would exceed max_in_flight_body_bytes ({budget})",
            "parse",
        )])  # fmt: skip
        metrics.BUSY_REFUSALS.inc()
        response = problem(503, "too many bodies in flight on this worker; try again shortly")
        response.headers["Retry-After"] = "1"
        return response
    intake.body_bytes_in_flight += reserved
    try:
        return await _post_events(request, intake)
    finally:
        intake.body_bytes_in_flight -= reserved


async def _post_events(request: web.Request, intake: Intake) -> web.Response:
    if request.content_type != "application/json":
        # the events are kept (the body is JSON more often than not, and replay reads it)
        message = f"content type {request.content_type!r} refused: send events as application/json"
        try:
            body = await read_body(request, intake.config.body_timeout)
        except (BodyError, web.HTTPRequestEntityTooLarge):
            body = b""
        intake.failed.write([event_error(text_of(body), message, "parse")])
        return problem(415, "send events as application/json")
    try:
        body = await read_body(request, intake.config.body_timeout)
    except BodyError as err:
        intake.failed.write(
            [event_error("", f"request body refused: {err.response.text}", "parse")]
        )
        return err.response
    hasty = request.query.get("hasty", "").lower() in ("1", "true", "yes")
    result = await intake.handle(body, hasty=hasty)
    if result.status != 201:
        log.info("%d out of %d events were accepted.", result.accepted, result.total)
    if result.status in (201, 202):
        return web.Response(status=result.status)
    return json_response(result.body(), result.status)


async def healthz(request: web.Request) -> web.Response:
    intake = request.app[INTAKE]
    reason = intake.failed.problem()
    if reason is not None:
        return problem(503, reason)
    if await intake.producer.healthy():
        return json_response({"status": "ok"})
    return problem(503, "Kafka is not reachable")


def test_event_instance(template: dict[str, Any]) -> dict[str, Any]:
    """The configured test event as /v1/_test/events sends it: a fresh meta.id and meta.dt."""
    event = orjson.loads(orjson.dumps(template))
    meta = event.setdefault("meta", {})
    if isinstance(meta, dict):  # otherwise validation refuses it, saying why
        meta["id"] = str(uuid.uuid4())
        meta["dt"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return event


def _address(text: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An address as a client or a socket gives it (IPv4-mapped IPv6 read as IPv4)."""
    try:
        address = ipaddress.ip_address((text or "").split("%")[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def from_this_host_or(request: web.Request, networks: tuple[Any, ...]) -> bool:
    """The client is on this host (loopback, or connected to one of the host's own addresses
    from that same address), or on one of ``networks``."""
    peer = _address(request.remote)
    if peer is None:
        return False
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    local = _address(sockname[0]) if isinstance(sockname, tuple) and sockname else None
    return peer.is_loopback or peer == local or any(peer in network for network in networks)


async def test_event(request: web.Request) -> web.Response:
    """Send the configured test event end to end (the deploy gate): 201 once Kafka has it.
    It produces to Kafka, so only this host and test_event_allowed_from may ask."""
    intake = request.app[INTAKE]
    if not from_this_host_or(request, intake.config.test_event_allowed_from):
        log.info(
            "test event refused to %s: not this host nor test_event_allowed_from", request.remote
        )
        return problem(403, "the test event is sent from the service's host only")
    template = intake.config.test_event
    if template is None:
        return problem(404, "no test_event is configured")
    result = await intake.handle(orjson.dumps(test_event_instance(template)))
    if result.status == 201:
        return web.Response(status=201)
    return json_response(result.body(), result.status)


async def get_metrics(request: web.Request) -> web.Response:
    body, content_type = metrics.render()
    response = web.Response(body=body, headers={"Content-Type": content_type})
    # A scrape must not hold a connection to the intake port: the runbook's idle check waits
    # until the host has no established connection left after its depool.
    response.force_close()
    return response


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
    except SchemaInvalidError:  # logged once by the repository
        return problem(404, "no usable schema: the file is not a JSON Schema")
    return json_response(schema.document)


def reload(app: web.Application) -> None:
    """SIGHUP: new schemas and streams for the next requests; in-flight ones are untouched."""
    path = app[CONFIG_PATH]
    try:
        fresh = config_module.load(path)
    except config_module.ConfigError as err:
        log.error("reload refused, keeping the running configuration: %s", err)
        return
    app[INTAKE].reload(fresh)
    log.info("reloaded schemas and %d stream rule(s) from %s", len(fresh.streams), path)


def create_app(config: Config, config_path: Path | None = None) -> web.Application:
    """The application; with ``config_path``, SIGHUP reloads from it once the app runs."""
    app = web.Application(client_max_size=config.max_body_bytes, middlewares=[request_middleware])
    app[DRAIN] = Drain()
    app[REQUEST_METRICS] = RequestMetrics()

    async def resources(app: web.Application) -> AsyncIterator[None]:
        producer = EventProducer(config.kafka)
        failed = FailedEventsLog(config.failed_events_log)
        intake = Intake(config, SchemaRepository(config.schema_repositories), producer, failed)
        app[INTAKE] = intake
        try:
            yield
        finally:
            # one shutdown_timeout for the whole stop: what is left of it after the requests
            drain = app[DRAIN]
            await intake.stop_background(drain.left(config.shutdown_timeout))
            await producer.close(timeout=drain.left(config.shutdown_timeout, FINAL_SECONDS))
            failed.close()

    async def reload_on_sighup(app: web.Application) -> None:
        if config_path is not None:
            app[CONFIG_PATH] = config_path
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, reload, app)

    app.cleanup_ctx.append(resources)
    app.on_startup.append(reload_on_sighup)
    app.router.add_post("/v1/events", post_events)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/v1/_test/events", test_event)
    app.router.add_get("/v1/topics", list_topics)
    app.router.add_get("/v1/schemas", list_schemas)
    app.router.add_get("/v1/schemas/{uri:.+}", get_schema)
    app.router.add_get("/metrics", get_metrics)
    app.router.add_get("/openapi.json", get_openapi)
    return app
