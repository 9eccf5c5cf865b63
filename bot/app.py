"""The Bolt `AsyncApp`: built here, its listeners live in `bot.listeners` (one module per surface).

Signature checks are Bolt's (`request_verification`); access control is one middleware
(`bot.listeners.guard`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.listeners import register
from bot.listeners.common import Deps
from bot.settings import secret
from bot.slack_runtime import runtime_for
from triage.protocols import ConfigError

if TYPE_CHECKING:
    from bot.wiring import Services


def build_app(
    services: Services, *, client: AsyncWebClient | None = None, socket_mode: bool = False
) -> AsyncApp:
    """The Bolt app. HTTP mode needs SLACK_SIGNING_SECRET; Socket Mode needs SLACK_APP_TOKEN (runner)."""
    settings = services.settings
    rt = runtime_for(services, client)
    signing_secret = secret(settings.slack_signing_secret)
    if not signing_secret and not socket_mode:
        raise ConfigError("SLACK_SIGNING_SECRET is not set (Slack app → Basic Information → Signing Secret)")
    # Bolt reads SLACK_BOT_TOKEN from the environment and warns that it is unused when a client is
    # given; the client (with our base URL and retry handlers) carries that very token.
    logging.getLogger("slack_bolt.AsyncApp").addFilter(_TokenFromClientFilter())
    app = AsyncApp(
        name="triagebot",
        client=rt.client,
        signing_secret=signing_secret or None,
        request_verification_enabled=bool(signing_secret) or not socket_mode,
        process_before_response=False,
    )
    register(app, Deps(services, rt))
    return app


class _TokenFromClientFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "`token` will be unused" not in record.getMessage()
