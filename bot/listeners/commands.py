"""`/triage`: parse the text, acknowledge at once, triage in the background."""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError

from bot.delivery import DeliveryResult, triage_ticket
from bot.listeners.common import COMMAND, Deps, user_of
from bot.listeners.home import remember
from bot.slack_runtime import slack_error
from formatting.cards import ephemeral_text
from formatting.escape import safe_mrkdwn
from formatting.modals import paste_modal

log = logging.getLogger(__name__)

_ID_RE = re.compile(r"^#?(\d{1,12})$")
_URL_RE = re.compile(
    r"^https?://[^\s/]+/(?:agent/tickets|api/v2/tickets|hc/[^/\s]+/requests|tickets)/(\d{1,12})(?:[/?#.][^\s]*)?$"
)


@dataclass
class TriageCommand:
    ticket_id: int | None = None
    rerun: bool = False
    help: bool = False
    paste: bool = False  # no arguments: open the paste modal
    error: str = ""


def parse_ticket(text: str) -> int | None:
    """`48291`, `#48291` or a Zendesk ticket URL (Slack may wrap it in `<…>`) → 48291."""
    ref = text.strip()
    if ref.startswith("<") and ref.endswith(">"):
        ref = ref[1:-1].split("|", 1)[0]
    match = _ID_RE.match(ref) or _URL_RE.match(ref)
    return int(match.group(1)) if match else None


def parse_command(text: str) -> TriageCommand:
    """`48291`, `#48291`, a Zendesk ticket URL (Slack may wrap it in `<…>`), optionally `--rerun`;
    nothing at all opens the paste modal."""
    tokens = (text or "").split()
    if not tokens:
        return TriageCommand(paste=True)
    if tokens[0].lower() in ("help", "-h", "--help", "?"):
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
    ticket_id = parse_ticket(refs[0])
    if ticket_id is None:
        ref = refs[0].strip("<>").split("|", 1)[0]
        return TriageCommand(error=f"`{safe_mrkdwn(ref[:80])}` is not a ticket number or Zendesk ticket URL")
    return TriageCommand(ticket_id=ticket_id, rerun=rerun)


def help_text(channel: str) -> str:
    where = f"<#{channel}>" if channel else "the triage channel"
    return (
        f"*{COMMAND}* researches a Zendesk ticket and posts a triage report in {where}.\n"
        f"• `{COMMAND} 48291`, `{COMMAND} #48291` or `{COMMAND} https://acme.zendesk.com/agent/tickets/48291`\n"
        f"• `{COMMAND} 48291 --rerun` triages again even if this version of the ticket was already triaged\n"
        f"• `{COMMAND}` alone opens a form to paste a customer's message (no Zendesk ticket needed)\n"
        "• on any message: ⋮ → *Triage this message* (a Zendesk link in it triages that ticket)\n"
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


class CommandListeners:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    def register(self, app: AsyncApp) -> None:
        app.command(COMMAND)(self.on_command)

    async def on_command(self, ack: Any, command: dict[str, Any], respond: Any) -> None:
        channel = self.deps.settings.triage_channel
        parsed = parse_command(str(command.get("text") or ""))
        if parsed.help:
            await ack(text=help_text(channel), response_type="ephemeral")
            return
        if parsed.paste:
            await ack()
            await self._open_paste_modal(command, respond)
            return
        if parsed.error or parsed.ticket_id is None:
            await ack(
                text=usage_text(parsed.error or "that did not parse", channel), response_type="ephemeral"
            )
            return
        await ack()
        self.deps.rt.spawn(self._command(command, parsed, respond), name=f"slash-{parsed.ticket_id}")

    async def _open_paste_modal(self, command: dict[str, Any], respond: Any) -> None:
        """views.open at once: the trigger id expires 3 s after the command."""
        metadata = json.dumps({"channel": str(command.get("channel_id") or "")})
        try:
            await self.deps.client.views_open(
                trigger_id=command.get("trigger_id"),
                view=paste_modal(metadata, self.deps.settings.triage_channel),
            )
        except SlackApiError as exc:
            log.warning("paste modal not opened: %s", slack_error(exc))
            await self.deps.say(
                respond,
                f"Could not open the form ({slack_error(exc)}). "
                + help_text(self.deps.settings.triage_channel),
            )

    async def _command(self, command: dict[str, Any], parsed: TriageCommand, respond: Any) -> None:
        ticket_id = parsed.ticket_id
        assert ticket_id is not None
        say = self.deps.say

        async def on_thread(r: DeliveryResult) -> None:
            await remember(self.deps, user_of(command), r)
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
            await say(respond, text)

        try:
            result = await triage_ticket(
                self.deps.services,
                ticket_id,
                trigger="rerun" if parsed.rerun else "slash",
                invoker=user_of(command),
                force=parsed.rerun,
                on_thread=on_thread,
            )
        except Exception as exc:
            log.exception("/triage %s failed", ticket_id)
            await say(respond, f"Triage of #{ticket_id} failed unexpectedly ({type(exc).__name__}).")
            return
        if result.status in ("not_found", "config_error", "unavailable", "error"):
            await say(respond, ephemeral_text(result.message))
        elif result.status == "failed":
            link = f" → <{result.thread_url}|thread>" if result.thread_url else ""
            await say(respond, f"Triage of #{ticket_id} failed: {ephemeral_text(result.message, 500)}{link}")
