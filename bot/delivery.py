"""Delivering a triage into Slack: the flow shared by `/triage`, Re-run, the poller and the webhook.

    fetch ticket → claim (ticket id, version) → parent card in TRIAGE_CHANNEL (new or the ticket's
    existing thread) → engine.triage with live card updates (≤ 1 per SLACK_UPDATE_INTERVAL_SECONDS,
    coalesced, the final state always sent) → full report in the thread → finish_run.

A claim that is not ours means somebody else is (or was) triaging that ticket version: we return the
existing thread instead of starting a second run. Every failure after a parent exists is shown in the
thread (and on the card); failures before that are returned to the caller, who shows them ephemerally.

`SlackRuntime` is the per-process Slack side of a `Services`: the Web API client (with slack-sdk's
retry handlers), access control and the set of background tasks that shutdown waits for. It is
created once per `Services` (`runtime_for`), so the Bolt app and the poller share one of each.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
import weakref
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from bot.access import AccessControl
from bot.settings import Settings, secret
from formatting.cards import CardState, error_message, parent_message, report_messages
from triage.models import Ticket, TicketSummary, TriageReport
from triage.protocols import (
    ConfigError,
    ProgressEvent,
    SourceUnavailable,
    TicketNotFound,
    TriageError,
)
from triage.store import RunRecord, RunStatus, ThreadRef

if TYPE_CHECKING:
    from bot.wiring import Services

log = logging.getLogger(__name__)

HEARTBEAT_S = 30.0
STALE_AFTER_S = 600.0  # the store's default claim takeover age
THREAD_WAIT_S = 10.0  # how long a second caller waits for the owner's card before answering without a link
SLACK_TIMEOUT_S = 30


# ---------------------------------------------------------------- the per-process Slack runtime


def build_client(settings: Settings) -> AsyncWebClient:
    token = secret(settings.slack_bot_token)
    if not token:
        raise ConfigError(
            "SLACK_BOT_TOKEN is not set (Slack app → OAuth & Permissions → Bot User OAuth Token)"
        )
    base_url = settings.slack_api_url or "https://slack.com/api/"
    if not base_url.endswith("/"):
        base_url += "/"  # slack-sdk joins with urljoin: a path without "/" loses its last segment
    return AsyncWebClient(
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
        self.client = client or build_client(services.settings)
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
        log.warning("chat.getPermalink failed: %s", exc.response.get("error"))
        return ""


def slack_error(exc: Exception) -> str:
    if isinstance(exc, SlackApiError):
        return str(exc.response.get("error") or "slack_error")
    return type(exc).__name__


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


# ---------------------------------------------------------------- the flow


@dataclass
class DeliveryResult:
    """What happened.

    `status`: done | failed | running | exists | not_found | config_error | unavailable | error.
    """

    ticket_id: int
    status: str
    run_id: str = ""
    channel: str = ""
    thread_ts: str = ""
    thread_url: str = ""
    message: str = ""
    owned: bool = False
    report: TriageReport | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.status in ("done", "running", "exists")


OnThread = Callable[[DeliveryResult], Awaitable[None]]


async def _existing(services: Services, rt: SlackRuntime, run: RunRecord) -> DeliveryResult:
    if run.status == RunStatus.running and not run.thread_ts:
        # the owner is about to post the card: wait for it briefly so we can link to it
        deadline = time.monotonic() + THREAD_WAIT_S
        while time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            fresh = await services.store.get_run(run.run_id)
            if fresh is None or fresh.thread_ts or fresh.status != RunStatus.running:
                run = fresh or run
                break
    channel, ts = run.channel or "", run.thread_ts or ""
    if not ts:
        ref = await services.store.get_thread(run.ticket_id)
        if ref is not None:
            channel, ts = ref.channel, ref.thread_ts
    url = await permalink(rt.client, channel, ts) if ts else ""
    status = "running" if run.status == RunStatus.running else "exists"
    if run.status == RunStatus.done:
        status = "exists"
    return DeliveryResult(
        ticket_id=run.ticket_id,
        status=status,
        run_id=run.run_id,
        channel=channel,
        thread_ts=ts,
        thread_url=url,
    )


def _stale(run: RunRecord) -> bool:
    """A running run whose owner stopped heart-beating (crashed): a Re-run may start a new one."""
    if run.updated_at is None:
        return False
    updated = run.updated_at if run.updated_at.tzinfo else run.updated_at.replace(tzinfo=UTC)
    return (datetime.now(UTC) - updated).total_seconds() > STALE_AFTER_S


def _card(ticket: Ticket, run_id: str) -> CardState:
    return CardState(ticket=TicketSummary.of(ticket), run_id=run_id, status="queued", ticket_url=ticket.url)


async def _open_thread(
    services: Services, rt: SlackRuntime, ticket: Ticket, run_id: str, channel: str, state: CardState
) -> tuple[str, str, bool]:
    """Post the parent card, or reuse the ticket's thread. Returns (channel, thread_ts, reused)."""
    client = rt.client
    ref = await services.store.get_thread(ticket.id)
    if ref is not None:
        try:
            await update_message(client, ref.channel, ref.thread_ts, parent_message(state))
            return ref.channel, ref.thread_ts, True
        except SlackApiError as exc:
            log.warning(
                "could not reuse the thread of #%s (%s); posting a new one", ticket.id, slack_error(exc)
            )
            ts = await post_message(client, channel, parent_message(state))
            return channel, ts, False
    ts = await post_message(client, channel, parent_message(state))
    if not await services.store.set_thread(ThreadRef(ticket_id=ticket.id, channel=channel, thread_ts=ts)):
        # somebody opened the ticket's thread at the same moment: use theirs, drop ours
        ref = await services.store.get_thread(ticket.id)
        if ref is not None:
            with contextlib.suppress(SlackApiError):
                await client.chat_delete(channel=channel, ts=ts)
            await update_message(client, ref.channel, ref.thread_ts, parent_message(state))
            return ref.channel, ref.thread_ts, True
    return channel, ts, False


