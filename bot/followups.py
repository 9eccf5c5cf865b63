"""Thread follow-ups: answer a question asked in a report thread, once.

A reply in a thread the store knows (`ticket_for_thread`) that mentions the bot — or any reply when
`SLACK_FOLLOWUP_ANY_REPLY=true` — gets exactly one answer, grounded in the ticket's latest stored
report. Slack sends one mention as both `app_mention` and `message`, and retries events it thinks
were not acknowledged, so the answer is claimed with `store.mark_seen("followup:<channel>:<ts>")`:
whichever delivery arrives first answers, every other one is dropped. Bots (including us), message
subtypes (edits, joins, broadcasts of our own…) and top-level messages are ignored.

The short conversation history lives in the store (a cursor per thread), never in
`conversations.replies` (rate limited to ~1 call/min for non-Marketplace apps).
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.access import REFUSAL
from bot.slack_runtime import post_error, post_message, runtime_for, slack_error
from formatting.cards import followup_message
from triage.store import RunStatus

if TYPE_CHECKING:
    from bot.wiring import Services

log = logging.getLogger(__name__)

HISTORY_TURNS = 6
HISTORY_CHARS = 2000
_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")


@dataclass
class FollowUpOutcome:
    answered: bool
    reason: str = ""


def _history_key(channel: str, thread_ts: str) -> str:
    return f"followup:{channel}:{thread_ts}"


def strip_mentions(text: str, bot_user_id: str | None) -> str:
    def repl(m: re.Match[str]) -> str:
        return "" if m.group(1) == bot_user_id else m.group(0)

    return re.sub(r"\s+", " ", _MENTION.sub(repl, text)).strip()


async def _load_history(services: Services, key: str) -> list[tuple[str, str]]:
    raw = await services.store.get_cursor(key)
    if not raw:
        return []
    try:
        return [(str(q), str(a)) for q, a in json.loads(raw)][-HISTORY_TURNS:]
    except (ValueError, TypeError):
        return []


async def _save_history(services: Services, key: str, history: list[tuple[str, str]]) -> None:
    redact = services.engine.redactor.redact  # the store keeps questions and answers redacted, like reports
    trimmed = [(redact(q)[:HISTORY_CHARS], redact(a)[:HISTORY_CHARS]) for q, a in history[-HISTORY_TURNS:]]
    await services.store.set_cursor(key, json.dumps(trimmed))


async def handle_thread_message(
    services: Services,
    event: dict[str, Any],
    *,
    bot_user_id: str | None,
    bot_id: str | None,
    mentioned: bool,
    user_allowed: bool,
) -> FollowUpOutcome:
    """Decide whether `event` is a follow-up for us and answer it (once). Safe to call for every event.

    Slack Connect and channel checks are done before this is called (`bot.listeners.guard`), which
    also says whether the author may use the bot (`user_allowed`).
    """
    rt = runtime_for(services)
    channel = str(event.get("channel") or "")
    ts = str(event.get("ts") or "")
    thread_ts = str(event.get("thread_ts") or "")
    user = str(event.get("user") or "")
    text = str(event.get("text") or "")

    if event.get("subtype") or event.get("bot_id") or event.get("bot_profile"):
        return FollowUpOutcome(False, "bot or subtype")
    if not user or user == bot_user_id or (bot_id and event.get("bot_id") == bot_id):
        return FollowUpOutcome(False, "self")
    if not thread_ts or thread_ts == ts or not channel:
        return FollowUpOutcome(False, "not a thread reply")
    mentioned = mentioned or bool(bot_user_id and f"<@{bot_user_id}" in text)
    if not (mentioned or services.settings.slack_followup_any_reply):
        return FollowUpOutcome(False, "no mention")

    ticket_id = await services.store.ticket_for_thread(channel, thread_ts)
    if ticket_id is None:
        return FollowUpOutcome(False, "unknown thread")

    if not user_allowed:
        # only refuse people who addressed the bot; silently skip other chatter
        if mentioned and await services.store.mark_seen(f"followup:{channel}:{ts}"):
            try:
                await rt.client.chat_postEphemeral(
                    channel=channel, user=user, thread_ts=thread_ts, text=REFUSAL
                )
            except Exception as exc:
                log.warning("could not send refusal: %s", slack_error(exc))
        return FollowUpOutcome(False, "user not allowed")

    # exactly once per message, whichever of app_mention / message / retry arrives first
    if not await services.store.mark_seen(f"followup:{channel}:{ts}"):
        return FollowUpOutcome(False, "duplicate")

    question = strip_mentions(text, bot_user_id)
    if not question:
        await post_message(
            rt.client,
            channel,
            {
                "text": "Ask me anything about this ticket's triage, "
                "e.g. _which evidence supports the root cause?_"
            },
            thread_ts=thread_ts,
        )
        return FollowUpOutcome(True, "empty question")

    run = await services.store.latest_run(ticket_id)
    report_run = run if run is not None and run.report is not None else None
    if report_run is None or report_run.report is None:
        status = "still running" if run is not None and run.status == RunStatus.running else "not available"
        await post_message(
            rt.client,
            channel,
            {"text": f"The triage report for #{ticket_id} is {status} yet; ask again when it is posted."},
            thread_ts=thread_ts,
        )
        return FollowUpOutcome(True, "no report")

    key = _history_key(channel, thread_ts)
    history = await _load_history(services, key)
    try:
        async with services.triage_slots:
            answer = await services.engine.follow_up(report_run.report, question, history)
    except Exception as exc:
        log.warning("follow-up on #%s failed: %s", ticket_id, exc)
        await post_error(
            rt.client, channel, thread_ts, f"Could not answer that: {str(exc)[:300] or type(exc).__name__}"
        )
        return FollowUpOutcome(False, "error")
    try:
        await post_message(rt.client, channel, followup_message(answer), thread_ts=thread_ts)
    except Exception as exc:
        await post_error(rt.client, channel, thread_ts, f"Could not post the answer ({slack_error(exc)}).")
        return FollowUpOutcome(False, "post failed")
    history.append((question, answer.answer))
    await _save_history(services, key, history)
    return FollowUpOutcome(True)
