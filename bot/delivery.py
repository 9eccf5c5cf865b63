"""Delivering a triage into Slack: the flow shared by `/triage`, Re-run, the poller and the webhook.

Two entry points:

- `triage_ticket` (`/triage`, Re-run): fetch ticket → claim (ticket id, version) → parent card in
  TRIAGE_CHANNEL (new or the ticket's existing thread) → engine.triage with live card updates (≤ 1 per
  SLACK_UPDATE_INTERVAL_SECONDS, coalesced, the final state always sent) → full report in the thread →
  finish_run → ticket state recorded. A human request always runs.
- `deliver_claim` (the `TriageQueue`'s `run`, i.e. poll, webhook and crash recovery): the claim is
  already ours. It fetches the ticket and asks `bot.retriage.intake_decision` what to do:
    triage    no thread with a report yet → the same flow as above (an existing thread is reused)
    retriage  the customer added a public comment → engine again; in the SAME thread "customer replied:
              … / what changed" (`retriage_message`) followed by the new report; the parent card is
              updated in place (never a new parent); if it fails, the card goes back to the previous
              report and the error is shown in the thread
    skip      agent comment, internal note, status/tag change, or re-triage turned off → nothing is
              posted; the run is finished with the previous report carried over (usage zeroed, so
              costs are not counted twice), so `latest_run` — used by thread follow-ups — still
              returns the report that is in the thread
  The ticket state (public customer comment count, version, and which run's report is in the thread)
  is stored after every delivery that did not fail; after a failure the previous state is kept, so
  the next change of the ticket tries again instead of losing the customer's reply.

Deliveries of the same ticket are serialised in this process (`SlackRuntime.ticket_lock`): a change
that arrives while the ticket is being triaged is decided after that triage recorded its state.

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
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
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
from bot.retriage import IntakeAction, intake_decision, new_customer_comments, state_of
from bot.settings import Settings, secret
from formatting.cards import (
    CardState,
    error_message,
    notice_message,
    parent_message,
    report_messages,
    retriage_message,
)
from triage.models import Ticket, TicketSummary, TriageReport, Usage
from triage.protocols import (
    ConfigError,
    ProgressEvent,
    SourceUnavailable,
    TicketNotFound,
    TriageError,
)
from triage.store import Claim, RunRecord, RunStatus, Store, ThreadRef, TicketState

if TYPE_CHECKING:
    from bot.wiring import Services

log = logging.getLogger(__name__)

HEARTBEAT_S = 30.0  # upper bound; the interval is min(HEARTBEAT_S, RUN_STALE_AFTER_SECONDS / 4)
THREAD_WAIT_S = 10.0  # how long a second caller waits for the owner's card before answering without a link
SLACK_TIMEOUT_S = 30
HUMAN_TRIGGERS = frozenset({"slash", "rerun", "cli"})  # always triage, never skip (also when recovered)
REPORT_RUN = "report_run"  # TicketState.extra key: the run whose report is in the ticket's thread
# Slack errors worth retrying later (the queue re-runs the claim after RUN_STALE_AFTER_SECONDS)
TRANSIENT_SLACK_ERRORS = frozenset(
    {"ratelimited", "rate_limited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)


def heartbeat_interval(settings: Settings) -> float:
    """How often a running triage refreshes its heartbeat (at least 4 beats per stale period)."""
    return max(0.05, min(HEARTBEAT_S, settings.run_stale_after_seconds / 4))


def recovery_interval(settings: Settings) -> float:
    """How often the queue looks for runs whose owner died."""
    return max(0.5, min(60.0, settings.run_stale_after_seconds / 2))


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


@dataclass
class _TicketLock:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


class SlackRuntime:
    """Slack client, access control and tracked background work for one `Services`."""

    def __init__(self, services: Services, client: AsyncWebClient | None = None) -> None:
        self.services = services
        self.client = client or build_client(services.settings)
        self.access = AccessControl(services.settings, self.client)
        self.tasks: set[asyncio.Task[Any]] = set()
        self.closing = False
        self._ticket_locks: dict[int, _TicketLock] = {}

    @contextlib.asynccontextmanager
    async def ticket_lock(self, ticket_id: int) -> AsyncIterator[None]:
        """One delivery per ticket at a time in this process (entries are dropped when unused)."""
        entry = self._ticket_locks.get(ticket_id)
        if entry is None:
            entry = self._ticket_locks[ticket_id] = _TicketLock()
        entry.users += 1
        try:
            async with entry.lock:
                yield
        finally:
            entry.users -= 1
            if entry.users == 0 and self._ticket_locks.get(ticket_id) is entry:
                del self._ticket_locks[ticket_id]

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
        return self.status in ("done", "running", "exists", "skipped")


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


def _stale(run: RunRecord, stale_after_s: float) -> bool:
    """A running run whose owner stopped heart-beating (crashed): a Re-run may start a new one."""
    if run.updated_at is None:
        return False
    updated = run.updated_at if run.updated_at.tzinfo else run.updated_at.replace(tzinfo=UTC)
    return (datetime.now(UTC) - updated).total_seconds() > stale_after_s


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
    every = heartbeat_interval(services.settings)
    while True:
        await asyncio.sleep(every)
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
        stale_after = services.settings.run_stale_after_seconds
        if latest is not None and latest.status == RunStatus.running and not _stale(latest, stale_after):
            result = await _existing(services, rt, latest)
            if on_thread is not None:
                await _safe_callback(on_thread, result)
            return result
        version = f"{version}#rerun-{uuid.uuid4().hex[:8]}"

    claim = await store.claim_run(
        ticket_id, version, trigger, stale_after_s=services.settings.run_stale_after_seconds
    )
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

    async with rt.ticket_lock(ticket_id):
        previous_state = await store.get_ticket_state(ticket_id)
        result = await _run(services, rt, ticket, state, result)
        if result.status == "done":
            await _record_state(store, ticket, previous_state, report_run=run_id)
    return result


async def _safe_callback(callback: OnThread, result: DeliveryResult) -> None:
    try:
        await callback(result)
    except Exception:
        log.exception("on_thread callback failed")


IntroFn = Callable[[TriageReport], dict[str, Any]]


async def _run(
    services: Services,
    rt: SlackRuntime,
    ticket: Ticket,
    state: CardState,
    result: DeliveryResult,
    *,
    intro: IntroFn | None = None,
    restore: CardState | None = None,
    what: str = "Triage",
) -> DeliveryResult:
    """Run the engine with live card updates, then post the report in the thread.

    `intro(report)` is posted in the thread before the report (the re-triage "customer replied"
    message); on failure the card shows `restore` (the previous report) instead of "failed".
    """

    async def send(card: CardState) -> None:
        await update_message(rt.client, result.channel, result.thread_ts, parent_message(card))

    updater = CardUpdater(send, services.settings.slack_update_interval_seconds)
    try:
        return await _run_tracked(
            services, rt, ticket, state, result, updater, intro=intro, restore=restore, what=what
        )
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
    *,
    intro: IntroFn | None,
    restore: CardState | None,
    what: str,
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
        await updater.close(restore or final)
        await post_error(client, channel, thread_ts, f"{what} of #{ticket.id} failed: {message}")
        result.status, result.message = "failed", message
        return result
    finally:
        beat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beat

    await store.finish_run(run_id, report)
    try:
        if intro is not None:
            await post_message(client, channel, intro(report), thread_ts=thread_ts)
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
    final.product_area = report.product_area_label
    final.sources_pending = []
    final.elapsed_s = report.timings.total_ms / 1000 if report.timings.total_ms else tracker.state.elapsed_s
    await updater.close(final)
    result.status, result.report = "done", report
    return result


# ---------------------------------------------------------------- automatic triggers: the queue's run


def _transient(exc: Exception) -> bool:
    """Worth retrying later: Slack rate limits/outages and network errors (not `not_in_channel` …)."""
    if isinstance(exc, SlackApiError):
        return slack_error(exc) in TRANSIENT_SLACK_ERRORS
    return not isinstance(exc, TriageError)


async def _report_run(store: Store, state: TicketState | None, exclude: str) -> RunRecord | None:
    """The run whose report is in the ticket's thread (recorded in the ticket state), if any."""
    run_id = state.extra.get(REPORT_RUN, "") if state is not None else ""
    if not run_id or run_id == exclude:
        return None
    run = await store.get_run(run_id)
    return run if run is not None and run.report is not None else None


