"""The Bolt listeners, one module per Slack surface, registered on the app by `register`.

`guard` (access control, one middleware for every request) · `replay` (a repeated Re-run click or
command within Slack's 5-minute replay window is dropped, store-backed) · `commands` (/triage, the paste
modal) · `shortcuts` ("Triage this message") · `actions` (report buttons) · `views` (modal submissions) ·
`events` (thread follow-ups) · `home` (the App Home tab). `paste` turns Slack text into a pasted ticket.

Every listener acknowledges first and does nothing slow before `ack()`; the work runs in a tracked
background task (`SlackRuntime.spawn`) so shutdown can wait for it, and triage runs are bounded by
`Services.triage_slots` (TRIAGE_CONCURRENCY).
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.listeners.actions import ActionListeners
from bot.listeners.commands import CommandListeners
from bot.listeners.common import Deps
from bot.listeners.events import EventListeners
from bot.listeners.guard import access_middleware
from bot.listeners.home import HomeListeners
from bot.listeners.replay import replay_middleware
from bot.listeners.shortcuts import ShortcutListeners
from bot.listeners.views import ViewListeners

log = logging.getLogger(__name__)


def register(app: AsyncApp, deps: Deps) -> None:
    app.middleware(access_middleware(deps))
    app.middleware(replay_middleware(deps))
    surfaces = (
        CommandListeners,
        ShortcutListeners,
        ActionListeners,
        ViewListeners,
        EventListeners,
        HomeListeners,
    )
    for surface in surfaces:
        surface(deps).register(app)
    app.error(_on_error)


async def _on_error(error: Exception, body: dict[str, Any]) -> None:
    log.error("unhandled error in a Slack listener (%s): %s", body.get("type"), error, exc_info=error)
