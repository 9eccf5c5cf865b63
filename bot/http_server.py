"""HTTP mode: one aiohttp application for Slack, probes and (later) the Zendesk webhook.

    POST /slack/events   commands, interactivity and events (signed)
    GET  /healthz        JSON: store reachable, background work in flight
    …                    `extra_routes` (e.g. POST /zendesk/webhook) share the process and event loop

Verify before parse: `slack_verification` (an aiohttp middleware on /slack/events) checks Slack's
signature and timestamp over the raw bytes before Bolt parses anything. A missing, invalid or stale
signature gets 401 `{"error": "invalid request"}` and one INFO line (no body echo, no traceback); a
signed body that is not what Slack sends (not UTF-8, JSON that is not an object or nests too deep, a
`payload=` form field that is not a JSON object) gets 400. Only then does Bolt see the request.

On shutdown the server stops accepting requests, then waits (bounded) for background work started
by acknowledged requests, so a deploy does not drop a triage half-way.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp
from slack_sdk.signature import SignatureVerifier

from bot.slack_runtime import runtime_for

if TYPE_CHECKING:
    from bot.wiring import Services

log = logging.getLogger(__name__)

SLACK_PATH = "/slack/events"
HEALTH_PATH = "/healthz"
BACKLOG = 1024
MAX_BODY = 2 * 1024 * 1024  # Slack payloads are small; refuse anything silly

SERVICES_KEY = web.AppKey("services", object)
SLACK_APP_KEY = web.AppKey("slack_app", object)

ShutdownHook = Callable[[], Awaitable[None]]


def slack_signed(verifier: SignatureVerifier, raw: bytes, timestamp: str, signature: str) -> bool:
    """Slack's `v0` HMAC over `v0:{timestamp}:{raw body}`, timestamp within 5 minutes."""
    ts = timestamp.strip()
    if not (0 < len(ts) <= 12 and ts.isascii() and ts.isdigit()) or not signature:
        return False  # int() on anything else would raise (or be slow) inside the SDK
    return verifier.is_valid(body=raw, timestamp=ts, signature=signature)


# The envelope fields Bolt dereferences (slack_bolt/request/internals.py, middleware/authorization) and
# the type it assumes: a signed body with another type would crash Bolt's dispatch with a 500.
_OBJECTS = frozenset(
    {"event", "view", "container", "message", "previous_message", "item", "assistant_thread", "function_data"}
)
_OBJECT_OR_ID = frozenset({"team", "user", "channel", "enterprise"})
_LISTS_OF_OBJECTS = frozenset({"actions", "authorizations"})
# read as `body.get("event", {}).get(...)` (ignoring_self_events, listener matchers): a null crashes it
_NEVER_NULL = frozenset({"event"})
_STRINGS = frozenset(
    {
        "type",
        "team_id",
        "enterprise_id",
        "user_id",
        "channel_id",
        "thread_ts",
        "function_execution_id",
        "context_team_id",
        "context_enterprise_id",
    }
)


def slack_shape_problem(body: dict[str, object], depth: int = 0) -> str | None:
    """The first envelope field whose JSON type is not the one Slack sends (and Bolt assumes)."""
    for key, value in body.items():
        if value is None:
            if key in _NEVER_NULL:
                return f"{key} is null"
            continue
        if key in _OBJECTS and not isinstance(value, dict):
            return f"{key} is not an object"
        if key in _OBJECT_OR_ID and not isinstance(value, dict | str):
            return f"{key} is neither an object nor an id"
        if key in _LISTS_OF_OBJECTS and not (
            isinstance(value, list) and all(isinstance(item, dict) for item in value)
        ):
            return f"{key} is not a list of objects"
        if key in _STRINGS and not isinstance(value, str):
            return f"{key} is not a string"
        nested = depth < 2 and key in _OBJECTS | _OBJECT_OR_ID and isinstance(value, dict)
        if nested and (inner := slack_shape_problem(value, depth + 1)) is not None:  # type: ignore[arg-type]
            return f"{key}.{inner}"
    return None


