"""Access control for every Slack request, as one Bolt middleware (the rules are in `bot.access`).

It runs after Bolt's signature check and before any listener:

- `/triage` and the "Triage this message" shortcut: the channel must be one `/triage` may be used in,
  and the user allowed (Slack Connect for the shortcut: `bot.listeners.shortcuts`);
- buttons: the message must be in a channel reports go to, and the user allowed;
- modal submissions: the user allowed;
- events: from a Slack Connect channel (unless SLACK_ALLOW_SHARED_CHANNELS) or, for messages and
  mentions, from a channel reports do not go to, they are dropped silently. Whether the author is
  allowed is put in `context["user_allowed"]`: the follow-up listener only tells people who
  addressed the bot, and ignores other chatter.

A refused command or click is acknowledged and answered ephemerally; a refused modal submission
shows the refusal in the modal. Nothing else runs. The user-group lookup is cached in
`AccessControl`; if it does not answer within `CHECK_TIMEOUT_S` the request is refused (fail
closed) rather than missing Slack's 3-second acknowledgement deadline.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.response import BoltResponse

from bot.access import CHANNEL_REFUSAL, REFUSAL, SHARED_REFUSAL, AccessControl
from bot.listeners.common import Deps, channel_of, user_of
from formatting.modals import notice_modal

log = logging.getLogger(__name__)

CHECK_TIMEOUT_S = 2.0
UNCHECKED = "Could not check your access to the triage bot in time; please try again."
CHANNEL_EVENTS = frozenset({"message", "app_mention"})

Middleware = Callable[..., Awaitable[BoltResponse | None]]


def request_kind(body: dict[str, Any]) -> str:
    """`command`, or the payload type (`block_actions`, `view_submission`, `event_callback`…)."""
    if body.get("command"):
        return "command"
    return str(body.get("type") or "")


async def _user_refusal(access: AccessControl, user: str) -> str | None:
    try:
        allowed = await asyncio.wait_for(access.user_allowed(user), CHECK_TIMEOUT_S)
    except TimeoutError:
        log.warning("access check for %s timed out", user)
        return UNCHECKED
    return None if allowed else REFUSAL


async def refusal_for(access: AccessControl, body: dict[str, Any]) -> str | None:
    """None when an interactive request may go on; otherwise the text to show the user."""
    kind = request_kind(body)
    channel = channel_of(body)
    # a message shortcut decides about Slack Connect itself (SLACK_TRIAGE_SHARED_MESSAGES)
    if kind != "message_action" and access.shared_flag_refused(body):
        return SHARED_REFUSAL
    if kind in ("command", "message_action") and not access.command_channel_allowed(channel):
        return CHANNEL_REFUSAL.format(channels=access.channels_hint())
    if kind == "block_actions":
        in_view = (body.get("container") or {}).get("type") == "view"
        if not in_view and not access.delivery_channel_allowed(channel):
            return CHANNEL_REFUSAL.format(channels=access.channels_hint())
    return await _user_refusal(access, user_of(body))


def access_middleware(deps: Deps) -> Middleware:
    access = deps.rt.access

    async def access_control(
        body: dict[str, Any], context: Any, ack: Any, respond: Any, next: Callable[[], Awaitable[None]]
    ) -> BoltResponse | None:
        kind = request_kind(body)
        if kind == "event_callback":
            event = body.get("event") or {}
            if access.shared_flag_refused(body):
                return BoltResponse(status=200, body="")
            if event.get("type") in CHANNEL_EVENTS and not access.delivery_channel_allowed(
                str(event.get("channel") or "")
            ):
                return BoltResponse(status=200, body="")
            user = str(event.get("user") or "")
            context["user_allowed"] = bool(user) and await _user_refusal(access, user) is None
            await next()
            return None
        if kind not in ("command", "block_actions", "view_submission", "message_action", "shortcut"):
            await next()
            return None
        refusal = await refusal_for(access, body)
        if refusal is None:
            await next()
            return None
        log.info("refused %s from %s: %s", kind, user_of(body), refusal[:60])
        if kind == "view_submission":
            return await ack(response_action="update", view=notice_modal("Triage bot", refusal))
        response = await ack()
        deps.rt.spawn(deps.say(respond, refusal), name=f"refusal-{kind}")
        return response

    return access_control
