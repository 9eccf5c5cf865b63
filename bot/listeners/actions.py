"""The report's buttons: escalation packet, KB draft, reply draft, re-run, 👍/👎.

Everything a button needs is loaded from the store by the run id in the button's value, so buttons
keep working after a restart and on any replica. Artefacts are claimed in the store first, so two
clicks (or two replicas) make one packet.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError

from bot.delivery import DeliveryResult, triage_ticket
from bot.listeners.common import Deps, Reported, channel_of, reason, record_feedback, record_outcome, user_of
from bot.listeners.home import remember
from bot.slack_runtime import permalink, post_error, post_message, slack_error
from formatting.actions import (
    ACTION_FEEDBACK_DOWN,
    ACTION_FEEDBACK_UP,
    ACTION_KB,
    ACTION_OPEN_TICKET,
    ACTION_PACKET,
    ACTION_REPLY,
    ACTION_RERUN,
)
from formatting.cards import (
    ephemeral_text,
    feedback_modal,
    kb_preview_message,
    packet_messages,
    reply_modal,
)
from formatting.markdown import kb_markdown
from triage.models import ReplyDraft, is_pasted, ticket_ref
from triage.store import Feedback, RunRecord

log = logging.getLogger(__name__)

Handler = Callable[[RunRecord, dict[str, Any], dict[str, Any], Any], Awaitable[None]]


class ActionListeners:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        self.handlers: dict[str, Handler] = {
            ACTION_PACKET: self._packet,
            ACTION_KB: self._kb,
            ACTION_REPLY: self._reply,
            ACTION_RERUN: self._rerun,
            ACTION_FEEDBACK_UP: self._feedback,
            ACTION_FEEDBACK_DOWN: self._feedback,
        }

    def register(self, app: AsyncApp) -> None:
        app.action(re.compile(r"^triage_"))(self.on_action)

    async def on_action(self, ack: Any, body: dict[str, Any], action: dict[str, Any], respond: Any) -> None:
        await ack()
        action_id = str(action.get("action_id") or "")
        if action_id == ACTION_OPEN_TICKET:
            return  # a link button: Slack opens the URL, we only acknowledge
        self.deps.rt.spawn(self._action(action_id, body, action, respond), name=f"action-{action_id}")

    async def _action(
        self, action_id: str, body: dict[str, Any], action: dict[str, Any], respond: Any
    ) -> None:
        run_id = str(action.get("value") or "")
        run = await self.deps.store.get_run(run_id) if run_id else None
        if run is None:
            await self.deps.say(
                respond, "This report is no longer available (its run was not found). Run `/triage` again."
            )
            return
        handler = self.handlers.get(action_id)
        if handler is None:
            log.info("ignoring unknown action %s", action_id)
            return
        try:
            await handler(run, body, action, respond)
        except Exception as exc:
            log.exception("action %s failed", action_id)
            await self.deps.say(
                respond, f"That did not work: {ephemeral_text(str(exc) or type(exc).__name__, 300)}"
            )

    def _thread(self, run: RunRecord, body: dict[str, Any]) -> tuple[str, str]:
        if run.channel and run.thread_ts:
            return run.channel, run.thread_ts
        container = body.get("container") or {}
        message = body.get("message") or {}
        ts = (
            container.get("thread_ts")
            or message.get("thread_ts")
            or container.get("message_ts")
            or message.get("ts")
        )
        return channel_of(body), str(ts or "")

    async def _claimed(self, run: RunRecord, kind: str, label: str, respond: Any) -> bool:
        """Claim an artefact; when someone already made it, link to it instead. True = we make it."""
        claimed, artefact = await self.deps.store.claim_artefact(run.run_id, kind)
        if claimed:
            return True
        if artefact.status == "done":
            where = f"<{artefact.ref}|{label}>" if artefact.ref.startswith("http") else label
            await self.deps.say(respond, f"Already posted in the thread → {where}")
        else:
            await self.deps.say(
                respond, f"The {label} is being prepared; it will appear in the thread shortly."
            )
        return False

    async def _explain_pause(self, respond: Any) -> None:
        """Drafts need the model; while it is paused (daily budget) say why this one is evidence-only."""
        paused = await self.deps.services.engine.model_paused()
        if paused:
            await self.deps.say(
                respond, f"The model is paused: {paused}. This draft is built from the evidence only."
            )

    async def _not_finished(self, run: RunRecord, respond: Any) -> bool:
        if run.report is not None:
            return False
        await self.deps.say(respond, "The report is not finished yet; try again when it is posted.")
        return True

    async def _packet(
        self, run: RunRecord, body: dict[str, Any], action: dict[str, Any], respond: Any
    ) -> None:
        if await self._not_finished(run, respond) or run.report is None:
            return
        if not await self._claimed(run, "packet", "escalation packet", respond):
            return
        deps = self.deps
        channel, thread_ts = self._thread(run, body)
        await self._explain_pause(respond)
        try:
            ticket = None
            try:
                if not is_pasted(run.ticket_id):  # a pasted ticket is not in Zendesk
                    ticket = await deps.services.engine.fetch(run.ticket_id)
            except Exception as exc:
                log.info("packet for #%s without the live ticket: %s", run.ticket_id, type(exc).__name__)
            async with deps.services.triage_slots:
                packet = await deps.services.engine.escalation_packet(run.report, ticket)
            first = ""
            for payload in packet_messages(packet):
                ts = await post_message(deps.client, channel, payload, thread_ts=thread_ts)
                first = first or ts
            url = await permalink(deps.client, channel, first) if first else ""
            await deps.store.complete_artefact(run.run_id, "packet", url or first)
            await record_outcome(deps, run.run_id, "packet_opened", user_of(body))
        except Exception as exc:
            await deps.store.release_artefact(run.run_id, "packet")
            await post_error(
                deps.client, channel, thread_ts, f"Could not build the escalation packet: {reason(exc)}"
            )
            raise Reported() from exc

    async def _kb(self, run: RunRecord, body: dict[str, Any], action: dict[str, Any], respond: Any) -> None:
        if await self._not_finished(run, respond) or run.report is None:
            return
        if not await self._claimed(run, "kb", "KB article draft", respond):
            return
        deps = self.deps
        channel, thread_ts = self._thread(run, body)
        await self._explain_pause(respond)
        try:
            async with deps.services.triage_slots:
                article = await deps.services.engine.kb_article(run.report)
            markdown = kb_markdown(article)
            filename = f"kb-draft-{run.ticket_id}.md"
            try:
                await deps.client.files_upload_v2(
                    channel=channel,
                    thread_ts=thread_ts,
                    content=markdown,
                    filename=filename,
                    title=article.title[:250] or filename,
                    snippet_type="markdown",
                )
                note = f"Full draft attached as {filename} (Markdown)."
            except SlackApiError as exc:
                note = (
                    f"Could not attach {filename} ({slack_error(exc)}; the app needs the files:write scope)."
                )
            ts = await post_message(
                deps.client, channel, kb_preview_message(article, note), thread_ts=thread_ts
            )
            url = await permalink(deps.client, channel, ts)
            await deps.store.complete_artefact(run.run_id, "kb", url or ts, markdown)
            await record_outcome(deps, run.run_id, "kb_opened", user_of(body))
        except Exception as exc:
            await deps.store.release_artefact(run.run_id, "kb")
            await post_error(
                deps.client, channel, thread_ts, f"Could not write the KB article draft: {reason(exc)}"
            )
            raise Reported() from exc

    async def _reply(
        self, run: RunRecord, body: dict[str, Any], action: dict[str, Any], respond: Any
    ) -> None:
        if await self._not_finished(run, respond) or run.report is None:
            return
        deps = self.deps
        writeback = deps.writeback_enabled() and not is_pasted(run.ticket_id)
        report = run.report
        language = report.intake.language or "en"
        ready = bool(report.customer_reply_draft.strip())
        draft = ReplyDraft(body=report.customer_reply_draft if ready else "", language=language)
        # the trigger id expires 3 s after the click: open the modal now, fill it in afterwards if needed
        resp = await deps.client.views_open(
            trigger_id=body.get("trigger_id"), view=reply_modal(run.run_id, draft, writeback)
        )
        if not ready:
            await self._explain_pause(respond)
            async with deps.services.triage_slots:
                draft = await deps.services.engine.reply_draft(report)
            view_id = (resp.get("view") or {}).get("id")
            await deps.client.views_update(view_id=view_id, view=reply_modal(run.run_id, draft, writeback))

    async def _rerun(
        self, run: RunRecord, body: dict[str, Any], action: dict[str, Any], respond: Any
    ) -> None:
        if is_pasted(run.ticket_id):
            await self.deps.say(
                respond,
                f"{ticket_ref(run.ticket_id)} was pasted, not fetched from Zendesk, so it cannot be re-run: "
                "triage the message again (or `/triage` with the text).",
            )
            return

        async def on_thread(r: DeliveryResult) -> None:
            await remember(self.deps, user_of(body), r)
            if not r.owned:
                where = f"<{r.thread_url}|thread>" if r.thread_url else "the thread"
                await self.deps.say(respond, f"#{run.ticket_id} is already being triaged → {where}")

        result = await triage_ticket(
            self.deps.services,
            run.ticket_id,
            trigger="rerun",
            invoker=user_of(body),
            force=True,
            on_thread=on_thread,
        )
        if result.status in ("not_found", "config_error", "unavailable", "error"):
            await self.deps.say(respond, ephemeral_text(result.message))

    async def _feedback(
        self, run: RunRecord, body: dict[str, Any], action: dict[str, Any], respond: Any
    ) -> None:
        up = action.get("action_id") == ACTION_FEEDBACK_UP
        await record_feedback(
            self.deps, Feedback(run_id=run.run_id, user_id=user_of(body), vote="up" if up else "down")
        )
        if up:
            await self.deps.say(respond, "Thanks — glad it helped. 👍")
            return
        try:
            await self.deps.client.views_open(
                trigger_id=body.get("trigger_id"), view=feedback_modal(run.run_id)
            )
        except SlackApiError as exc:
            log.info("feedback modal not opened: %s", slack_error(exc))
            await self.deps.say(respond, "Thanks — your 👎 was recorded.")
