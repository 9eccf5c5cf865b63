"""The message shortcut "Triage this message" (callback id `triage_message`).

- A Zendesk ticket link in the message → that ticket is triaged (as `/triage <id>` would).
- Otherwise the message's text is triaged as a pasted ticket, with its author's name as the requester
  name (no e-mail: a Slack author is not necessarily the customer), keyed on the message, so running
  the shortcut again on the same message finds the same thread.
- The report goes to TRIAGE_CHANNEL as usual. The source message gets a threaded reply linking to the
  report; if the bot cannot post there (not a member, a DM…) the clicker gets an ephemeral note instead.
- Access (who, which channels) is the `guard` middleware's, as for `/triage`. A message in a Slack
  Connect (externally shared) channel is refused unless SLACK_TRIAGE_SHARED_MESSAGES=true; even then
  nothing is ever posted in the shared channel (the clicker gets the link ephemerally). When the channel
  cannot be checked (conversations.info fails), it is treated as shared (fail closed).
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError

from bot.delivery import DeliveryResult, triage_ticket
from bot.listeners.common import Deps, channel_of, user_of
from bot.listeners.home import remember
from bot.listeners.paste import triage_text, zendesk_ticket_in
from bot.slack_runtime import permalink, slack_error
from formatting.actions import SHORTCUT_TRIAGE_MESSAGE
from formatting.cards import ephemeral_text
from triage.models import ticket_ref

log = logging.getLogger(__name__)

SHARED_MESSAGE_REFUSAL = (
    "This message is in a Slack Connect (externally shared) channel, so it is not triaged here. "
    "Ask an admin to set SLACK_TRIAGE_SHARED_MESSAGES=true, or paste it with `/triage`."
)


class ShortcutListeners:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    def register(self, app: AsyncApp) -> None:
        app.message_shortcut(SHORTCUT_TRIAGE_MESSAGE)(self.on_triage_message)

    async def on_triage_message(self, ack: Any, body: dict[str, Any], respond: Any) -> None:
        await ack()
        self.deps.rt.spawn(self._triage_message(body, respond), name="shortcut-triage-message")

    async def _shared(self, channel: str) -> bool:
        try:
            return await self.deps.rt.access.channel_is_shared(channel)
        except SlackApiError as exc:
            log.info("conversations.info(%s) failed (%s); treating it as shared", channel, slack_error(exc))
            return True

    async def _triage_message(self, body: dict[str, Any], respond: Any) -> None:
        deps = self.deps
        message = body.get("message") or {}
        channel, user = channel_of(body), user_of(body)
        message_ts = str(message.get("ts") or body.get("message_ts") or "")
        shared = await self._shared(channel)
        if shared and not deps.settings.slack_triage_shared_messages:
            await deps.say(respond, SHARED_MESSAGE_REFUSAL)
            return
        text = str(message.get("text") or "")
        ticket_id = zendesk_ticket_in(text, deps.settings.zendesk_base_url)

        async def on_thread(r: DeliveryResult) -> None:
            await self._tell(r, channel, message_ts, user, respond, post_in_source=not shared)

        try:
            if ticket_id is not None:
                result = await triage_ticket(
                    deps.services, ticket_id, trigger="shortcut", invoker=user, on_thread=on_thread
                )
            else:
                author = await self._author_name(str(message.get("user") or ""), message)
                source = await permalink(deps.client, channel, message_ts) if message_ts else ""
                result = await triage_text(
                    deps,
                    text,
                    key=f"slack:{body.get('team', {}).get('id', '')}:{channel}:{message_ts}",
                    trigger="shortcut",
                    invoker=user,
                    on_thread=on_thread,
                    requester_name=author,
                    url=source,
                )
        except Exception as exc:
            log.exception("triage of a Slack message failed")
            await deps.say(respond, f"Triage of that message failed unexpectedly ({type(exc).__name__}).")
            return
        if result.status in ("not_found", "config_error", "unavailable", "error"):
            await deps.say(respond, ephemeral_text(result.message))
        elif result.status == "failed":
            link = f" → <{result.thread_url}|thread>" if result.thread_url else ""
            await deps.say(
                respond,
                f"Triage of {ticket_ref(result.ticket_id)} failed: {ephemeral_text(result.message, 500)}{link}",
            )

    async def _author_name(self, user_id: str, message: dict[str, Any]) -> str:
        """The author's display name (users.info); a bot's name from the message; never an e-mail."""
        profile = message.get("user_profile") or {}
        name = str(profile.get("real_name") or profile.get("display_name") or "")
        if name or not user_id:
            return name or str((message.get("bot_profile") or {}).get("name") or "")
        try:
            resp = await self.deps.client.users_info(user=user_id)
        except SlackApiError as exc:
            log.info("users.info(%s) failed: %s", user_id, slack_error(exc))
            return ""
        info = resp.get("user") or {}
        prof = info.get("profile") or {}
        return str(
            prof.get("real_name")
            or prof.get("display_name")
            or info.get("real_name")
            or info.get("name")
            or ""
        )

    async def _tell(
        self,
        r: DeliveryResult,
        channel: str,
        message_ts: str,
        user: str,
        respond: Any,
        *,
        post_in_source: bool,
    ) -> None:
        """Link the source message to the report: a threaded reply, or an ephemeral note to the clicker."""
        await remember(self.deps, user, r)
        ref = ticket_ref(r.ticket_id)
        where = f"<{r.thread_url}|triage report>" if r.thread_url else "the triage channel"
        if r.owned:
            text = f"🔎 Triaging {ref} for <@{user}> → {where}"
        elif r.status == "running":
            text = f"🔎 {ref} is already being triaged → {where}"
        else:
            text = f"🔎 {ref} was already triaged → {where}"
        if post_in_source and message_ts:
            try:
                await self.deps.client.chat_postMessage(
                    channel=channel, thread_ts=message_ts, text=text, unfurl_links=False, unfurl_media=False
                )
                return
            except SlackApiError as exc:
                log.info("cannot reply in %s (%s); telling the clicker instead", channel, slack_error(exc))
        await self.deps.say(respond, text)
