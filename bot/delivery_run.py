"""One triage run delivered into its Slack thread: the parts `bot.delivery`'s entry points share.

- `open_thread`: post the parent card in TRIAGE_CHANNEL, or reuse the ticket's thread (the first
  thread of a ticket wins across replicas; a loser deletes its own card; a run taken over adopts
  the card its previous owner posted but did not record, found by its message metadata);
- `run_triage`: the engine with live card updates (`CardUpdater`: ≤ 1 per
  SLACK_UPDATE_INTERVAL_SECONDS, coalesced), then the report stored with its outbox and posted
  (`bot.outbox`); a failure is shown in the thread and on the card;
- `heartbeating`: any step of a run while its heartbeat is refreshed; a refused heartbeat (another
  replica took the run over) cancels the step and raises `Superseded`;
- `resume_outbox`: a run taken over after its report was stored but not (fully) posted: post the rest.

Every write goes through the run's `FencedRun`, so each checks the run's fencing token.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from slack_sdk.errors import SlackApiError

from bot.fenced_run import FencedRun, Superseded
from bot.outbox import post_outbox
from bot.settings import Settings
from bot.slack_runtime import CardUpdater, ProgressTracker, SlackRuntime, permalink, slack_error
from formatting.cards import CardState, parent_message, report_messages
from triage.models import Ticket, TicketSummary, TriageReport
from triage.protocols import ProgressEvent, TriageError
from triage.store import Claim, Outbox, ThreadRef, TicketState

if TYPE_CHECKING:
    from bot.wiring import Services

log = logging.getLogger(__name__)
T = TypeVar("T")

CARD_EVENT = "triagebot_card"  # message metadata event_type of a parent card
CARD_READ_BACK_PAGES = 3  # conversations.history pages (200 messages each) searched for a lost card


HEARTBEAT_S = 30.0  # upper bound; the interval is min(HEARTBEAT_S, RUN_STALE_AFTER_SECONDS / 4)


def heartbeat_interval(settings: Settings) -> float:
    """How often a running triage refreshes its heartbeat (at least 4 beats per stale period)."""
    return max(0.05, min(HEARTBEAT_S, settings.run_stale_after_seconds / 4))


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


def card_state(ticket: Ticket, run_id: str) -> CardState:
    return CardState(ticket=TicketSummary.of(ticket), run_id=run_id, status="queued", ticket_url=ticket.url)


def _card_message(state: CardState, run_id: str, ticket_id: int) -> dict[str, Any]:
    """The parent card, with message metadata naming its run (how a takeover finds a lost card)."""
    metadata = {"event_type": CARD_EVENT, "event_payload": {"run_id": run_id, "ticket_id": ticket_id}}
    return {**parent_message(state), "metadata": metadata}


async def _lost_card(run: FencedRun, channel: str) -> str | None:
    """A card of this run that its previous owner posted but died before recording (its ts), if any.

    Reads the channel's latest messages (conversations.history with metadata); a failed read is
    logged and counts as "none" (a new card is posted, as without this check).
    """
    cursor: str | None = None
    try:
        for _ in range(CARD_READ_BACK_PAGES):
            resp = await run.client.conversations_history(
                channel=channel, include_all_metadata=True, limit=200, cursor=cursor
            )
            for message in resp.get("messages") or []:
                metadata = message.get("metadata") or {}
                payload = metadata.get("event_payload") or {}
                if metadata.get("event_type") == CARD_EVENT and payload.get("run_id") == run.run_id:
                    return str(message["ts"])
            cursor = (resp.get("response_metadata") or {}).get("next_cursor") or None
            if cursor is None:
                return None
    except Exception as exc:
        log.warning("run %s: %s not read back for a lost card (%s)", run.run_id, channel, slack_error(exc))
    return None


async def open_thread(
    services: Services,
    run: FencedRun,
    ticket: Ticket,
    channel: str,
    state: CardState,
    *,
    resumed: bool = False,
) -> tuple[str, str, bool]:
    """Post the parent card (or reuse the ticket's thread) and record it on the run.

    `resumed` (the run was taken over): a card the previous owner posted but did not record is found
    by its metadata and adopted instead of posting a second one. Returns (channel, thread_ts, reused).
    Every Slack write is fenced (`run`).
    """
    ref = await services.store.get_thread(ticket.id)
    if ref is not None:
        try:
            await run.update(ref.channel, ref.thread_ts, parent_message(state))
            await run.set_thread(ref.channel, ref.thread_ts)
            return ref.channel, ref.thread_ts, True
        except SlackApiError as exc:
            log.warning(
                "could not reuse the thread of #%s (%s); posting a new one", ticket.id, slack_error(exc)
            )
            ts = await run.post(channel, _card_message(state, run.run_id, ticket.id))
            await run.set_thread(channel, ts)
            return channel, ts, False
    lost = await _lost_card(run, channel) if resumed else None
    if lost is not None:
        log.info(
            "#%s: adopting the card %s posted by the previous owner of run %s", ticket.id, lost, run.run_id
        )
        await run.update(channel, lost, parent_message(state))
    ts = lost or await run.post(channel, _card_message(state, run.run_id, ticket.id))
    if not await services.store.set_thread(ThreadRef(ticket_id=ticket.id, channel=channel, thread_ts=ts)):
        # somebody opened the ticket's thread at the same moment: use theirs, drop ours
        ref = await services.store.get_thread(ticket.id)
        if ref is not None:
            with contextlib.suppress(SlackApiError):
                await run.delete(channel, ts)
            await run.update(ref.channel, ref.thread_ts, parent_message(state))
            await run.set_thread(ref.channel, ref.thread_ts)
            return ref.channel, ref.thread_ts, True
    await run.set_thread(channel, ts)
    return channel, ts, False


async def heartbeating(services: Services, run: FencedRun, coro: Awaitable[T]) -> T:
    """Await `coro` while heart-beating the run; a refused heartbeat (taken over) cancels the work."""
    work = asyncio.ensure_future(coro)
    lost = False

    async def beat() -> None:
        nonlocal lost
        every = heartbeat_interval(services.settings)
        while not work.done():
            await asyncio.sleep(every)
            try:
                held = await run.heartbeat()
            except Exception as exc:  # a store hiccup: the next beat tries again
                log.warning("heartbeat of run %s failed: %s", run.run_id, exc)
                continue
            if not held and not work.done():
                lost = True
                work.cancel()
                return

    beater = asyncio.get_running_loop().create_task(beat(), name=f"heartbeat-{run.run_id}")
    try:
        return await work
    except asyncio.CancelledError:
        if lost:
            raise Superseded(run.run_id, run.token) from None
        raise
    finally:
        beater.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beater


async def resume_outbox(
    services: Services, rt: SlackRuntime, run: FencedRun, claim: Claim
) -> DeliveryResult | None:
    """A run taken over after its report was stored but not (fully) posted: post the rest, once.

    None when the run has no outbox (it died before its report was stored: triage it again).
    """
    outbox = await services.store.get_outbox(run.run_id)
    if outbox is None:
        return None
    log.info(
        "#%s: run %s was stored but not posted (%d/%d messages) when its owner stopped; posting it (token %d)",
        claim.run.ticket_id,
        run.run_id,
        outbox.sent,
        len(outbox.messages),
        run.token,
    )
    await heartbeating(services, run, post_outbox(services.store, run, outbox, read_back=True))
    return DeliveryResult(
        claim.run.ticket_id,
        "done",
        run_id=run.run_id,
        channel=outbox.channel,
        thread_ts=outbox.thread_ts,
        thread_url=await permalink(rt.client, outbox.channel, outbox.thread_ts),
        owned=True,
        report=claim.run.report,
    )


IntroFn = Callable[[TriageReport], dict[str, Any]]


async def run_triage(
    services: Services,
    run: FencedRun,
    ticket: Ticket,
    state: CardState,
    result: DeliveryResult,
    state_after: TicketState,
    *,
    intro: IntroFn | None = None,
    restore: CardState | None = None,
    what: str = "Triage",
) -> DeliveryResult:
    """Run the engine with live card updates, then post the report in the thread through the outbox.

    `intro(report)` is posted in the thread before the report (the re-triage "customer replied"
    message); on failure the card shows `restore` (the previous report) instead of "failed". Once
    the report is posted, `state_after` is recorded as the ticket's state.
    """

    async def send(card: CardState) -> None:
        with contextlib.suppress(Superseded):  # the next fenced write stops the delivery
            await run.update(result.channel, result.thread_ts, parent_message(card))

    updater = CardUpdater(send, services.settings.slack_update_interval_seconds)
    try:
        return await _run_tracked(
            services,
            run,
            ticket,
            state,
            result,
            updater,
            state_after,
            intro=intro,
            restore=restore,
            what=what,
        )
    finally:
        # on cancellation (shutdown) the run stays "running" and is taken over once its heartbeat is stale
        await updater.cancel()


async def _run_tracked(
    services: Services,
    run: FencedRun,
    ticket: Ticket,
    state: CardState,
    result: DeliveryResult,
    updater: CardUpdater,
    state_after: TicketState,
    *,
    intro: IntroFn | None,
    restore: CardState | None,
    what: str,
) -> DeliveryResult:
    channel, thread_ts = result.channel, result.thread_ts
    tracker = ProgressTracker(state)

    async def progress(event: ProgressEvent) -> None:
        updater.push(tracker.apply(event))

    try:
        async with services.triage_slots:
            updater.push(tracker.apply(ProgressEvent(kind="phase", phase="research")))
            work = services.engine.triage(ticket, run_id=run.run_id, progress=progress)
            report = await heartbeating(services, run, work)
    except Superseded:
        raise
    except Exception as exc:
        message = str(exc) if isinstance(exc, TriageError) else f"{type(exc).__name__}: {str(exc)[:300]}"
        log.warning("triage of #%s failed: %s", ticket.id, message)
        final = tracker.state.model_copy(deep=True)
        final.status, final.error = "failed", message[:500]
        await updater.close(restore or final)
        await run.post_error(channel, thread_ts, f"{what} of {ticket.ref} failed: {message}")
        await run.fail(message[:1000])
        result.status, result.message = "failed", message
        return result

    final = tracker.state.model_copy(deep=True)
    final.status, final.report, final.error = "done", report, ""
    final.product_area = report.product_area_label
    final.sources_pending = []
    final.elapsed_s = report.timings.total_ms / 1000 if report.timings.total_ms else tracker.state.elapsed_s
    outbox = Outbox(
        channel=channel,
        thread_ts=thread_ts,
        ticket_ref=ticket.ref,
        messages=([intro(report)] if intro is not None else []) + report_messages(report),
        card=parent_message(final),
        ticket_state=state_after,
    )
    await run.stage(report, outbox)  # stored, not yet posted: a takeover posts it (bot.outbox)
    await updater.stop()  # the live card stops here; the outbox carries the final one
    await heartbeating(services, run, post_outbox(services.store, run, outbox))
    result.status, result.report = "done", report
    return result