def slack_body_problem(raw: bytes, content_type: str) -> str | None:
    """Why a (signed) body is not one Bolt can parse, mirroring `slack_bolt.request.internals.parse_body`."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "body is not UTF-8"
    if not text:
        return None
    try:
        if content_type == "application/json" or text.startswith("{"):
            body = json.loads(text)
        elif "payload" in text:
            payload = dict(parse_qsl(text, keep_blank_values=True)).get("payload")
            body = {} if payload is None else json.loads(payload)
        else:
            return None  # a slash command: flat form fields
    except (ValueError, RecursionError):
        return "body is not valid JSON"
    if not isinstance(body, dict):
        return "body is not a JSON object"
    return slack_shape_problem(body)


def slack_verification(signing_secret: str, path: str = SLACK_PATH) -> Middleware:
    """The middleware that checks every POST to `path` before Bolt parses it (see the module docstring)."""
    verifier = SignatureVerifier(signing_secret)  # without a secret nothing verifies (fail closed)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path != path or request.method != "POST":
            return await handler(request)
        raw = await request.read()  # bounded by client_max_size (413 above it)
        headers = request.headers
        timestamp = headers.get("X-Slack-Request-Timestamp", "")
        signature = headers.get("X-Slack-Signature", "")
        if not signing_secret or not slack_signed(verifier, raw, timestamp, signature):
            log.info("Slack request refused: missing, invalid or stale signature (%d bytes)", len(raw))
            return web.json_response({"error": "invalid request"}, status=401)
        problem = slack_body_problem(raw, request.content_type)
        if problem:
            log.info("Slack request refused: %s", problem)
            return web.json_response({"error": problem}, status=400)
        return await handler(request)

    return middleware


def build_web_app(
    services: Services,
    slack_app: AsyncApp | None,
    *,
    extra_routes: Iterable[web.AbstractRouteDef] = (),
    on_shutdown: Iterable[ShutdownHook] = (),
    drain_timeout_s: float = 30.0,
) -> web.Application:
    """The aiohttp app. `slack_app=None` serves only the probes and `extra_routes`."""
    secret = services.settings.slack_signing_secret
    middlewares = [slack_verification(secret.get_secret_value() if secret else "")] if slack_app else []
    app = web.Application(client_max_size=MAX_BODY, middlewares=middlewares)
    app[SERVICES_KEY] = services
    started = time.monotonic()

    if slack_app is not None:
        app[SLACK_APP_KEY] = slack_app

        async def slack_events(request: web.Request) -> web.Response:
            try:
                bolt_request = await to_bolt_request(request)
                bolt_response = await slack_app.async_dispatch(bolt_request)
            except Exception as exc:  # a signed body of a shape Bolt's own error path cannot handle
                log.warning("Slack request could not be dispatched (%s); answered 400", type(exc).__name__)
                return web.json_response({"error": "unreadable request"}, status=400)
            return await to_aiohttp_response(bolt_response)

        app.router.add_post(SLACK_PATH, slack_events)

    async def healthz(request: web.Request) -> web.Response:
        checks: dict[str, object] = {}
        ok = True
        try:
            async with asyncio.timeout(5):
                await services.store.get_cursor("healthz")
            checks["store"] = "ok"
        except Exception as exc:
            ok = False
            checks["store"] = f"error: {type(exc).__name__}"
        rt = runtime_for(services) if services.settings.slack_bot_token else None
        body = {
            "ok": ok,
            "checks": checks,
            "slack": slack_app is not None,
            "background_tasks": len(rt.tasks) if rt else 0,
            "uptime_s": round(time.monotonic() - started, 1),
        }
        return web.json_response(body, status=200 if ok else 503)

    app.router.add_get(HEALTH_PATH, healthz)
    app.router.add_routes(list(extra_routes))

    async def shutdown(_: web.Application) -> None:
        if services.settings.slack_bot_token:
            await runtime_for(services).drain(drain_timeout_s)
        for hook in on_shutdown:
            try:
                await hook()
            except Exception:
                log.exception("shutdown hook failed")

    app.on_shutdown.append(shutdown)
    return app


@dataclass
class HttpServer:
    runner: web.AppRunner
    host: str
    port: int

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}"

    async def stop(self) -> None:
        await self.runner.cleanup()  # runs on_shutdown (drains background work) then closes


async def start_http(app: web.Application, *, host: str = "0.0.0.0", port: int = 3000) -> HttpServer:
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=10.0)
    await runner.setup()
    # a deep accept backlog: a burst of new connections (a load balancer warming up, many commands at
    # once) must queue in the kernel, not be dropped and retried by TCP a second later
    site = web.TCPSite(runner, host, port, backlog=BACKLOG)
    await site.start()
    bound = port
    with contextlib.suppress(Exception):
        sockets = site._server.sockets if site._server else None  # type: ignore[union-attr]
        if sockets:
            bound = int(sockets[0].getsockname()[1])
    log.info("serving HTTP on %s:%s (%s, %s)", host, bound, SLACK_PATH, HEALTH_PATH)
    return HttpServer(runner, host, bound)


async def serve_http(
    services: Services,
    *,
    host: str = "0.0.0.0",
    port: int = 3000,
    slack: bool = True,
    extra_routes: Iterable[web.AbstractRouteDef] = (),
    on_shutdown: Iterable[ShutdownHook] = (),
    stop: asyncio.Event | None = None,
) -> None:
    """Run HTTP mode until `stop` is set (or the task is cancelled), then shut down cleanly."""
    from bot.app import build_app

    slack_app = build_app(services) if slack else None
    server = await start_http(
        build_web_app(services, slack_app, extra_routes=extra_routes, on_shutdown=on_shutdown),
        host=host,
        port=port,
    )
    try:
        await (stop or asyncio.Event()).wait()
    finally:
        await server.stop()
