"""HTTP mode: one aiohttp application for Slack, probes and (later) the Zendesk webhook.

    POST /slack/events   commands, interactivity and events (signed; Bolt verifies the signature)
    GET  /healthz        JSON: store reachable, background work in flight
    …                    `extra_routes` (e.g. POST /zendesk/webhook) share the process and event loop

On shutdown the server stops accepting requests, then waits (bounded) for background work started
by acknowledged requests, so a deploy does not drop a triage half-way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp

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


def build_web_app(
    services: Services,
    slack_app: AsyncApp | None,
    *,
    extra_routes: Iterable[web.AbstractRouteDef] = (),
    on_shutdown: Iterable[ShutdownHook] = (),
    drain_timeout_s: float = 30.0,
) -> web.Application:
    """The aiohttp app. `slack_app=None` serves only the probes and `extra_routes`."""
    app = web.Application(client_max_size=MAX_BODY)
    app[SERVICES_KEY] = services
    started = time.monotonic()

    if slack_app is not None:
        app[SLACK_APP_KEY] = slack_app

        async def slack_events(request: web.Request) -> web.Response:
            bolt_request = await to_bolt_request(request)
            bolt_response = await slack_app.async_dispatch(bolt_request)
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
