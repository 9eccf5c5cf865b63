"""`POST /zendesk/webhook`: a signed Zendesk webhook that starts a triage in the background.

Signature (Zendesk "verifying webhook authenticity"): the request carries
`X-Zendesk-Webhook-Signature` = base64(HMAC-SHA256(key=signing secret, msg=TIMESTAMP + RAW_BODY)) and
`X-Zendesk-Webhook-Signature-Timestamp` (ISO 8601, e.g. `2024-05-21T15:42:48Z`; epoch seconds are
accepted too). We verify over the raw bytes, compare in constant time, and reject timestamps more
than 5 minutes away from our clock (replay protection). A replay inside the window is harmless: the
triage is claimed once per (ticket, version) in the store.

Bodies: a trigger body `{"ticket_id": "{{ticket.id}}"}` (string or number), Zendesk's event-webhook
shape `{"type": "zen:event-type:ticket.…", "subject": "zen:ticket:123", "detail": {"id": "123"}, …}`
(developer.zendesk.com "Webhook event types" / "Ticket events"), and `{"ticket": {"id": 123}}`. Only
ticket events are read: a user or organization event (`zen:event-type:user.…`, `subject: zen:user:N`)
carries *that* record's id in `detail.id`, so it is acknowledged and ignored, never read as a ticket.
An id is 1-19 ASCII digits and fits a signed 64-bit integer; anything else (`"9"*5000`, `"²"`) is 400.

Answers: 503 when ZENDESK_WEBHOOK_SECRET is not set (fail closed: an unsigned endpoint would let
anyone trigger triages), 401 on a missing/bad/stale signature, 400 on invalid JSON (including nesting
too deep to parse) or no valid ticket id, 200 for an ignored non-ticket event, otherwise 202 at once —
the work (fetch, filter, claim, triage) is started with `spawn` and never delays the answer (Zendesk
times webhooks out after a few seconds and retries).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/zendesk/webhook"
SIGNATURE_HEADER = "X-Zendesk-Webhook-Signature"
TIMESTAMP_HEADER = "X-Zendesk-Webhook-Signature-Timestamp"
TOLERANCE_S = 300
MAX_BODY = 256 * 1024  # a trigger body is tiny; refuse anything silly before hashing it
TRIGGER = "webhook"

# an `async def dispatch(ticket_id, trigger)`; `spawn` starts the coroutine in the background and keeps
# a reference (e.g. SlackRuntime.spawn, so shutdown drains it)
Dispatch = Callable[[int, str], Coroutine[Any, Any, object]]
Spawn = Callable[[Coroutine[Any, Any, Any]], object]


def sign(secret: str, timestamp: str, raw_body: bytes) -> str:
    """The signature Zendesk sends (also used by tests and `triagebot` tooling)."""
    digest = hmac.new(secret.encode(), timestamp.encode() + raw_body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def parse_timestamp(timestamp: str) -> float | None:
    """ISO 8601 (`2024-05-21T15:42:48Z`, offsets, fractions) or epoch seconds → epoch seconds."""
    text = (timestamp or "").strip()
    if not text:
        return None
    try:
        if text.lstrip("-").replace(".", "", 1).isdigit():
            value = float(text)
            return value / 1000 if value > 1e11 else value  # epoch milliseconds, just in case
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except (ValueError, OverflowError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def verify_signature(
    secret: str,
    signature: str,
    timestamp: str,
    raw_body: bytes,
    *,
    now: float | None = None,
    tolerance_s: int = TOLERANCE_S,
) -> bool:
    """True when `signature` is Zendesk's signature of `timestamp + raw_body` and the timestamp is fresh."""
    if not secret or not signature or not timestamp:
        return False
    sent_at = parse_timestamp(timestamp)
    if sent_at is None:
        return False
    current = time.time() if now is None else now
    if abs(current - sent_at) > tolerance_s:
        return False
    expected = sign(secret, timestamp, raw_body)
    return hmac.compare_digest(expected.encode(), signature.strip().encode())


MAX_ID = 2**63 - 1  # the store keeps ticket ids in a BIGINT
EVENT_PREFIX = "zen:event-type:"
TICKET_EVENT_PREFIX = "zen:event-type:ticket."
TICKET_SUBJECT_PREFIX = "zen:ticket:"


