"""Events: a mention or a reply in a report thread gets a follow-up answer (`bot.followups`)."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.followups import handle_thread_message
from bot.listeners.common import Deps


class EventListeners:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    def register(self, app: AsyncApp) -> None:
        app.event("app_mention")(self.on_mention)
        app.event("message")(self.on_message)

    async def on_mention(self, body: dict[str, Any], event: dict[str, Any], context: Any) -> None:
        self.deps.rt.spawn(self._event(body, event, context, mentioned=True), name="app-mention")

    async def on_message(self, body: dict[str, Any], event: dict[str, Any], context: Any) -> None:
        self.deps.rt.spawn(self._event(body, event, context, mentioned=False), name="message")

    async def _event(
        self, body: dict[str, Any], event: dict[str, Any], context: Any, *, mentioned: bool
    ) -> None:
        await handle_thread_message(
            self.deps.services,
            event,
            bot_user_id=context.get("bot_user_id"),
            bot_id=context.get("bot_id"),
            mentioned=mentioned,
            user_allowed=bool(context.get("user_allowed")),
        )