async def _record_state(
    store: Store, ticket: Ticket, previous: TicketState | None, *, report_run: str | None
) -> None:
    """Remember what the intake saw (and, after a posted report, which run it was)."""
    extra = dict(previous.extra) if previous is not None else {}
    if report_run:
        extra[REPORT_RUN] = report_run
    try:
        await store.set_ticket_state(state_of(ticket).model_copy(update={"extra": extra}))
    except Exception:
        log.exception("could not record the state of ticket #%s", ticket.id)


def _excerpt(services: Services, previous: TicketState | None, ticket: Ticket) -> str:
    """The customer's new public comments, redacted like the model input, for the thread update."""
    bodies = [c.body.strip() for c in new_customer_comments(previous, ticket) if c.body.strip()]
    return services.engine.redactor.redact(" … ".join(bodies))[:1500]


async def deliver_claim(
    services: Services, claim: Claim, trigger: str, *, ticket: Ticket | None = None
) -> DeliveryResult:
    """Deliver a run that is already ours (poll, webhook, or a crashed run recovered by the queue).

    See the module docstring for triage / retriage / skip. Never posts a second parent for a ticket
    that has a thread. Raises only for transient problems (Zendesk unavailable, Slack outage or
    network errors before anything was posted), so the `TriageQueue` retries the claim after
    RUN_STALE_AFTER_SECONDS; everything else ends the run (done, failed or skipped) and is returned.
    """
    rt = runtime_for(services)
    store, settings = services.store, services.settings
    run_id, ticket_id = claim.run.run_id, claim.run.ticket_id
    channel = settings.triage_channel

    async def give_up(status: str, message: str) -> DeliveryResult:
        log.error("triage of #%s (%s) not delivered: %s", ticket_id, trigger, message)
        await store.fail_run(run_id, message[:1000])
        return DeliveryResult(ticket_id, status, run_id=run_id, message=message)

    if not channel:
        return await give_up("config_error", "TRIAGE_CHANNEL is not set (the channel id reports go to).")

    async with rt.ticket_lock(ticket_id):
        if ticket is None:
            try:
                ticket = await services.engine.fetch(ticket_id)
            except (TicketNotFound, ConfigError) as exc:
                failed = _fetch_error(ticket_id, exc)
                return await give_up(failed.status, f"zendesk: {failed.message}")
            # SourceUnavailable and network errors propagate: the queue retries the claim later
        allowed = await rt.access.check_delivery_channel(channel)
        if not allowed.allowed:
            return await give_up("config_error", allowed.reason)

        ref = await store.get_thread(ticket_id)
        previous_state = await store.get_ticket_state(ticket_id)
        previous_run = await _report_run(store, previous_state, exclude=run_id)
        if trigger in HUMAN_TRIGGERS or claim.run.trigger in HUMAN_TRIGGERS:
            action, reason = IntakeAction.triage, f"{trigger} request"
        else:
            # a thread without a report in it (the first triage failed or was interrupted) counts as
            # no thread: the ticket is triaged into that thread instead of being skipped forever
            decision = intake_decision(
                previous_state,
                ref is not None and previous_run is not None,
                ticket,
                retriage_on_reply=settings.zendesk_retriage_on_reply,
            )
            action, reason = decision.action, decision.reason

        if action is IntakeAction.skip:
            assert previous_run is not None and previous_run.report is not None and ref is not None
            carried = previous_run.report.model_copy(update={"usage": Usage()})
            await store.set_run_thread(run_id, ref.channel, ref.thread_ts)
            await store.finish_run(run_id, carried)
            await _record_state(store, ticket, previous_state, report_run=None)
            log.info(
                "#%s (%s, version %s): nothing to post — %s", ticket_id, trigger, ticket.version_key, reason
            )
            return DeliveryResult(
                ticket_id,
                "skipped",
                run_id=run_id,
                channel=ref.channel,
                thread_ts=ref.thread_ts,
                message=reason,
                report=carried,
            )

        state = _card(ticket, run_id)
        try:
            channel, thread_ts, reused = await _open_thread(services, rt, ticket, run_id, channel, state)
            await store.set_run_thread(run_id, channel, thread_ts)
        except Exception as exc:
            if _transient(exc):
                raise
            error = slack_error(exc)
            hint = (
                " — invite the bot to the channel (/invite @triagebot)" if error == "not_in_channel" else ""
            )
            return await give_up("error", f"Could not post to TRIAGE_CHANNEL {channel}: {error}{hint}.")

        url = await permalink(rt.client, channel, thread_ts)
        state.thread_url = url
        result = DeliveryResult(
            ticket_id,
            "running",
            run_id=run_id,
            channel=channel,
            thread_ts=thread_ts,
            thread_url=url,
            owned=True,
        )
        log.info("#%s (%s): %s — %s", ticket_id, trigger, action.value, reason)

        if action is IntakeAction.retriage:
            assert previous_run is not None and previous_run.report is not None
            previous_report = previous_run.report
            excerpt = _excerpt(services, previous_state, ticket)

            def intro(report: TriageReport) -> dict[str, Any]:
                return retriage_message(report, previous_report, excerpt)

            restore = CardState(
                ticket=TicketSummary.of(ticket),
                run_id=previous_run.run_id,
                status="done",
                product_area=previous_report.product_area_label,
                report=previous_report,
                thread_url=url,
                ticket_url=ticket.url,
            )
            result = await _run(
                services,
                rt,
                ticket,
                state,
                result,
                intro=intro,
                restore=restore,
                what="Re-triage after the customer's reply",
            )
        else:
            if reused:
                why = (
                    "the previous attempt was interrupted (restart or crash)"
                    if claim.resumed
                    else "no report was posted in this thread yet"
                )
                with contextlib.suppress(SlackApiError):
                    await post_message(
                        rt.client,
                        channel,
                        notice_message(
                            f"Triaging #{ticket_id} again: {why}. The card above follows it.", "🔄"
                        ),
                        thread_ts=thread_ts,
                    )
            result = await _run(services, rt, ticket, state, result)

        if result.status == "done":
            await _record_state(store, ticket, previous_state, report_run=run_id)
        return result