def _as_id(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 < value <= MAX_ID else None
    if isinstance(value, str):
        text = value.strip()
        # ASCII digits only ("²".isdigit() is True) and short enough that int() is cheap and bounded
        if 0 < len(text) <= 19 and text.isascii() and text.isdigit():
            number = int(text)
            return number if 0 < number <= MAX_ID else None
    return None


def ignored_event(body: Any) -> str | None:
    """The type of a Zendesk event that is not about a ticket (user, organization …), else None."""
    if not isinstance(body, dict) or "ticket_id" in body:
        return None
    kind = body.get("type")
    subject = body.get("subject")
    if isinstance(kind, str) and kind.startswith(EVENT_PREFIX) and not kind.startswith(TICKET_EVENT_PREFIX):
        return kind[:100]
    if (
        isinstance(subject, str)
        and subject.startswith("zen:")
        and not subject.startswith(TICKET_SUBJECT_PREFIX)
    ):
        return subject.rsplit(":", 1)[0][:100]
    return None


def parse_ticket_id(body: Any) -> int | None:
    """The ticket id of a trigger body, a ticket-event body or `{"ticket": {"id": …}}`; else None.

    Call `ignored_event` first: `detail.id` is only a ticket id in a ticket event.
    """
    if not isinstance(body, dict):
        return None
    if "ticket_id" in body:
        return _as_id(body["ticket_id"])
    subject = body.get("subject")
    if isinstance(subject, str) and subject.startswith(TICKET_SUBJECT_PREFIX):
        return _as_id(subject.removeprefix(TICKET_SUBJECT_PREFIX))
    kind = body.get("type")
    detail = body.get("detail")
    if isinstance(kind, str) and kind.startswith(TICKET_EVENT_PREFIX) and isinstance(detail, dict):
        return _as_id(detail.get("id"))
    ticket = body.get("ticket")
    if isinstance(ticket, dict):
        return _as_id(ticket.get("id"))
    return None


def _problem(status: int, message: str) -> web.Response:
    return web.json_response({"ok": False, "error": message}, status=status)


def make_webhook_handler(
    secret: str | None, dispatch: Dispatch, spawn: Spawn
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The aiohttp handler for POST /zendesk/webhook.

    `dispatch(ticket_id, "webhook")` does the work (fetch → filter → claim → triage); `spawn` starts
    it in the background and must not block (e.g. a TaskGroup-like `spawn` that tracks the task so
    shutdown can drain it). The handler answers 202 as soon as the work is spawned.
    """

    async def handler(request: web.Request) -> web.Response:
        if not secret:
            log.error("Zendesk webhook call refused: ZENDESK_WEBHOOK_SECRET is not set")
            return _problem(
                503,
                "webhook not configured: set ZENDESK_WEBHOOK_SECRET to the webhook's signing secret",
            )
        signature = request.headers.get(SIGNATURE_HEADER, "")
        timestamp = request.headers.get(TIMESTAMP_HEADER, "")
        if not signature or not timestamp:
            return _problem(401, f"missing {SIGNATURE_HEADER} / {TIMESTAMP_HEADER}")
        if request.content_length is not None and request.content_length > MAX_BODY:
            return _problem(413, "body too large")
        raw = await request.read()
        if len(raw) > MAX_BODY:
            return _problem(413, "body too large")
        if not verify_signature(secret, signature, timestamp, raw):
            log.warning("Zendesk webhook: bad or stale signature (timestamp %r)", timestamp[:40])
            return _problem(401, "bad or stale signature")
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
            return _problem(400, "body is not valid JSON")
        if (kind := ignored_event(body)) is not None:
            log.info("Zendesk webhook: %s is not a ticket event; ignored", kind)
            return web.json_response({"ok": True, "ignored": kind}, status=200)
        ticket_id = parse_ticket_id(body)
        if ticket_id is None:
            return _problem(400, 'no valid ticket id: send {"ticket_id": "{{ticket.id}}"} or a ticket event')
        work = dispatch(ticket_id, TRIGGER)
        try:
            spawn(work)
        except Exception:
            work.close()  # never started: do not leave an un-awaited coroutine behind
            log.exception("Zendesk webhook: could not start the triage of #%s", ticket_id)
            return _problem(503, "could not start the triage; retry later")
        log.info("Zendesk webhook: ticket #%s accepted", ticket_id)
        return web.json_response({"ok": True, "ticket_id": ticket_id}, status=202)

    return handler


def webhook_route(secret: str | None, dispatch: Dispatch, spawn: Spawn) -> web.RouteDef:
    """`web.post(WEBHOOK_PATH, handler)` for `build_web_app(extra_routes=[...])`."""
    return web.post(WEBHOOK_PATH, make_webhook_handler(secret, dispatch, spawn))
