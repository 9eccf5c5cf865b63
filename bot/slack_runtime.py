"""The Slack side of the bot, per process: the Web API client, posting, pacing and live card updates.

- `build_client`: slack-sdk's `AsyncWebClient` with its retry handlers (429 → waits Retry-After,
  connection errors → retried), pointed at SLACK_API_URL; its chat.postMessage keeps the channel's
  posting pace shared by all replicas (`bot.slack_pacing`).
- `SlackRuntime`: one per `Services` (`runtime_for`): the client, access control and the background
  tasks shutdown waits for. It holds no state about tickets or runs: that lives in the store, so any
  replica can serve any click or reply.
- `post_message` / `update_message` / `permalink` / `post_error`: thin wrappers (no unfurls).
- `CardUpdater`: paces the live card: at most one `chat.update` per SLACK_UPDATE_INTERVAL_SECONDS per
  card, intermediate states coalesced, the final state always sent.
- `ProgressTracker`: engine progress events → card states.

Writes that belong to a triage run go through `bot.fenced_run.FencedRun`, which checks the run's
fencing token before each of them; this module does not know about runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any

from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from bot.access import AccessControl, slack_error
from bot.settings import Settings, secret
from bot.slack_pacing import ChannelPacer, PacedWebClient
from formatting.cards import CardState, error_message
from triage.protocols import ConfigError, ProgressEvent

if TYPE_CHECKING:
    from bot.wiring import Services

log = logging.getLogger(__name__)

SLACK_TIMEOUT_S = 30


def build_client(settings: Settings, pacer: ChannelPacer | None = None) -> AsyncWebClient:
    token = secret(settings.slack_bot_token)
    if not token:
        raise ConfigError(
            "SLACK_BOT_TOKEN is not set (Slack app → OAuth & Permissions → Bot User OAuth Token)"
        )
    base_url = settings.slack_api_url or "https://slack.com/api/"
    if not base_url.endswith("/"):
        base_url += "/"  # slack-sdk joins with urljoin: a path without "/" loses its last segment
    return PacedWebClient(
        pacer=pacer,
        token=token,
        base_url=base_url,
        timeout=SLACK_TIMEOUT_S,
        retry_handlers=[
            AsyncRateLimitErrorRetryHandler(max_retry_count=2),  # honours Retry-After
            AsyncConnectionErrorRetryHandler(max_retry_count=2),
        ],
    )


class SlackRuntime:
    """Slack client, access control and tracked background work for one `Services`."""

    def __init__(self, services: Services, client: AsyncWebClient | None = None) -> None:
        self.services = services
        settings = services.settings
        if client is None:
            pace = ChannelPacer(
                services.store, settings.slack_post_interval_seconds, settings.slack_post_burst
            )
            client = build_client(settings, pace)
        self.client = client
        self.access = AccessControl(services.settings, self.client)
        self.tasks: set[asyncio.Task[Any]] = set()
        self.closing = False

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str = "triagebot") -> asyncio.Task[Any]:
        """Run work after an ack; exceptions are logged (the work itself reports failures to Slack)."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self.tasks.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self.tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                log.error("background task %s failed", name, exc_info=t.exception())

        task.add_done_callback(done)
        return task

    async def drain(self, timeout_s: float = 30.0) -> None:
        """Wait for background work on shutdown; cancel what is left after `timeout_s`."""
        self.closing = True
        pending = [t for t in self.tasks if not t.done()]
        if not pending:
            return
        _, still = await asyncio.wait(pending, timeout=timeout_s)
        for task in still:
            task.cancel()
        if still:
            await asyncio.gather(*still, return_exceptions=True)


_RUNTIMES: dict[int, SlackRuntime] = {}


def runtime_for(services: Services, client: AsyncWebClient | None = None) -> SlackRuntime:
    """The one SlackRuntime of these services (created on first use)."""
    key = id(services)
    rt = _RUNTIMES.get(key)
    if rt is None or rt.services is not services:
        rt = SlackRuntime(services, client)
        _RUNTIMES[key] = rt
        with contextlib.suppress(TypeError):
            weakref.finalize(services, _RUNTIMES.pop, key, None)
    return rt


# ---------------------------------------------------------------- small Slack helpers


