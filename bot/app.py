"""The Bolt `AsyncApp`: `/triage`, the report buttons, the modals and thread follow-ups.

Every listener acknowledges first and does nothing slow before `ack()`; the work runs in a tracked
background task (`SlackRuntime.spawn`) so shutdown can wait for it, and triage runs are bounded by
`Services.triage_slots` (TRIAGE_CONCURRENCY). Signature checks are Bolt's (`request_verification`).
Everything a button needs is loaded from the store by the run id in the button's value, so buttons
keep working after a restart and on any replica.
"""

from __future__ import annotations

import inspect
import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.access import CHANNEL_REFUSAL, REFUSAL, SHARED_REFUSAL
from bot.delivery import (
    DeliveryResult,
    SlackRuntime,
    permalink,
    post_error,
    post_message,
    runtime_for,
    slack_error,
    triage_ticket,
)
from bot.followups import handle_thread_message
from bot.settings import secret
from formatting.actions import (
    ACTION_FEEDBACK_DOWN,
    ACTION_FEEDBACK_UP,
    ACTION_KB,
    ACTION_OPEN_TICKET,
    ACTION_PACKET,
    ACTION_REPLY,
    ACTION_RERUN,
    FEEDBACK_BLOCK,
    FEEDBACK_INPUT,
    REPLY_BLOCK,
    REPLY_INPUT,
    VIEW_FEEDBACK,
    VIEW_REPLY,
)
from formatting.cards import (
    ephemeral_text,
    feedback_modal,
    kb_preview_message,
    notice_message,
    packet_messages,
    reply_modal,
)
from formatting.escape import safe_mrkdwn, split_mrkdwn
from formatting.markdown import kb_markdown
from triage.models import ReplyDraft
from triage.protocols import ConfigError
from triage.store import Feedback, RunRecord

if TYPE_CHECKING:
    from bot.wiring import Services

log = logging.getLogger(__name__)

COMMAND = "/triage"
_ID_RE = re.compile(r"^#?(\d{1,12})$")
_URL_RE = re.compile(
    r"^https?://[^\s/]+/(?:agent/tickets|api/v2/tickets|hc/[^/\s]+/requests|tickets)/(\d{1,12})(?:[/?#.][^\s]*)?$"
)


# ---------------------------------------------------------------- /triage parsing


@dataclass
class TriageCommand:
    ticket_id: int | None = None
    rerun: bool = False
    help: bool = False
    error: str = ""


def parse_command(text: str) -> TriageCommand:
    """`48291`, `#48291`, a Zendesk ticket URL (Slack may wrap it in `<…>`), optionally `--rerun`."""
    tokens = (text or "").split()
    if not tokens or tokens[0].lower() in ("help", "-h", "--help", "?"):
        return TriageCommand(help=True)
    rerun = False
    refs: list[str] = []
    for token in tokens:
        if token.lower() in ("--rerun", "--re-run", "rerun", "-r"):
            rerun = True
        else:
            refs.append(token)
    if len(refs) != 1:
        return TriageCommand(error="give exactly one ticket")
    ref = refs[0]
    if ref.startswith("<") and ref.endswith(">"):
        ref = ref[1:-1].split("|", 1)[0]
    match = _ID_RE.match(ref) or _URL_RE.match(ref)
    if not match:
        return TriageCommand(error=f"`{safe_mrkdwn(ref[:80])}` is not a ticket number or Zendesk ticket URL")
    return TriageCommand(ticket_id=int(match.group(1)), rerun=rerun)


def help_text(channel: str) -> str:
    where = f"<#{channel}>" if channel else "the triage channel"
    return (
        f"*{COMMAND}* researches a Zendesk ticket and posts a triage report in {where}.\n"
        f"• `{COMMAND} 48291`, `{COMMAND} #48291` or `{COMMAND} https://acme.zendesk.com/agent/tickets/48291`\n"
        f"• `{COMMAND} 48291 --rerun` triages again even if this version of the ticket was already triaged\n"
        f"• `{COMMAND} help` shows this message\n"
        "In the report: buttons for an escalation packet, a KB article draft, a reply draft, re-run "
        "and 👍/👎. "
        "Mention the bot in the report thread to ask a question about the ticket."
    )


def usage_text(error: str, channel: str) -> str:
    return (
        f"Sorry, {error}.\nUsage: `{COMMAND} 48291` (or `#48291`, a Zendesk ticket URL, `--rerun`).\n\n"
        + help_text(channel)
    )


# ---------------------------------------------------------------- the app


