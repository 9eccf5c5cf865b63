"""Slack's per-channel posting pace, kept across replicas: `ChannelPacer` and `PacedWebClient`.

Slack allows chat.postMessage about one message per second per channel ("short bursts above that
are allowed, with no guarantee"; a 429 with Retry-After beyond). With N replicas each pacing itself,
a channel would get N× that. So the pace lives in the store: before each chat.postMessage the
runtime's client reserves the channel's next slot (`SqlStore.reserve_post_slot`, one atomic UPDATE
of the channel's row; see `integrations.store_pace`) and sleeps until it. Up to
SLACK_POST_BURST messages go at once, then one per SLACK_POST_INTERVAL_SECONDS per channel, whichever
replica sends them; on SQLite the same code paces the single process.

If Slack still answers 429 (another app in the channel, the workspace-wide limit), slack-sdk's
`AsyncRateLimitErrorRetryHandler` waits Retry-After and retries, unchanged.

A store that cannot be reached does not stop posting: the message goes unpaced and a warning is
logged (Slack's 429 handling still applies).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

log = logging.getLogger(__name__)


class SlotStore(Protocol):
    async def reserve_post_slot(self, channel: str, interval_s: float, burst: int) -> float: ...


class ChannelPacer:
    """Waits for a channel's next posting slot, reserved in the store (shared by all replicas)."""

    def __init__(
        self,
        store: SlotStore,
        interval_s: float,
        burst: int,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.store, self.interval_s, self.burst, self.sleep = store, interval_s, max(1, burst), sleep

    async def wait(self, channel: str) -> float:
        """Sleep until this message's slot; returns the seconds waited."""
        if self.interval_s <= 0 or not channel:
            return 0.0
        try:
            delay = await self.store.reserve_post_slot(channel, self.interval_s, self.burst)
        except Exception as exc:
            log.warning("no posting slot for %s (%s): posting without the shared pace", channel, exc)
            return 0.0
        if delay > 0:
            log.debug("%s: waiting %.2fs for the channel's posting slot", channel, delay)
            await self.sleep(delay)
        return delay


class PacedWebClient(AsyncWebClient):
    """slack-sdk's AsyncWebClient whose chat.postMessage first waits for the channel's slot.

    Everything else (retry handlers, base URL, the other methods) is slack-sdk's, unchanged.
    """

    def __init__(self, *, pacer: ChannelPacer | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pacer = pacer

    async def chat_postMessage(self, *, channel: str, **kwargs: Any) -> AsyncSlackResponse:
        if self.pacer is not None:
            await self.pacer.wait(channel)
        return await super().chat_postMessage(channel=channel, **kwargs)
