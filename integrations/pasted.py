"""A ticket that did not come from Zendesk: pasted text, an e-mail, a Zendesk JSON export, a Slack message.

Three input shapes, told apart by the file name (`.eml`, `.json`) or, for stdin and Slack, by content:

- plain text: the whole text is the customer's message; the subject is `--subject` or its first line;
- an e-mail (RFC 5322, `.eml`): Subject, From (name + address) and the text body (HTML reduced to
  text), read with the stdlib `email` package;
- Zendesk JSON: `{"ticket": {...}, "comments": [...], "users": [...], "organizations": [...]}` — the
  responses of `GET /api/v2/tickets/{id}.json` and `GET /api/v2/tickets/{id}/comments.json` merged,
  with the optional `users`/`organizations` sideloads (`?include=users`), converted exactly like a
  live ticket (`integrations.zendesk.ticket_from_api`).

Every pasted ticket gets a synthetic NEGATIVE id (`triage.models.pasted_ticket_id`, shown as
`pasted-<12 hex>`), so it can never be mistaken for, or collide with, a Zendesk ticket. The id comes
from a hash of the input (or of the Slack message's channel and ts), so pasting the same text again
finds its earlier run; the version key is a hash of the content, so changed text triages again.

Bad input raises `PastedInputError` with one line for a person: empty, binary, too large, or an
e-mail / JSON that cannot be read.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import parseaddr, parsedate_to_datetime
from html.parser import HTMLParser
from typing import Any, Literal

from integrations.zendesk import ticket_from_api
from triage.models import AuthorRole, Comment, Person, Ticket, pasted_ticket_id
from triage.protocols import TriageError

MAX_BYTES = 256 * 1024  # a support ticket; anything bigger is a log file or the wrong file
SUBJECT_MAX = 150
_BINARY_SAMPLE = 8192
_HEADER_RE = re.compile(r"^[A-Za-z][A-Za-z0-9-]*:[ \t]")

Kind = Literal["text", "eml", "json"]


class PastedInputError(TriageError):
    """Input we cannot triage; the message is one line for the person who gave it."""


def kind_for_name(name: str) -> Kind | None:
    lowered = name.lower()
    if lowered.endswith(".eml"):
        return "eml"
    if lowered.endswith(".json"):
        return "json"
    return None


def check_size(size: int, what: str) -> None:
    if size > MAX_BYTES:
        raise PastedInputError(
            f"{what} is {size // 1024} KB, over the {MAX_BYTES // 1024} KB limit for a ticket"
        )


def _decode(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise PastedInputError(
            f"{what} is not UTF-8 text (binary?); give plain text, an .eml or a .json ticket"
        ) from None


def _sniff(text: str) -> Kind:
    stripped = text.lstrip()
    if stripped.startswith("{"):
        try:
            doc = json.loads(stripped)
        except ValueError:
            return "text"
        return "json" if isinstance(doc, dict) and isinstance(doc.get("ticket"), dict) else "text"
    head = text.lstrip("\r\n").split("\n\n", 1)[0].splitlines()
    names = {line.split(":", 1)[0].lower() for line in head if _HEADER_RE.match(line)}
    if head and _HEADER_RE.match(head[0]) and "from" in names and names & {"subject", "date", "message-id"}:
        return "eml"
    return "text"


def _content_version(text: str) -> str:
    return "paste-" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def read_ticket(
    data: bytes,
    *,
    what: str = "input",
    kind: Kind | None = None,
    subject: str | None = None,
    requester_email: str | None = None,
    requester_name: str | None = None,
    key: str | None = None,
    url: str = "",
    received_at: datetime | None = None,
) -> Ticket:
    """Turn pasted bytes into a Ticket with a synthetic id. `key` names the source (default: the content)."""
    check_size(len(data), what)
    if not data.strip():
        raise PastedInputError(f"{what} is empty: nothing to triage")
    if b"\x00" in data[:_BINARY_SAMPLE]:
        raise PastedInputError(f"{what} looks binary (NUL bytes); give plain text, an .eml or a .json ticket")
    text = "" if kind == "eml" else _decode(data, what)
    if kind != "eml" and not text.strip():
        raise PastedInputError(f"{what} is empty: nothing to triage")
    kind = kind or _sniff(text)
    if kind == "eml":
        ticket = _from_email(data, what)
    elif kind == "json":
        ticket = _from_json(text, what)
    else:
        ticket = _from_text(text)
    return _finish(ticket, subject, requester_email, requester_name, key, url, received_at)


def _finish(
    ticket: Ticket,
    subject: str | None,
    requester_email: str | None,
    requester_name: str | None,
    key: str | None,
    url: str,
    received_at: datetime | None,
) -> Ticket:
    content = "\n".join([ticket.subject, ticket.description, *(c.body for c in ticket.comments)])
    if not content.strip():
        raise PastedInputError("the input has no text to triage")
    requester = ticket.requester.model_copy(
        update={k: v for k, v in (("email", requester_email), ("name", requester_name)) if v}
    )
    subject_line = (subject or ticket.subject or _first_line(ticket.description)).strip()[:SUBJECT_MAX]
    stamp = received_at or ticket.updated_at or ticket.created_at or datetime.now(UTC)
    return ticket.model_copy(
        update={
            "id": pasted_ticket_id(key or content),
            "url": url,
            "subject": subject_line,
            "requester": requester,
            "created_at": ticket.created_at or stamp,
            "updated_at": None,
            "custom_fields": {**ticket.custom_fields, "pasted_version": _content_version(content)},
        }
    )


def pasted_version(ticket: Ticket) -> str:
    """The claim version of a pasted ticket: a hash of its content (changed text triages again)."""
    return str(ticket.custom_fields.get("pasted_version") or ticket.version_key)


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""


def _from_text(text: str, *, author: str = "") -> Ticket:
    body = text.strip()
    return Ticket(
        id=0,
        description=body,
        via_channel="pasted",
        comments=[Comment(author_name=author, author_role=AuthorRole.customer, public=True, body=body)],
    )


# ---------------------------------------------------------------- e-mail


class _TextOfHtml(HTMLParser):
    _BREAKS = frozenset({"br", "p", "div", "li", "tr", "h1", "h2", "h3", "h4", "blockquote"})

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        elif tag in self._BREAKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    parser = _TextOfHtml()
    parser.feed(html)
    parser.close()
    return re.sub(r"\n{3,}", "\n\n", re.sub(r"[ \t]+", " ", "".join(parser.parts))).strip()


def _from_email(data: bytes, what: str) -> Ticket:
    try:
        msg = BytesParser(policy=policy.default).parsebytes(data)
    except Exception as exc:  # the parser is lenient; this is for truly broken input
        raise PastedInputError(f"{what} is not a readable e-mail ({type(exc).__name__})") from None
    if not isinstance(msg, EmailMessage) or not (msg.get("From") or msg.get("Subject")):
        raise PastedInputError(f"{what} is not a readable e-mail: no From or Subject header")
    try:
        part = msg.get_body(preferencelist=("plain", "html"))
        body = part.get_content() if part is not None else ""
        if part is not None and part.get_content_type() == "text/html":
            body = html_to_text(str(body))
    except (LookupError, UnicodeError, AttributeError, ValueError) as exc:
        raise PastedInputError(
            f"{what} is not a readable e-mail: its body cannot be decoded ({exc})"
        ) from None
    body = str(body or "").strip()
    subject = str(msg.get("Subject") or "").strip()
    if not body and not subject:
        raise PastedInputError(f"{what} is not a readable e-mail: no text body")
    name, address = parseaddr(str(msg.get("From") or ""))
    sent: datetime | None = None
    try:
        sent = parsedate_to_datetime(str(msg["Date"])) if msg.get("Date") else None
    except (TypeError, ValueError):
        sent = None
    ticket = _from_text(body or subject, author=name)
    return ticket.model_copy(
        update={
            "subject": subject,
            "requester": Person(name=name, email=address),
            "via_channel": "email",
            "created_at": sent,
        }
    )


# ---------------------------------------------------------------- Zendesk JSON


def _from_json(text: str, what: str) -> Ticket:
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise PastedInputError(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("ticket"), dict):
        raise PastedInputError(
            f'{what} is not a Zendesk ticket: expected {{"ticket": {{...}}, "comments": [...]}}'
        )
    raw = dict(doc["ticket"])
    comments = [c for c in doc.get("comments") or [] if isinstance(c, dict)]
    users = {
        int(u["id"]): u
        for u in doc.get("users") or []
        if isinstance(u, dict) and isinstance(u.get("id"), int)
    }
    orgs = [o for o in doc.get("organizations") or [] if isinstance(o, dict)]
    org = next((o for o in orgs if o.get("id") == raw.get("organization_id")), None)
    raw.setdefault("id", 0)
    try:
        ticket = ticket_from_api(raw, comments, users, org)
    except (TypeError, ValueError) as exc:
        raise PastedInputError(f"{what} is not a Zendesk ticket: {str(exc).splitlines()[0][:200]}") from None
    if not ticket.comments and ticket.description:
        ticket = ticket.model_copy(
            update={"comments": [Comment(author_role=AuthorRole.customer, body=ticket.description)]}
        )
    return ticket.model_copy(update={"via_channel": ticket.via_channel or "zendesk-json"})
