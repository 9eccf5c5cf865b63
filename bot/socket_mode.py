"""Socket Mode: the app opens a WebSocket to Slack (no public URL; for development and firewalled hosts).

Needs SLACK_APP_TOKEN (an app-level `xapp-…` token with `connections:write`) and Socket Mode turned on
in the app settings. Requests arrive over the socket, so there is no signature to check. The
connection URL comes from `apps.connections.open` on SLACK_API_URL, like every other Web API call.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp

from bot.settings import secret
from bot.slack_runtime import runtime_for
from triage.protocols import ConfigError

if TYPE_CHECKING:
    from bot.wiring import Services

log = logging.getLogger(__name__)


async def start_socket_mode(services: Services, app: AsyncApp | None = None) -> AsyncSocketModeHandler:
    """Connect (receives `hello`, then requests) and return the handler; `close_async()` to stop."""
    token = secret(services.settings.slack_app_token)
    if not token:
        raise ConfigError(
            "SLACK_APP_TOKEN is not set "
            "(Slack app → Basic Information → App-Level Tokens, scope connections:write)"
        )
    if not token.startswith("xapp-"):
        raise ConfigError("SLACK_APP_TOKEN must be an app-level token starting with xapp-")
    if app is None:
        from bot.app import build_app

        app = build_app(services, socket_mode=True)
    handler = AsyncSocketModeHandler(app, app_token=token, web_client=app.client)
    await handler.connect_async()
    log.info("Socket Mode connected")
    return handler


async def run_socket_mode(
    services: Services, *, stop: asyncio.Event | None = None, drain_timeout_s: float = 30.0
) -> None:
    """Serve Socket Mode until `stop` is set (or cancelled); then disconnect and drain background work."""
    handler = await start_socket_mode(services)
    try:
        await (stop or asyncio.Event()).wait()
    finally:
        await handler.close_async()
        await runtime_for(services).drain(drain_timeout_s)
