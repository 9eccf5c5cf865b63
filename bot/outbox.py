"""Posting a finished report exactly once, also when its replica dies half-way: the run's outbox.

Storing a report and posting it to Slack cannot be one transaction. So the report is stored first
together with everything left to write (`triage.store.Outbox`: the thread messages, the final card,
the ticket state to record) while the run stays `running` under its fencing token, and then:

    post message i (fenced)  →  record sent = i + 1 (fenced)      for each message not sent yet
    update the parent card with the final state (idempotent)
    record the ticket state (which run's report is in the thread)
    complete the run (done; the outbox is dropped)

If the replica dies anywhere in there, its heartbeat stops, the run goes stale and whoever takes it
over (the queue's recovery, or a claim of the same ticket version) finds the outbox and calls
`post_outbox` again with its own, higher token: it posts only the messages not counted yet, into the
thread that already exists, and never triages the ticket again. A stale owner that wakes up is
refused at its next fenced write (`Superseded`) and posts nothing more.

The one window left is a crash between Slack accepting a message and the count being stored (one
database write): the new owner then posts that one message again. Slack has no idempotency key for
chat.postMessage, so this is as narrow as it gets without reading the thread back.
"""

from __future__ import annotations

import logging

from slack_sdk.errors import SlackApiError

from bot.fenced_run import FencedRun, Superseded
from bot.slack_runtime import slack_error
from triage.store import Outbox, Store

log = logging.getLogger(__name__)


async def post_outbox(store: Store, run: FencedRun, outbox: Outbox) -> None:
    """Post what is left of `outbox` (see the module docstring); raises Superseded when taken over.

    A message Slack refuses is reported in the thread and the rest is skipped (the report is stored
    and shown on the card); the run still completes, so nobody retries it forever.
    """
    channel, thread_ts = outbox.channel, outbox.thread_ts
    total = len(outbox.messages)
    for index in range(outbox.sent, total):
        try:
            await run.post(channel, outbox.messages[index], thread_ts=thread_ts)
        except Superseded:
            raise
        except Exception as exc:
            log.warning(
                "run %s: message %d/%d not posted: %s", run.run_id, index + 1, total, slack_error(exc)
            )
            await run.post_error(
                channel,
                thread_ts,
                f"The report for {outbox.ticket_ref or 'this ticket'} is ready but could not be posted in "
                f"full ({slack_error(exc)}).",
            )
            await run.sent(total)
            break
        await run.sent(index + 1)
    if outbox.card is not None:
        try:
            await run.update(channel, thread_ts, outbox.card)
        except SlackApiError as exc:
            log.warning("run %s: final card not updated: %s", run.run_id, slack_error(exc))
    if outbox.ticket_state is not None:
        try:
            await store.set_ticket_state(outbox.ticket_state)
        except Exception:  # the report is posted; the next change of the ticket is decided without it
            log.exception("could not record the state of ticket %s", outbox.ticket_ref)
    await run.complete()