def build_app(
    services: Services, *, client: AsyncWebClient | None = None, socket_mode: bool = False
) -> AsyncApp:
    """The Bolt app. HTTP mode needs SLACK_SIGNING_SECRET; Socket Mode needs SLACK_APP_TOKEN (runner)."""
    settings = services.settings
    rt = runtime_for(services, client)
    signing_secret = secret(settings.slack_signing_secret)
    if not signing_secret and not socket_mode:
        raise ConfigError("SLACK_SIGNING_SECRET is not set (Slack app → Basic Information → Signing Secret)")
    # Bolt reads SLACK_BOT_TOKEN from the environment and warns that it is unused when a client is
    # given; the client (with our base URL and retry handlers) carries that very token.
    logging.getLogger("slack_bolt.AsyncApp").addFilter(_TokenFromClientFilter())
    app = AsyncApp(
        name="triagebot",
        client=rt.client,
        signing_secret=signing_secret or None,
        request_verification_enabled=bool(signing_secret) or not socket_mode,
        process_before_response=False,
    )
    Listeners(services, rt).register(app)
    return app


class _TokenFromClientFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "`token` will be unused" not in record.getMessage()


def _user(body: dict[str, Any]) -> str:
    user = body.get("user")
    if isinstance(user, dict):
        return str(user.get("id") or "")
    return str(body.get("user_id") or user or "")


def _channel(body: dict[str, Any]) -> str:
    channel = body.get("channel")
    if isinstance(channel, dict) and channel.get("id"):
        return str(channel["id"])
    container = body.get("container") or {}
    return str(container.get("channel_id") or body.get("channel_id") or "")


