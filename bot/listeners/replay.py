"""Idempotent clicks: one Bolt middleware that drops a repeated button click or slash command.

A signed Slack request stays valid for 5 minutes (the signature window), so whoever captured one can
replay it, and a double click sends the same action twice. Either would start a second paid triage.
Within `REPLAY_WINDOW_S`:

- a *Re-run* click counts once per (action, channel, message, user), whatever its `action_ts`;
- a slash command or a shortcut ("Triage this message") counts once per `trigger_id` (Slack makes a
  new one for every invocation, a replay repeats it).

The other buttons are idempotent on their own and answer a repeat helpfully: the escalation packet, KB
draft and reply note are claimed once per run in the store (a repeat gets "already posted" and a link),
and a feedback vote is one row per (run, user).

The check is `Store.seen_within` (a unique key plus a compare-and-swap on its time), so it holds across
replicas. A dropped request is acknowledged (Slack must not retry it) with one INFO log line.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.response import BoltResponse

from bot.listeners.common import Deps, channel_of, user_of
from formatting.actions import ACTION_RERUN

log = logging.getLogger(__name__)

REPLAY_WINDOW_S = 300.0  # Slack's signature window: older requests fail verification anyway
DEDUPED_ACTIONS = frozenset({ACTION_RERUN})  # buttons that start paid work without a claim of their own

Middleware = Callable[..., Awaitable[BoltResponse | None]]


def replay_key(body: dict[str, Any]) -> str | None:
    """The de-duplication key of a click or a command, None for anything else."""
    kind = body.get("type") or ("command" if body.get("command") else "")
    if kind == "block_actions":
        actions = body.get("actions") or []
        first = actions[0] if actions and isinstance(actions[0], dict) else {}
        action_id = str(first.get("action_id") or "")
        if action_id not in DEDUPED_ACTIONS:
            return None
        container = body.get("container") or {}
        message = str(container.get("message_ts") or container.get("view_id") or "")
        return f"click:{action_id}:{channel_of(body)}:{message}:{user_of(body)}"
    if kind in ("command", "message_action", "shortcut") and body.get("trigger_id"):
        return f"{kind}:{body['trigger_id']}"
    return None


def replay_middleware(deps: Deps, window_s: float = REPLAY_WINDOW_S) -> Middleware:
    async def drop_replays(
        body: dict[str, Any], ack: Any, next: Callable[[], Awaitable[None]]
    ) -> BoltResponse | None:
        key = replay_key(body)
        if key is None or await deps.store.seen_within(key, window_s):
            await next()
            return None
        log.info("repeated Slack request dropped (%s)", key.split(":", 1)[0])
        await ack()
        return BoltResponse(status=200, body="")

    return drop_replays
