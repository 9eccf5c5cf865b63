"""Triage text that came from Slack (a message shortcut, the paste modal) as a pasted ticket.

Slack message text is mrkdwn: links arrive as `<https://x|label>`, `&`, `<` and `>` as entities. It is
turned back into plain text before it becomes a ticket (`integrations.pasted`), so redaction, intake
and the model see what the customer wrote. A Zendesk ticket link in the text (on the configured
Zendesk host, or any `*.zendesk.com` host when none is configured) means "triage that ticket" instead.
"""

from __future__ import annotations

import html
import re
from urllib.parse import urlsplit

from bot.delivery import DeliveryResult, OnThread, triage_ticket
from bot.listeners.common import Deps
from integrations.pasted import PastedInputError, read_ticket

_LINK = re.compile(r"<((?:https?|mailto):[^|>\s]+)(?:\|[^>]*)?>")
_ZENDESK_TICKET = re.compile(
    r"https?://([^/\s|>]+)/(?:agent/tickets|tickets|api/v2/tickets|hc/[^/\s|>]+/requests)/(\d{1,12})\b"
)


def slack_to_plain(text: str) -> str:
    """`<https://x|label>` → `https://x`, `<mailto:a@b|a@b>` → `a@b`, entities decoded."""
    plain = _LINK.sub(lambda m: m.group(1).removeprefix("mailto:"), text or "")
    return html.unescape(plain)


def zendesk_ticket_in(text: str, zendesk_base_url: str) -> int | None:
    """The id of the first Zendesk ticket link in `text` (on our Zendesk host if one is configured)."""
    ours = (urlsplit(zendesk_base_url).hostname or "").lower() if zendesk_base_url else ""
    for match in _ZENDESK_TICKET.finditer(slack_to_plain(text)):
        host = match.group(1).split(":")[0].lower()
        if (ours and host == ours) or (not ours and host.endswith(".zendesk.com")):
            return int(match.group(2))
    return None


async def triage_text(
    deps: Deps,
    text: str,
    *,
    key: str,
    trigger: str,
    invoker: str,
    on_thread: OnThread,
    requester_name: str = "",
    url: str = "",
    sniff: bool = False,
) -> DeliveryResult:
    """Triage `text` as a pasted ticket into TRIAGE_CHANNEL. `key` names the source (message / paste).

    Bad text (empty, too long) comes back as status "error" with a one-line message.
    """
    try:
        ticket = read_ticket(
            slack_to_plain(text).encode("utf-8"),
            what="the message",
            kind=None if sniff else "text",
            requester_name=requester_name or None,
            key=key,
            url=url,
        )
    except PastedInputError as exc:
        return DeliveryResult(0, "error", message=str(exc))
    return await triage_ticket(
        deps.services, ticket.id, trigger=trigger, invoker=invoker, on_thread=on_thread, ticket=ticket
    )