async def _heartbeat(services: Services, run_id: str) -> None:
    while True:
        await asyncio.sleep(HEARTBEAT_S)
        with contextlib.suppress(Exception):
            await services.store.heartbeat(run_id)


def _fetch_error(ticket_id: int, exc: Exception) -> DeliveryResult:
    if isinstance(exc, TicketNotFound):
        return DeliveryResult(
            ticket_id, "not_found", message=f"Ticket #{ticket_id} was not found in Zendesk."
        )
    if isinstance(exc, ConfigError):
        return DeliveryResult(ticket_id, "config_error", message=f"Configuration problem: {exc}")
    if isinstance(exc, SourceUnavailable):
        return DeliveryResult(ticket_id, "unavailable", message=f"Zendesk is unavailable right now: {exc}")
    if isinstance(exc, TriageError):
        return DeliveryResult(ticket_id, "error", message=str(exc))
    return DeliveryResult(
        ticket_id, "error", message=f"Could not fetch ticket #{ticket_id} ({type(exc).__name__})."
    )


async def triage_ticket(
    services: Services,
    ticket_id: int,
    *,
    trigger: str,
    invoker: str | None = None,
    force: bool = False,
    on_thread: OnThread | None = None,
) -> DeliveryResult:
    """Triage one ticket into TRIAGE_CHANNEL (see the module docstring).

    `on_thread` is awaited once the thread is known — ours (status "running", owned) or the existing
    one (status "running"/"exists") — so `/triage` can answer the invoker before the report is done.
    `force` (Re-run) triages again under a fresh version key and reuses the ticket's thread.
    """
    rt = runtime_for(services)
    store = services.store
    channel = services.settings.triage_channel
    if not channel:
        return DeliveryResult(
            ticket_id, "config_error", message="TRIAGE_CHANNEL is not set (the channel id reports go to)."
        )

    try:
        ticket = await services.engine.fetch(ticket_id)
    except Exception as exc:
        return _fetch_error(ticket_id, exc)

    decision = await rt.access.check_delivery_channel(channel)
    if not decision.allowed:
        return DeliveryResult(ticket_id, "config_error", message=decision.reason)

    version = ticket.version_key
    if force:
        latest = await store.latest_run(ticket_id)
        if latest is not None and latest.status == RunStatus.running and not _stale(latest):
            result = await _existing(services, rt, latest)
            if on_thread is not None:
                await _safe_callback(on_thread, result)
            return result
        version = f"{version}#rerun-{uuid.uuid4().hex[:8]}"

    claim = await store.claim_run(ticket_id, version, trigger)
    if not claim.owned:
        result = await _existing(services, rt, claim.run)
        if on_thread is not None:
            await _safe_callback(on_thread, result)
        return result

    run_id = claim.run.run_id
    state = _card(ticket, run_id)
    try:
        channel, thread_ts, reused = await _open_thread(services, rt, ticket, run_id, channel, state)
        await store.set_run_thread(run_id, channel, thread_ts)
    except Exception as exc:
        error = slack_error(exc)
        await store.fail_run(run_id, f"slack: {error}")
        hint = " — invite the bot to the channel (/invite @triagebot)" if error == "not_in_channel" else ""
        return DeliveryResult(
            ticket_id,
            "error",
            run_id=run_id,
            message=f"Could not post to TRIAGE_CHANNEL {channel}: {error}{hint}.",
        )

    url = await permalink(rt.client, channel, thread_ts)
    state.thread_url = url
    result = DeliveryResult(
        ticket_id, "running", run_id=run_id, channel=channel, thread_ts=thread_ts, thread_url=url, owned=True
    )
    if reused:
        who = f" (requested by <@{invoker}>)" if invoker else ""
        with contextlib.suppress(SlackApiError):
            await post_message(
                rt.client,
                channel,
                {
                    "text": f":arrows_counterclockwise: New triage run for #{ticket_id}{who}: "
                    "the card above follows it."
                },
                thread_ts=thread_ts,
            )
    if on_thread is not None:
        await _safe_callback(on_thread, result)

    return await _run(services, rt, ticket, state, result)


