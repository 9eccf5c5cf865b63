"""Modal submissions: the reply draft (private note or copy) and the 👎 comment."""

from __future__ import annotations

import inspect
import json
import logging
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError

from bot.delivery import DeliveryResult, triage_ticket
from bot.listeners.commands import parse_ticket
from bot.listeners.common import Deps, input_value, reason, record_outcome, user_of
from bot.listeners.home import remember
from bot.listeners.paste import triage_text
from bot.slack_runtime import post_error, post_message, slack_error
from formatting.actions import (
    FEEDBACK_BLOCK,
    FEEDBACK_INPUT,
    PASTE_BLOCK,
    PASTE_INPUT,
    PASTE_TICKET_BLOCK,
    PASTE_TICKET_INPUT,
    REPLY_BLOCK,
    REPLY_INPUT,
    VIEW_FEEDBACK,
    VIEW_PASTE,
    VIEW_REPLY,
)
from formatting.cards import ephemeral_text, notice_message
from formatting.escape import safe_mrkdwn, split_mrkdwn
from formatting.modals import notice_modal
from triage.models import is_pasted, ticket_ref
from triage.store import Feedback

log = logging.getLogger(__name__)


class ViewListeners:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    def register(self, app: AsyncApp) -> None:
        app.view(VIEW_REPLY)(self.on_reply_submit)
        app.view(VIEW_FEEDBACK)(self.on_feedback_submit)
        app.view(VIEW_PASTE)(self.on_paste_submit)

    # ------------------------------------------------------------ the paste modal (bare /triage)

    async def on_paste_submit(self, ack: Any, body: dict[str, Any], view: dict[str, Any]) -> None:
        """Validate in the ack (errors show under the field), then triage; the modal shows the link."""
        text = input_value(view, PASTE_BLOCK, PASTE_INPUT)
        ticket_text = input_value(view, PASTE_TICKET_BLOCK, PASTE_TICKET_INPUT).strip()
        ticket_id = parse_ticket(ticket_text) if ticket_text else None
        if ticket_text and ticket_id is None:
            await ack(
                response_action="errors",
                errors={PASTE_TICKET_BLOCK: "Not a ticket number or Zendesk ticket URL (e.g. 48291)."},
            )
            return
        if not text.strip() and ticket_id is None:
            await ack(
                response_action="errors",
                errors={PASTE_BLOCK: "Paste the customer's message, or give a Zendesk ticket below."},
            )
            return
        await ack(
            response_action="update",
            view=notice_modal("Triage", "⏳ Triaging… the link to the report appears here."),
        )
        self.deps.rt.spawn(self._paste_submitted(body, view, text, ticket_id), name="paste-submit")

    async def _paste_submitted(
        self, body: dict[str, Any], view: dict[str, Any], text: str, ticket_id: int | None
    ) -> None:
        deps = self.deps
        user = user_of(body)
        view_id = str(view.get("id") or "")

        async def show(message: str) -> None:
            try:
                await deps.client.views_update(view_id=view_id, view=notice_modal("Triage", message))
            except SlackApiError as exc:  # closed already, or expired: tell them in the channel instead
                log.info("paste modal not updated (%s)", slack_error(exc))
                channel = _metadata_channel(view)
                if channel:
                    await deps.ephemeral(channel, user, None, {"text": message})

        async def on_thread(r: DeliveryResult) -> None:
            await remember(deps, user, r)
            where = f"<{r.thread_url}|open the report thread>" if r.thread_url else "see the triage channel"
            state = (
                "Triaging" if r.owned else "Already triaged:" if r.status != "running" else "Already running:"
            )
            await show(f"✅ {state} {ticket_ref(r.ticket_id)} → {where}")

        try:
            if text.strip():
                zendesk_url = deps.settings.zendesk_base_url
                url = f"{zendesk_url}/agent/tickets/{ticket_id}" if ticket_id and zendesk_url else ""
                result = await triage_text(
                    deps,
                    text,
                    key="",
                    trigger="slash",
                    invoker=user,
                    on_thread=on_thread,
                    url=url,
                    sniff=True,
                )
            else:
                assert ticket_id is not None
                result = await triage_ticket(
                    deps.services, ticket_id, trigger="slash", invoker=user, on_thread=on_thread
                )
        except Exception as exc:
            log.exception("triage from the paste modal failed")
            await show(f"⚠️ Triage failed unexpectedly ({type(exc).__name__}).")
            return
        if result.status in ("not_found", "config_error", "unavailable", "error"):
            await show(f"⚠️ {ephemeral_text(result.message, 2000)}")
        elif result.status == "failed":
            await show(
                f"⚠️ Triage of {ticket_ref(result.ticket_id)} failed: {ephemeral_text(result.message, 500)}"
            )

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
            result = zendesk.add_private_note(run.ticket_id, text, run_id=run.run_id)
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
        # the vote went out with the click; the comment goes to analytics as "what was wrong?"
        await store.add_feedback(Feedback(run_id=run_id, user_id=user, vote="down", comment=comment[:3000]))
        if self.deps.services.analytics is not None:
            self.deps.services.analytics.feedback(run_id, "", comment)


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


def _metadata_channel(view: dict[str, Any]) -> str:
    try:
        data = json.loads(str(view.get("private_metadata") or "{}"))
    except ValueError:
        return ""
    return str(data.get("channel") or "") if isinstance(data, dict) else ""