def _message_args(payload: dict[str, Any]) -> dict[str, Any]:
    args: dict[str, Any] = {"text": payload.get("text") or " "}
    if payload.get("blocks"):
        args["blocks"] = payload["blocks"]
    if payload.get("metadata"):  # message metadata (`bot.outbox` tags report messages with their run)
        args["metadata"] = payload["metadata"]
    return args


async def post_message(
    client: AsyncWebClient, channel: str, payload: dict[str, Any], *, thread_ts: str | None = None
) -> str:
    """chat.postMessage without unfurls or link_names; returns the message ts."""
    resp = await client.chat_postMessage(
        channel=channel,
        thread_ts=thread_ts,
        unfurl_links=False,
        unfurl_media=False,
        **_message_args(payload),
    )
    return str(resp["ts"])


async def update_message(client: AsyncWebClient, channel: str, ts: str, payload: dict[str, Any]) -> None:
    await client.chat_update(channel=channel, ts=ts, **_message_args(payload))


async def permalink(client: AsyncWebClient, channel: str, ts: str) -> str:
    try:
        resp = await client.chat_getPermalink(channel=channel, message_ts=ts)
        return str(resp.get("permalink") or "")
    except SlackApiError as exc:
        log.warning("chat.getPermalink failed: %s", slack_error(exc))
        return ""


async def post_error(client: AsyncWebClient, channel: str, thread_ts: str | None, text: str) -> None:
    """Show a failure in the thread; never raises (it is the last resort)."""
    try:
        await post_message(client, channel, error_message(text), thread_ts=thread_ts)
    except Exception:
        log.exception("could not post an error message to %s", channel)


# ---------------------------------------------------------------- throttled card updates


class CardUpdater:
    """Coalesces card states: at most one chat.update per `interval_s`; `close()` sends the last one."""

    def __init__(self, send: Callable[[CardState], Awaitable[None]], interval_s: float) -> None:
        self._send = send
        self._interval = max(0.0, interval_s)
        self._latest: CardState | None = None
        self._dirty = asyncio.Event()
        self._closed = asyncio.Event()
        self._last_sent = 0.0
        self._task: asyncio.Task[None] | None = None
        self.sent = 0

    def push(self, state: CardState) -> None:
        self._latest = state
        self._dirty.set()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="card-updater")

    async def _loop(self) -> None:
        while not self._closed.is_set():
            await self._dirty.wait()
            wait = self._last_sent + self._interval - time.monotonic()
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closed.wait(), timeout=wait)
            if self._closed.is_set():
                return
            self._dirty.clear()
            if self._latest is not None:
                await self._safe_send(self._latest)

    async def _safe_send(self, state: CardState) -> None:
        self._last_sent = time.monotonic()
        try:
            await self._send(state)
            self.sent += 1
        except Exception as exc:
            log.warning("card update failed: %s", slack_error(exc))

    async def cancel(self) -> None:
        """Stop without sending anything more (idempotent)."""
        self._closed.set()
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def stop(self) -> None:
        """Stop after the update in flight (if any) without sending anything more (idempotent)."""
        self._closed.set()
        self._dirty.set()
        if self._task is not None:
            await self._task

    async def close(self, final: CardState | None = None) -> None:
        self._closed.set()
        self._dirty.set()
        if self._task is not None:
            await self._task
        state = final or (self._latest if self._dirty.is_set() else None)
        if state is not None:
            await self._safe_send(state)


class ProgressTracker:
    """Turns engine ProgressEvents into card states."""

    def __init__(self, state: CardState) -> None:
        self.state = state
        self.started = time.monotonic()
        self.pending: Counter[str] = Counter()
        self.finished: Counter[str] = Counter()

    def apply(self, event: ProgressEvent) -> CardState:
        if event.kind == "phase":
            if event.phase in ("intake", "research", "fetch"):
                self.state.status = "researching"
            elif event.phase == "synthesis":
                self.state.status = "synthesizing"
        elif event.kind == "task_started" and event.source:
            self.pending[event.source] += 1
        elif event.kind == "task_finished" and event.source:
            self.pending[event.source] -= 1
            self.finished[event.source] += 1
        self.state.sources_pending = sorted(s for s, n in self.pending.items() if n > 0)
        self.state.sources_done = sorted(s for s in self.finished if self.pending[s] <= 0)
        self.state.elapsed_s = time.monotonic() - self.started
        return self.state.model_copy(deep=True)