async def _safe_callback(callback: OnThread, result: DeliveryResult) -> None:
    try:
        await callback(result)
    except Exception:
        log.exception("on_thread callback failed")


async def _run(
    services: Services, rt: SlackRuntime, ticket: Ticket, state: CardState, result: DeliveryResult
) -> DeliveryResult:
    async def send(card: CardState) -> None:
        await update_message(rt.client, result.channel, result.thread_ts, parent_message(card))

    updater = CardUpdater(send, services.settings.slack_update_interval_seconds)
    try:
        return await _run_tracked(services, rt, ticket, state, result, updater)
    finally:
        # on cancellation (shutdown) the run stays "running" and is taken over once its heartbeat is stale
        await updater.cancel()


async def _run_tracked(
    services: Services,
    rt: SlackRuntime,
    ticket: Ticket,
    state: CardState,
    result: DeliveryResult,
    updater: CardUpdater,
) -> DeliveryResult:
    client, store = rt.client, services.store
    channel, thread_ts, run_id = result.channel, result.thread_ts, result.run_id
    tracker = ProgressTracker(state)

    async def progress(event: ProgressEvent) -> None:
        updater.push(tracker.apply(event))

    beat = asyncio.get_running_loop().create_task(_heartbeat(services, run_id), name=f"heartbeat-{run_id}")
    try:
        async with services.triage_slots:
            updater.push(tracker.apply(ProgressEvent(kind="phase", phase="research")))
            report = await services.engine.triage(ticket, run_id=run_id, progress=progress)
    except Exception as exc:
        message = str(exc) if isinstance(exc, TriageError) else f"{type(exc).__name__}: {str(exc)[:300]}"
        log.warning("triage of #%s failed: %s", ticket.id, message)
        await store.fail_run(run_id, message[:1000])
        final = tracker.state.model_copy(deep=True)
        final.status, final.error = "failed", message[:500]
        await updater.close(final)
        await post_error(client, channel, thread_ts, f"Triage of #{ticket.id} failed: {message}")
        result.status, result.message = "failed", message
        return result
    finally:
        beat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beat

    await store.finish_run(run_id, report)
    try:
        for payload in report_messages(report):
            await post_message(client, channel, payload, thread_ts=thread_ts)
    except Exception as exc:
        await post_error(
            client,
            channel,
            thread_ts,
            f"The report for #{ticket.id} is ready but could not be posted in full ({slack_error(exc)}).",
        )
    final = tracker.state.model_copy(deep=True)
    final.status, final.report, final.error = "done", report, ""
    final.product_area = report.product_area.label
    final.sources_pending = []
    final.elapsed_s = report.timings.total_ms / 1000 if report.timings.total_ms else tracker.state.elapsed_s
    await updater.close(final)
    result.status, result.report = "done", report
    return result
