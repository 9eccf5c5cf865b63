"""What the listener modules share: the services they act on and small payload helpers."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack_runtime import SlackRuntime, slack_error

if TYPE_CHECKING:
    from bot.settings import Settings
    from bot.wiring import Services
    from triage.store import Feedback, Store

log = logging.getLogger(__name__)

COMMAND = "/triage"


@dataclass
class Deps:
    """The services and the per-process Slack runtime every listener works with."""

    services: Services
    rt: SlackRuntime

    @property
    def client(self) -> AsyncWebClient:
        return self.rt.client

    @property
    def store(self) -> Store:
        return self.services.store

    @property
    def settings(self) -> Settings:
        return self.services.settings

    def writeback_enabled(self) -> bool:
        return bool(self.settings.zendesk_writeback and self.services.zendesk is not None)

    async def say(self, respond: Any, text: str) -> None:
        """An ephemeral answer through response_url; never raises."""
        try:
            await respond(text=text, response_type="ephemeral", replace_original=False)
        except Exception as exc:
            log.warning("respond() failed: %s", type(exc).__name__)

    async def ephemeral(
        self, channel: str, user: str, thread_ts: str | None, payload: dict[str, Any]
    ) -> None:
        """chat.postEphemeral; never raises."""
        try:
            await self.client.chat_postEphemeral(channel=channel, user=user, thread_ts=thread_ts, **payload)
        except SlackApiError as exc:
            log.warning("chat.postEphemeral failed: %s", slack_error(exc))


def user_of(body: dict[str, Any]) -> str:
    user = body.get("user")
    if isinstance(user, dict):
        return str(user.get("id") or "")
    return str(body.get("user_id") or user or "")


def channel_of(body: dict[str, Any]) -> str:
    channel = body.get("channel")
    if isinstance(channel, dict) and channel.get("id"):
        return str(channel["id"])
    container = body.get("container") or {}
    return str(container.get("channel_id") or body.get("channel_id") or "")


def input_value(view: dict[str, Any], block: str, action: str) -> str:
    values = ((view.get("state") or {}).get("values") or {}).get(block) or {}
    return str((values.get(action) or {}).get("value") or "")


def reason(exc: BaseException) -> str:
    if isinstance(exc, SlackApiError):
        return f"Slack said {slack_error(exc)}"
    return str(exc)[:300] or type(exc).__name__


class Reported(Exception):
    """The failure was already posted in the thread."""

    def __str__(self) -> str:
        return "the error is shown in the thread"


async def record_outcome(deps: Deps, run_id: str, outcome: str, user_id: str) -> None:
    """A draft outcome for `triagebot stats` and analytics; never fails the click that caused it."""
    try:
        await deps.services.store.record_outcome(run_id, outcome, user_id)
        if deps.services.analytics is not None:
            deps.services.analytics.outcome(run_id, outcome)
    except Exception:
        log.warning("could not record draft outcome %s for run %s", outcome, run_id)


async def record_feedback(deps: Deps, feedback: Feedback) -> None:
    """👍/👎 (and the "what was wrong?" text) in the store, and to analytics when it is on."""
    await deps.store.add_feedback(feedback)
    if deps.services.analytics is not None:
        deps.services.analytics.feedback(feedback.run_id, feedback.vote, feedback.comment)