class Listeners:
    """The listener bodies. Each Bolt listener acks, then hands the rest to `rt.spawn`."""

    def __init__(self, services: Services, rt: SlackRuntime) -> None:
        self.services = services
        self.rt = rt
        self.store = services.store
        self.settings = services.settings

    @property
    def client(self) -> AsyncWebClient:
        return self.rt.client

    def register(self, app: AsyncApp) -> None:
        app.command(COMMAND)(self.on_command)
        app.action(re.compile(r"^triage_"))(self.on_action)
        app.view(VIEW_REPLY)(self.on_reply_submit)
        app.view(VIEW_FEEDBACK)(self.on_feedback_submit)
        app.event("app_mention")(self.on_mention)
        app.event("message")(self.on_message)
        app.error(self.on_error)

    async def on_error(self, error: Exception, body: dict[str, Any]) -> None:
        log.error("unhandled error in a Slack listener (%s): %s", body.get("type"), error, exc_info=error)

    # ------------------------------------------------------------ /triage

    async def on_command(self, ack: Any, command: dict[str, Any], respond: Any) -> None:
        parsed = parse_command(str(command.get("text") or ""))
        if parsed.help:
            await ack(text=help_text(self.settings.triage_channel), response_type="ephemeral")
            return
        if parsed.error or parsed.ticket_id is None:
            await ack(
                text=usage_text(parsed.error or "that did not parse", self.settings.triage_channel),
                response_type="ephemeral",
            )
            return
        await ack()
        self.rt.spawn(self._command(command, parsed, respond), name=f"slash-{parsed.ticket_id}")

    async def _say(self, respond: Any, text: str) -> None:
        try:
            await respond(text=text, response_type="ephemeral", replace_original=False)
        except Exception as exc:
            log.warning("respond() failed: %s", type(exc).__name__)

    async def _refusal(self, body: dict[str, Any], *, command_channel: bool) -> str | None:
        """None when the caller may go on; otherwise the refusal text."""
        access = self.rt.access
        channel = _channel(body)
        if access.shared_flag_refused(body):
            return SHARED_REFUSAL
        if command_channel:
            if not access.command_channel_allowed(channel):
                return CHANNEL_REFUSAL.format(channels=access.channels_hint())
        elif not access.delivery_channel_allowed(channel):
            return CHANNEL_REFUSAL.format(channels=access.channels_hint())
        if not await access.user_allowed(_user(body)):
            return REFUSAL
        return None

    async def _command(self, command: dict[str, Any], parsed: TriageCommand, respond: Any) -> None:
        ticket_id = parsed.ticket_id
        assert ticket_id is not None
        refusal = await self._refusal(command, command_channel=True)
        if refusal:
            await self._say(respond, refusal)
            return

        async def on_thread(r: DeliveryResult) -> None:
            where = f"<{r.thread_url}|thread>" if r.thread_url else "the thread"
            if r.owned:
                text = f"Triaging #{ticket_id} → {where}"
            elif r.status == "running":
                text = f"#{ticket_id} is already being triaged → {where}"
            else:
                text = (
                    f"#{ticket_id} was already triaged for its current version → {where}. "
                    f"Use `{COMMAND} {ticket_id} --rerun` to run it again."
                )
            await self._say(respond, text)

        try:
            result = await triage_ticket(
                self.services,
                ticket_id,
                trigger="rerun" if parsed.rerun else "slash",
                invoker=_user(command),
                force=parsed.rerun,
                on_thread=on_thread,
            )
        except Exception as exc:
            log.exception("/triage %s failed", ticket_id)
            await self._say(respond, f"Triage of #{ticket_id} failed unexpectedly ({type(exc).__name__}).")
            return
        if result.status in ("not_found", "config_error", "unavailable", "error"):
            await self._say(respond, ephemeral_text(result.message))
        elif result.status == "failed":
            link = f" → <{result.thread_url}|thread>" if result.thread_url else ""
            await self._say(
                respond, f"Triage of #{ticket_id} failed: {ephemeral_text(result.message, 500)}{link}"
            )

    # ------------------------------------------------------------ buttons

    async def on_action(self, ack: Any, body: dict[str, Any], action: dict[str, Any], respond: Any) -> None:
        await ack()
        action_id = str(action.get("action_id") or "")
        if action_id == ACTION_OPEN_TICKET:
            return  # a link button: Slack opens the URL, we only acknowledge
        self.rt.spawn(self._action(action_id, body, action, respond), name=f"action-{action_id}")

    async def _action(
        self, action_id: str, body: dict[str, Any], action: dict[str, Any], respond: Any
    ) -> None:
        refusal = await self._refusal(body, command_channel=False)
        if refusal:
            await self._say(respond, refusal)
            return
        run_id = str(action.get("value") or "")
        run = await self.store.get_run(run_id) if run_id else None
        if run is None:
            await self._say(
                respond, "This report is no longer available (its run was not found). Run `/triage` again."
            )
            return
        handler = {
            ACTION_PACKET: self._packet,
            ACTION_KB: self._kb,
            ACTION_REPLY: self._reply,
            ACTION_RERUN: self._rerun,
            ACTION_FEEDBACK_UP: self._feedback,
            ACTION_FEEDBACK_DOWN: self._feedback,
        }.get(action_id)
        if handler is None:
            log.info("ignoring unknown action %s", action_id)
            return
        try:
            await handler(run, body, action, respond)
        except Exception as exc:
            log.exception("action %s failed", action_id)
            await self._say(
                respond, f"That did not work: {ephemeral_text(str(exc) or type(exc).__name__, 300)}"
            )

    def _thread(self, run: RunRecord, body: dict[str, Any]) -> tuple[str, str]:
        if run.channel and run.thread_ts:
            return run.channel, run.thread_ts
        container = body.get("container") or {}
        message = body.get("message") or {}
        channel = _channel(body)
        ts = (
            container.get("thread_ts")
            or message.get("thread_ts")
            or container.get("message_ts")
            or message.get("ts")
        )
        return channel, str(ts or "")

    async def _claimed(self, run: RunRecord, kind: str, label: str, respond: Any) -> bool:
        """Claim an artefact; when someone already made it, link to it instead. True = we make it."""
        claimed, artefact = await self.store.claim_artefact(run.run_id, kind)
        if claimed:
            return True
        if artefact.status == "done":
            where = f"<{artefact.ref}|{label}>" if artefact.ref.startswith("http") else label
            await self._say(respond, f"Already posted in the thread → {where}")
        else:
            await self._say(respond, f"The {label} is being prepared; it will appear in the thread shortly.")
        return False

    async def _packet(
        self, run: RunRecord, body: dict[str, Any], action: dict[str, Any], respond: Any
    ) -> None:
        if run.report is None:
            await self._say(respond, "The report is not finished yet; try again when it is posted.")
            return
        if not await self._claimed(run, "packet", "escalation packet", respond):
            return
        channel, thread_ts = self._thread(run, body)
        try:
            ticket = None
            try:
                ticket = await self.services.engine.fetch(run.ticket_id)
            except Exception as exc:
                log.info("packet for #%s without the live ticket: %s", run.ticket_id, type(exc).__name__)
            async with self.services.triage_slots:
                packet = await self.services.engine.escalation_packet(run.report, ticket)
            first = ""
            for payload in packet_messages(packet):
                ts = await post_message(self.client, channel, payload, thread_ts=thread_ts)
                first = first or ts
            url = await permalink(self.client, channel, first) if first else ""
            await self.store.complete_artefact(run.run_id, "packet", url or first)
        except Exception as exc:
            await self.store.release_artefact(run.run_id, "packet")
            await post_error(
                self.client, channel, thread_ts, f"Could not build the escalation packet: {_reason(exc)}"
            )
            raise _Reported() from exc

    async def _kb(self, run: RunRecord, body: dict[str, Any], action: dict[str, Any], respond: Any) -> None:
        if run.report is None:
            await self._say(respond, "The report is not finished yet; try again when it is posted.")
            return
        if not await self._claimed(run, "kb", "KB article draft", respond):
            return
        channel, thread_ts = self._thread(run, body)
        try:
            async with self.services.triage_slots:
                article = await self.services.engine.kb_article(run.report)
            markdown = kb_markdown(article)
            filename = f"kb-draft-{run.ticket_id}.md"
            try:
                await self.client.files_upload_v2(
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
                self.client, channel, kb_preview_message(article, note), thread_ts=thread_ts
            )
            url = await permalink(self.client, channel, ts)
            await self.store.complete_artefact(run.run_id, "kb", url or ts, markdown)
        except Exception as exc:
            await self.store.release_artefact(run.run_id, "kb")
            await post_error(
                self.client, channel, thread_ts, f"Could not write the KB article draft: {_reason(exc)}"
            )
            raise _Reported() from exc

    async def _reply(
        self, run: RunRecord, body: dict[str, Any], action: dict[str, Any], respond: Any
    ) -> None:
        if run.report is None:
            await self._say(respond, "The report is not finished yet; try again when it is posted.")
            return
        writeback = self._writeback_enabled()
        report = run.report
        ready = bool(report.customer_reply_draft.strip())
        draft = ReplyDraft(body=report.customer_reply_draft, language=report.intake.language or "en")
        if not ready:
            draft = ReplyDraft(body="", language=report.intake.language or "en")
        # the trigger id expires 3 s after the click: open the modal now, fill it in afterwards if needed
        resp = await self.client.views_open(
            trigger_id=body.get("trigger_id"), view=reply_modal(run.run_id, draft, writeback)
        )
        if not ready:
            async with self.services.triage_slots:
                draft = await self.services.engine.reply_draft(report)
            view_id = (resp.get("view") or {}).get("id")
            await self.client.views_update(view_id=view_id, view=reply_modal(run.run_id, draft, writeback))

    async def _rerun(
        self, run: RunRecord, body: dict[str, Any], action: dict[str, Any], respond: Any
    ) -> None:
        async def on_thread(r: DeliveryResult) -> None:
            if not r.owned:
                where = f"<{r.thread_url}|thread>" if r.thread_url else "the thread"
                await self._say(respond, f"#{run.ticket_id} is already being triaged → {where}")

        result = await triage_ticket(
            self.services,
            run.ticket_id,
            trigger="rerun",
            invoker=_user(body),
            force=True,
            on_thread=on_thread,
        )
        if result.status in ("not_found", "config_error", "unavailable", "error"):
            await self._say(respond, ephemeral_text(result.message))

    async def _feedback(
        self, run: RunRecord, body: dict[str, Any], action: dict[str, Any], respond: Any
    ) -> None:
        up = action.get("action_id") == ACTION_FEEDBACK_UP
        await self.store.add_feedback(
            Feedback(run_id=run.run_id, user_id=_user(body), vote="up" if up else "down")
        )
        if up:
            await self._say(respond, "Thanks — glad it helped. 👍")
            return
        try:
            await self.client.views_open(trigger_id=body.get("trigger_id"), view=feedback_modal(run.run_id))
        except SlackApiError as exc:
            log.info("feedback modal not opened: %s", slack_error(exc))
            await self._say(respond, "Thanks — your 👎 was recorded.")

    def _writeback_enabled(self) -> bool:
        return bool(self.settings.zendesk_writeback and self.services.zendesk is not None)

    # ------------------------------------------------------------ modals

    async def on_reply_submit(self, ack: Any, body: dict[str, Any], view: dict[str, Any]) -> None:
        text = _input_value(view, REPLY_BLOCK, REPLY_INPUT)
        if self._writeback_enabled() and not text.strip():
            await ack(response_action="errors", errors={REPLY_BLOCK: "The note is empty."})
            return
        await ack()
        self.rt.spawn(self._reply_submitted(body, view, text), name="reply-submit")

    async def _reply_submitted(self, body: dict[str, Any], view: dict[str, Any], text: str) -> None:
        user = _user(body)
        run = await self.store.get_run(str(view.get("private_metadata") or ""))
        if run is None or not run.channel:
            log.warning("reply submitted for an unknown run")
            return
        channel, thread_ts = run.channel, run.thread_ts
        if not await self.rt.access.user_allowed(user):
            await self._ephemeral(channel, user, thread_ts, REFUSAL)
            return
        if not self._writeback_enabled():
            await self._ephemeral_blocks(channel, user, thread_ts, _copy_message(run.ticket_id, text))
            return
        claimed, artefact = await self.store.claim_artefact(run.run_id, "reply_note")
        if not claimed:
            state = "was already added" if artefact.status == "done" else "is being added"
            await self._ephemeral(
                channel,
                user,
                thread_ts,
                f"The reply for this report {state} as a private note on #{run.ticket_id}.",
            )
            return
        try:
            zendesk = self.services.zendesk
            assert zendesk is not None
            result = zendesk.add_private_note(run.ticket_id, text)
            if inspect.isawaitable(result):
                await result
        except Exception as exc:
            await self.store.release_artefact(run.run_id, "reply_note")
            await post_error(
                self.client,
                channel,
                thread_ts,
                f"Could not add the private note to #{run.ticket_id}: {_reason(exc)}",
            )
            return
        await self.store.complete_artefact(run.run_id, "reply_note", f"zendesk:{run.ticket_id}", text)
        await post_message(
            self.client,
            channel,
            notice_message(
                f"Reply draft added to #{run.ticket_id} as a private internal note by {user}.", "📝"
            ),
            thread_ts=thread_ts,
        )

    async def on_feedback_submit(self, ack: Any, body: dict[str, Any], view: dict[str, Any]) -> None:
        await ack()
        comment = _input_value(view, FEEDBACK_BLOCK, FEEDBACK_INPUT)
        run_id = str(view.get("private_metadata") or "")
        self.rt.spawn(self._feedback_submitted(run_id, _user(body), comment), name="feedback-submit")

    async def _feedback_submitted(self, run_id: str, user: str, comment: str) -> None:
        if not run_id or await self.store.get_run(run_id) is None:
            return
        await self.store.add_feedback(
            Feedback(run_id=run_id, user_id=user, vote="down", comment=comment[:3000])
        )

    async def _ephemeral(self, channel: str, user: str, thread_ts: str | None, text: str) -> None:
        await self._ephemeral_blocks(channel, user, thread_ts, {"text": text})

    async def _ephemeral_blocks(
        self, channel: str, user: str, thread_ts: str | None, payload: dict[str, Any]
    ) -> None:
        try:
            await self.client.chat_postEphemeral(channel=channel, user=user, thread_ts=thread_ts, **payload)
        except SlackApiError as exc:
            log.warning("chat.postEphemeral failed: %s", slack_error(exc))

    # ------------------------------------------------------------ events

    async def on_mention(self, body: dict[str, Any], event: dict[str, Any], context: Any) -> None:
        self.rt.spawn(self._event(body, event, context, mentioned=True), name="app-mention")

    async def on_message(self, body: dict[str, Any], event: dict[str, Any], context: Any) -> None:
        self.rt.spawn(self._event(body, event, context, mentioned=False), name="message")

    async def _event(
        self, body: dict[str, Any], event: dict[str, Any], context: Any, *, mentioned: bool
    ) -> None:
        await handle_thread_message(
            self.services,
            event,
            bot_user_id=context.get("bot_user_id"),
            bot_id=context.get("bot_id"),
            mentioned=mentioned,
            envelope=body,
        )


class _Reported(Exception):
    """The failure was already posted in the thread."""

    def __str__(self) -> str:
        return "the error is shown in the thread"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, SlackApiError):
        return f"Slack said {slack_error(exc)}"
    return str(exc)[:300] or type(exc).__name__


def _input_value(view: dict[str, Any], block: str, action: str) -> str:
    values = ((view.get("state") or {}).get("values") or {}).get(block) or {}
    return str((values.get(action) or {}).get("value") or "")


def _copy_message(ticket_id: int, text: str) -> dict[str, Any]:
    """The reply for copying (write-back is off): an intro plus the text in code blocks."""
    intro = (
        f"Write-back to Zendesk is off (ZENDESK_WRITEBACK=false), so nothing was sent. "
        f"Copy the reply for #{ticket_id} below."
    )
    blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": intro}}]
    body = safe_mrkdwn(text).replace("```", "`\u200b`\u200b`") or "(empty)"
    for chunk in split_mrkdwn(body, 2900)[:40]:
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": f"```\n{chunk}\n```", "verbatim": True}}
        )
    return {"text": intro, "blocks": blocks}
