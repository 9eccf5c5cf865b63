"""Modal submissions: the reply draft (private note or copy) and the 👎 comment."""

from __future__ import annotations

import inspect
import logging
from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.listeners.common import Deps, input_value, reason, record_outcome, user_of
from bot.slack_runtime import post_error, post_message
from formatting.actions import (
    FEEDBACK_BLOCK,
    FEEDBACK_INPUT,
    REPLY_BLOCK,
    REPLY_INPUT,
    VIEW_FEEDBACK,
    VIEW_REPLY,
)
from formatting.cards import notice_message
from formatting.escape import safe_mrkdwn, split_mrkdwn
from triage.models import is_pasted, ticket_ref
from triage.store import Feedback

log = logging.getLogger(__name__)


class ViewListeners:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    def register(self, app: AsyncApp) -> None:
        app.view(VIEW_REPLY)(self.on_reply_submit)
        app.view(VIEW_FEEDBACK)(self.on_feedback_submit)

    async def on_reply_submit(self, ack: Any, body: dict[str, Any], view: dict[str, Any]) -> None:
        text = input_value(view, REPLY_BLOCK, REPLY_INPUT)
        if self.deps.writeback_enabled() and not text.strip():
            await ack(response_action="errors", errors={REPLY_BLOCK: "The note is empty."})
            return
        await ack()
        self.deps.rt.spawn(self._reply_submitted(body, view, text), name="reply-submit")

    async def _reply_submitted(self, body: dict[str, Any], view: dict[str, Any], text: str) -> None:
        deps = self.deps
        user = user_of(body)
        run = await deps.store.get_run(str(view.get("private_metadata") or ""))
        if run is None or not run.channel:
            log.warning("reply submitted for an unknown run")
            return
        channel, thread_ts = run.channel, run.thread_ts
        if not deps.writeback_enabled() or is_pasted(run.ticket_id):
            await deps.ephemeral(channel, user, thread_ts, copy_message(run.ticket_id, text))
            await record_outcome(deps, run.run_id, "reply_copied", user)
            return
        claimed, artefact = await deps.store.claim_artefact(run.run_id, "reply_note")
        if not claimed:
            state = "was already added" if artefact.status == "done" else "is being added"
            note = f"The reply for this report {state} as a private note on #{run.ticket_id}."
            await deps.ephemeral(channel, user, thread_ts, {"text": note})
            return
        try:
            zendesk = deps.services.zendesk
            assert zendesk is not None
            result = zendesk.add_private_note(run.ticket_id, text)
            if inspect.isawaitable(result):
                await result
        except Exception as exc:
            await deps.store.release_artefact(run.run_id, "reply_note")
            await post_error(
                deps.client,
                channel,
                thread_ts,
                f"Could not add the private note to #{run.ticket_id}: {reason(exc)}",
            )
            return
        await deps.store.complete_artefact(run.run_id, "reply_note", f"zendesk:{run.ticket_id}", text)
        await record_outcome(deps, run.run_id, "reply_posted", user)
        await post_message(
            deps.client,
            channel,
            notice_message(
                f"Reply draft added to #{run.ticket_id} as a private internal note by {user}.", "📝"
            ),
            thread_ts=thread_ts,
        )

    async def on_feedback_submit(self, ack: Any, body: dict[str, Any], view: dict[str, Any]) -> None:
        await ack()
        comment = input_value(view, FEEDBACK_BLOCK, FEEDBACK_INPUT)
        run_id = str(view.get("private_metadata") or "")
        self.deps.rt.spawn(self._feedback_submitted(run_id, user_of(body), comment), name="feedback-submit")

    async def _feedback_submitted(self, run_id: str, user: str, comment: str) -> None:
        store = self.deps.store
        if not run_id or await store.get_run(run_id) is None:
            return
        await store.add_feedback(Feedback(run_id=run_id, user_id=user, vote="down", comment=comment[:3000]))


def copy_message(ticket_id: int, text: str) -> dict[str, Any]:
    """The reply for copying (write-back is off, or a pasted ticket): an intro plus the text in code blocks."""
    if is_pasted(ticket_id):
        why = f"{ticket_ref(ticket_id)} was pasted, not a Zendesk ticket, so nothing was sent"
    else:
        why = "Write-back to Zendesk is off (ZENDESK_WRITEBACK=false), so nothing was sent"
    intro = f"{why}. Copy the reply for {ticket_ref(ticket_id)} below."
    blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": intro}}]
    body = safe_mrkdwn(text).replace("```", "`\u200b`\u200b`") or "(empty)"
    for chunk in split_mrkdwn(body, 2900)[:40]:
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": f"```\n{chunk}\n```", "verbatim": True}}
        )
    return {"text": intro, "blocks": blocks}
