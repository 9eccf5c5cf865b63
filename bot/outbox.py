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

The one window the count cannot close is a crash between Slack accepting a message and the count
being stored (one database write): Slack has no idempotency key for chat.postMessage. So every
outbox message carries message metadata naming its run and position (`triagebot_report_part`), and
a new owner reads the thread back once (`conversations.replies` with `include_all_metadata`) before
posting: a part Slack already has is counted, not posted again. If that read fails (rate limited,
missing scope), the stored count is trusted and that one message may appear twice.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.fenced_run import FencedRun, Superseded
from bot.slack_runtime import slack_error
from triage.store import Outbox, Store

log = logging.getLogger(__name__)

PART_EVENT = "triagebot_report_part"  # message metadata event_type of every outbox message
READ_BACK_PAGES = 5  # conversations.replies pages read on a takeover (a report thread is short)


def tagged(message: dict[str, Any], run_id: str, part: int) -> dict[str, Any]:
    """The outbox message with metadata naming its run and position (invisible in Slack)."""
    return {
        **message,
        "metadata": {"event_type": PART_EVENT, "event_payload": {"run_id": run_id, "part": part}},
    }


async def parts_in_thread(client: AsyncWebClient, outbox: Outbox, run_id: str) -> set[int]:
    """The positions of this run's outbox messages that Slack already has in the thread."""
    parts: set[int] = set()
    cursor: str | None = None
    for _ in range(READ_BACK_PAGES):
        resp = await client.conversations_replies(
            channel=outbox.channel, ts=outbox.thread_ts, include_all_metadata=True, limit=200, cursor=cursor
        )
        for message in resp.get("messages") or []:
            metadata = message.get("metadata") or {}
            payload = metadata.get("event_payload") or {}
            ours = metadata.get("event_type") == PART_EVENT and payload.get("run_id") == run_id
            if ours and isinstance(payload.get("part"), int):
                parts.add(payload["part"])
        cursor = (resp.get("response_metadata") or {}).get("next_cursor") or None
        if cursor is None:
            break
    return parts


async def post_outbox(store: Store, run: FencedRun, outbox: Outbox, *, read_back: bool = False) -> None:
    """Post what is left of `outbox` (see the module docstring); raises Superseded when taken over.

    `read_back` (a takeover): first read the thread for parts Slack already has. A message Slack
    refuses is reported in the thread and the rest is skipped (the report is stored and shown on the
    card); the run still completes, so nobody retries it forever.
    """
    channel, thread_ts = outbox.channel, outbox.thread_ts
    total = len(outbox.messages)
    in_slack: set[int] = set()
    if read_back and outbox.sent < total:
        try:
            in_slack = await parts_in_thread(run.client, outbox, run.run_id)
        except Exception as exc:
            log.warning(
                "run %s: thread not read back (%s); trusting the stored count", run.run_id, slack_error(exc)
            )
    for index in range(outbox.sent, total):
        if index in in_slack:
            log.info("run %s: message %d/%d is already in the thread", run.run_id, index + 1, total)
            await run.sent(index + 1)
            continue
        try:
            await run.post(channel, tagged(outbox.messages[index], run.run_id, index), thread_ts=thread_ts)
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
