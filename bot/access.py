"""Who may use the bot, and where.

- `SLACK_ALLOWED_USERS` (user ids) and `SLACK_ALLOWED_USERGROUPS` (user group ids, `S…`): when either is
  set, only those people may run `/triage`, click the buttons or ask follow-ups. Both empty = everyone
  in the workspace (the workspace itself is the boundary; Slack Connect guests are handled below).
- `SLACK_ALLOWED_CHANNELS`: channels `/triage` may be run from (TRIAGE_CHANNEL is always allowed).
  Empty = any channel. Reports are only ever posted to TRIAGE_CHANNEL.
- Slack Connect: events from externally shared channels are ignored, and a TRIAGE_CHANNEL that is
  externally shared is refused, unless `SLACK_ALLOW_SHARED_CHANNELS=true` (fail closed: if the channel
  cannot be checked, nothing is posted).

User group members are resolved with `usergroups.users.list` and cached briefly (`ttl_s`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.settings import Settings


def slack_error(exc: BaseException) -> str:
    """A short reason for a failed Slack call. Never raises: a proxy's HTML 502, a text/plain 405 or a
    truncated JSON body leave `SlackApiError.response` without a dict (a str, or aiohttp's response)."""
    if isinstance(exc, SlackApiError):
        response = exc.response
        data = getattr(response, "data", None)
        if isinstance(data, dict) and data.get("error"):
            return str(data["error"])[:100]
        status = getattr(response, "status_code", None) or getattr(response, "status", None)
        return f"HTTP {status} without a Slack API answer" if status else "slack_error"
    return type(exc).__name__


log = logging.getLogger(__name__)

REFUSAL = (
    "Sorry, you are not allowed to use the triage bot here. "
    "Ask an admin to add you to SLACK_ALLOWED_USERS or one of SLACK_ALLOWED_USERGROUPS."
)
CHANNEL_REFUSAL = "The triage bot is not enabled in this channel. Use it in {channels}."
SHARED_REFUSAL = "The triage bot does not work in Slack Connect (externally shared) channels."


@dataclass
class Decision:
    allowed: bool
    reason: str = ""


class AccessControl:
    def __init__(self, settings: Settings, client: AsyncWebClient, *, ttl_s: float = 60.0) -> None:
        self.settings = settings
        self.client = client
        self.ttl_s = ttl_s
        self._groups: dict[str, tuple[float, frozenset[str]]] = {}
        self._shared: dict[str, tuple[float, bool]] = {}
        self._lock = asyncio.Lock()

    # ------------------------------------------------------------ people

    @property
    def restricts_users(self) -> bool:
        return bool(self.settings.slack_allowed_users or self.settings.slack_allowed_usergroups)

    async def user_allowed(self, user_id: str) -> bool:
        if not self.restricts_users:
            return True
        if not user_id:
            return False
        if user_id in self.settings.slack_allowed_users:
            return True
        for group in self.settings.slack_allowed_usergroups:
            if user_id in await self.group_members(group):
                return True
        return False

    async def group_members(self, group: str) -> frozenset[str]:
        now = time.monotonic()
        cached = self._groups.get(group)
        if cached and now - cached[0] < self.ttl_s:
            return cached[1]
        try:
            resp = await self.client.usergroups_users_list(usergroup=group)
            members = frozenset(str(u) for u in (resp.get("users") or []))
        except Exception as exc:  # SlackApiError, or a body the SDK could not read (e.g. 200 text/plain)
            # fail closed for this group; keep a stale copy if we had one
            log.warning("usergroups.users.list(%s) failed: %s", group, slack_error(exc))
            return cached[1] if cached else frozenset()
        self._groups[group] = (now, members)
        return members

    # ------------------------------------------------------------ places

    def command_channel_allowed(self, channel_id: str) -> bool:
        allowed = self.settings.slack_allowed_channels
        if not allowed:
            return True
        return channel_id in allowed or channel_id == self.settings.triage_channel

    def delivery_channel_allowed(self, channel_id: str) -> bool:
        """Buttons and follow-ups only act on messages in the channels reports go to."""
        if not channel_id:
            return False
        return (
            channel_id == self.settings.triage_channel or channel_id in self.settings.slack_allowed_channels
        )

    def shared_flag_refused(self, body: dict[str, Any]) -> bool:
        """Events carry `is_ext_shared_channel` on the envelope (and some payloads carry it too)."""
        if self.settings.slack_allow_shared_channels:
            return False
        return bool(body.get("is_ext_shared_channel"))

    async def channel_is_shared(self, channel_id: str) -> bool:
        """conversations.info says whether a channel is externally shared (cached). Raises on failure."""
        now = time.monotonic()
        cached = self._shared.get(channel_id)
        if cached and now - cached[0] < self.ttl_s * 5:
            return cached[1]
        resp = await self.client.conversations_info(channel=channel_id)
        info = resp.get("channel") or {}
        shared = bool(info.get("is_ext_shared") or info.get("is_pending_ext_shared"))
        self._shared[channel_id] = (now, shared)
        return shared

    async def check_delivery_channel(self, channel_id: str) -> Decision:
        """May reports be posted to this channel? Fails closed when it cannot be checked."""
        if self.settings.slack_allow_shared_channels:
            return Decision(True)
        try:
            shared = await self.channel_is_shared(channel_id)
        except Exception as exc:  # SlackApiError, or a body the SDK could not read (e.g. 200 text/plain)
            error = slack_error(exc)
            return Decision(
                False,
                f"could not check that {channel_id} is not a Slack Connect channel "
                f"(conversations.info: {error}); "
                "add the channels:read and groups:read scopes or set SLACK_ALLOW_SHARED_CHANNELS=true",
            )
        if shared:
            return Decision(
                False,
                f"TRIAGE_CHANNEL {channel_id} is externally shared (Slack Connect); "
                "reports are not posted there "
                "unless SLACK_ALLOW_SHARED_CHANNELS=true",
            )
        return Decision(True)

    def channels_hint(self) -> str:
        names = [self.settings.triage_channel, *self.settings.slack_allowed_channels]
        return ", ".join(f"<#{c}>" for c in dict.fromkeys(n for n in names if n)) or "the triage channel"
