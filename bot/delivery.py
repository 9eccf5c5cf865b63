"""Delivering a triage into Slack: the flow shared by `/triage`, Re-run, the poller and the webhook.

Two entry points:

- `triage_ticket` (`/triage`, Re-run): fetch ticket → claim (ticket id, version) → parent card in
  TRIAGE_CHANNEL (new or the ticket's existing thread) → engine.triage with live card updates (≤ 1 per
  SLACK_UPDATE_INTERVAL_SECONDS, coalesced) → report stored with its outbox → the outbox posted (the
  report in the thread, the final card, the ticket state) → run done. A human request always runs.
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

Deliveries of the same ticket are serialised across replicas (`store.ticket_lock`: a PostgreSQL
advisory lock; in-process on SQLite): a change that arrives while the ticket is being triaged — on this
replica or another — is decided after that triage recorded its state.

Fencing: every write of a run (card, report, error, delete, thread, finish, fail, heartbeat) goes
through one `bot.fenced_run.FencedRun`, which checks the run's fencing token. When another replica
took the run over (our heartbeat stalled past RUN_STALE_AFTER_SECONDS), the first refused write
raises `Superseded` and the delivery stops quietly with status "superseded".

Stored, not yet posted: a finished report is stored with everything left to post (`bot.outbox`) while
the run is still running. When a replica dies after that, whoever takes the run over (the queue's
recovery, or a claim of the same version) posts what is left of it into the existing thread instead
of triaging again (`_resume_outbox`).

A claim that is not ours means somebody else is (or was) triaging that ticket version: we return the
existing thread instead of starting a second run. Every failure after a parent exists is shown in the
thread (and on the card); failures before that are returned to the caller, who shows them ephemerally.

Running one triage into its thread (card, live updates, outbox, heartbeats) is `bot.delivery_run`;
the Slack runtime (client, posting helpers, card pacing) is `bot.slack_runtime`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from slack_sdk.errors import SlackApiError

from bot.delivery_run import (
    DeliveryResult,
    card_state,
    heartbeat_interval,
    heartbeating,
    open_thread,
    resume_outbox,
    run_triage,
)
from bot.fenced_run import FencedRun, Superseded
from bot.retriage import IntakeAction, intake_decision, new_customer_comments, state_of
from bot.settings import Settings
from bot.slack_runtime import SlackRuntime, permalink, runtime_for, slack_error
from formatting.cards import CardState, notice_message, retriage_message
from integrations.pasted import pasted_version
from triage.models import Ticket, TicketSummary, TriageReport, Usage
from triage.protocols import ConfigError, SourceUnavailable, TicketNotFound, TriageError
from triage.store import Claim, RunRecord, RunStatus, Store, TicketState

if TYPE_CHECKING:
    from bot.wiring import Services

log = logging.getLogger(__name__)

__all__ = [
    "REPORT_RUN",
    "DeliveryResult",
    "OnThread",
    "deliver_claim",
    "heartbeat_interval",
    "recovery_interval",
    "triage_ticket",
]

THREAD_WAIT_S = 10.0  # how long a second caller waits for the owner's card before answering without a link
HUMAN_TRIGGERS = frozenset({"slash", "rerun", "cli"})  # always triage, never skip (also when recovered)
REPORT_RUN = "report_run"  # TicketState.extra key: the run whose report is in the ticket's thread
# Slack errors worth retrying later (the queue re-runs the claim after RUN_STALE_AFTER_SECONDS)
TRANSIENT_SLACK_ERRORS = frozenset(
    {"ratelimited", "rate_limited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)


def recovery_interval(settings: Settings) -> float:
    """How often the queue looks for runs whose owner died."""
    return max(0.5, min(60.0, settings.run_stale_after_seconds / 2))


# ---------------------------------------------------------------- the flow


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
    ticket: Ticket | None = None,
) -> DeliveryResult:
    """Triage one ticket into TRIAGE_CHANNEL (see the module docstring).

    `on_thread` is awaited once the thread is known — ours (status "running", owned) or the existing
    one (status "running"/"exists") — so `/triage` can answer the invoker before the report is done.
    `force` (Re-run) triages again under a fresh version key and reuses the ticket's thread.
    `ticket` is a pasted ticket (a Slack message, the /triage modal): it is not fetched, and its claim
    version is a hash of its content (`integrations.pasted.pasted_version`).
    """
    rt = runtime_for(services)
    store = services.store
    channel = services.settings.triage_channel
    if not channel:
        return DeliveryResult(
            ticket_id, "config_error", message="TRIAGE_CHANNEL is not set (the channel id reports go to)."
        )

    if ticket is None:
        try:
            ticket = await services.engine.fetch(ticket_id)
        except Exception as exc:
            return _fetch_error(ticket_id, exc)

    decision = await rt.access.check_delivery_channel(channel)
    if not decision.allowed:
        return DeliveryResult(ticket_id, "config_error", message=decision.reason)

    version = pasted_version(ticket)
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
    run = FencedRun(rt.client, store, run_id, claim.token)
    try:
        if claim.resumed:
            async with store.ticket_lock(ticket_id):
                posted = await resume_outbox(services, rt, run, claim)
            if posted is not None:
                if on_thread is not None:
                    await _safe_callback(on_thread, posted)
                return posted
        return await _triage_claimed(services, rt, run, ticket, channel, invoker, on_thread, claim.resumed)
    except Superseded as exc:
        log.info("#%s: %s; stopping quietly", ticket_id, exc)
        return DeliveryResult(ticket_id, "superseded", run_id=run_id, message=str(exc))


async def _triage_claimed(
    services: Services,
    rt: SlackRuntime,
    run: FencedRun,
    ticket: Ticket,
    channel: str,
    invoker: str | None,
    on_thread: OnThread | None,
    resumed: bool,
) -> DeliveryResult:
    store, ticket_id, run_id = services.store, ticket.id, run.run_id
    state = card_state(ticket, run_id)
    try:
        # heart-beating: in a burst the card may wait a while for the channel's posting slot
        opened = open_thread(services, run, ticket, channel, state, resumed=resumed)
        channel, thread_ts, reused = await heartbeating(services, run, opened)
    except Superseded:
        raise
    except Exception as exc:
        error = slack_error(exc)
        await run.fail(f"slack: {error}")
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
        notice = {
            "text": f":arrows_counterclockwise: New triage run for {ticket.ref}{who}: the card above follows it."
        }
        with contextlib.suppress(SlackApiError):
            await heartbeating(services, run, run.post(channel, notice, thread_ts=thread_ts))
    if on_thread is not None:
        await _safe_callback(on_thread, result)

    async with store.ticket_lock(ticket_id):
        previous_state = await store.get_ticket_state(ticket_id)
        after = _state_after(ticket, previous_state, report_run=run_id)
        return await run_triage(services, run, ticket, state, result, after)


async def _safe_callback(callback: OnThread, result: DeliveryResult) -> None:
    try:
        await callback(result)
    except Exception:
        log.exception("on_thread callback failed")


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


def _state_after(ticket: Ticket, previous: TicketState | None, *, report_run: str | None) -> TicketState:
    """What the intake saw of `ticket` (and, after a posted report, which run's report it was)."""
    extra = dict(previous.extra) if previous is not None else {}
    if report_run:
        extra[REPORT_RUN] = report_run
    return state_of(ticket).model_copy(update={"extra": extra})


async def _record_state(store: Store, ticket: Ticket, previous: TicketState | None) -> None:
    """Remember what the intake saw, keeping which run's report is in the thread (a skip)."""
    try:
        await store.set_ticket_state(_state_after(ticket, previous, report_run=None))
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
    run = FencedRun(rt.client, services.store, claim.run.run_id, claim.token)
    try:
        return await _deliver_fenced(services, rt, run, claim, trigger, ticket)
    except Superseded as exc:
        log.info("#%s (%s): %s; stopping quietly", claim.run.ticket_id, trigger, exc)
        return DeliveryResult(claim.run.ticket_id, "superseded", run_id=run.run_id, message=str(exc))


async def _deliver_fenced(
    services: Services, rt: SlackRuntime, run: FencedRun, claim: Claim, trigger: str, ticket: Ticket | None
) -> DeliveryResult:
    store, settings = services.store, services.settings
    run_id, ticket_id = claim.run.run_id, claim.run.ticket_id
    channel = settings.triage_channel

    async def give_up(status: str, message: str) -> DeliveryResult:
        log.error("triage of #%s (%s) not delivered: %s", ticket_id, trigger, message)
        await run.fail(message[:1000])
        return DeliveryResult(ticket_id, status, run_id=run_id, message=message)

    if not channel:
        return await give_up("config_error", "TRIAGE_CHANNEL is not set (the channel id reports go to).")

    async with store.ticket_lock(ticket_id):
        if claim.resumed:
            posted = await resume_outbox(services, rt, run, claim)
            if posted is not None:
                return posted
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
            await run.set_thread(ref.channel, ref.thread_ts)
            await run.finish(carried)
            await _record_state(store, ticket, previous_state)
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

        state = card_state(ticket, run_id)
        try:
            opened = open_thread(services, run, ticket, channel, state, resumed=claim.resumed)
            channel, thread_ts, reused = await opened
        except Superseded:
            raise
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
            result = await run_triage(
                services,
                run,
                ticket,
                state,
                result,
                _state_after(ticket, previous_state, report_run=run_id),
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
                    await run.post(
                        channel,
                        notice_message(
                            f"Triaging #{ticket_id} again: {why}. The card above follows it.", "🔄"
                        ),
                        thread_ts=thread_ts,
                    )
            after = _state_after(ticket, previous_state, report_run=run_id)
            result = await run_triage(services, run, ticket, state, result, after)
        return result
