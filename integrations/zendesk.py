"""`ZendeskTicketSource`: the `TicketSource` over zenpy 2.0.57 (sync, not thread-safe).

Concurrency: zenpy is blocking and shares mutable state per client (requests.Session, dirty-object
tracking, rate-limit budget), so every call runs on a bounded `ThreadPoolExecutor` (`workers`) with
ONE Zenpy client per worker thread (`threading.local`), via `loop.run_in_executor` — the event loop
never blocks, and no client is ever used by two threads. Caches are disabled (`disable_cache=True`:
zenpy's user/org LRU caches never expire) and zenpy's proactive rate limiting is off.

Reads never use zenpy's lazy properties (`ticket.requester`, `comment.author` issue hidden requests):
the ticket, all comment pages, the comment authors + requester (one `users/show_many` per 100 ids)
and the organization are fetched explicitly by id.

Errors (in one place, `_translate`): 404 → `TicketNotFound`; 401/403 → `ConfigError` naming the
settings; 429 → zenpy itself sleeps `Retry-After` seconds in its worker thread (only that worker
waits) and retries, capped per call by `ratelimit_wait_s` (zenpy's `ratelimit_budget`, re-armed before
every call because zenpy never resets it); 429 without Retry-After, 5xx and network errors → retried
here with exponential backoff (the worker is released while we wait), then `SourceUnavailable`.
Writes (`add_private_note`) are only re-sent when the request cannot have been applied (connection
refused / connect timeout, 429, 503), so a note is never posted twice.

Base URL: `https://acme.zendesk.com` is passed to zenpy as subdomain + domain. Any other host (a local
fake, a proxy, `http://127.0.0.1:PORT`) goes through zenpy's `ZENPY_FORCE_NETLOC` / `ZENPY_FORCE_SCHEME`
environment variables, which `_build_url` reads on every call. They are PROCESS-GLOBAL: one Zendesk
base URL per process. `aclose()` restores the previous values.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import random
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from time import time
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
from pydantic import BaseModel, Field
from urllib3.exceptions import NewConnectionError
from zenpy import Zenpy
from zenpy.lib.api_objects import Comment as ZenpyComment
from zenpy.lib.exception import APIException, RatelimitBudgetExceeded, RecordNotFoundException, ZenpyException

from triage.models import AuthorRole, Comment, Organization, Person, Ticket
from triage.protocols import ConfigError, SourceUnavailable, TicketNotFound, TriageError

log = logging.getLogger(__name__)

T = TypeVar("T")

FORCE_NETLOC = "ZENPY_FORCE_NETLOC"
FORCE_SCHEME = "ZENPY_FORCE_SCHEME"
ZENDESK_DOMAIN = "zendesk.com"
SHOW_MANY_LIMIT = 100


# ---------------------------------------------------------------- public models


class IncrementalTicket(BaseModel):
    """One row of the incremental export: routing metadata only, no ticket text."""

    id: int
    updated_at: datetime | None = None
    generated_timestamp: int | None = None
    status: str = ""  # "deleted" for deleted tickets (the export includes them)
    priority: str | None = None
    type: str | None = None
    tags: list[str] = Field(default_factory=list)
    group_id: int | None = None
    brand_id: int | None = None
    ticket_form_id: int | None = None
    organization_id: int | None = None
    requester_id: int | None = None
    via_channel: str | None = None


class SkippedRecord(BaseModel):
    """An export record we could not read (it is skipped, never retried forever)."""

    ticket_id: int | None = None
    generated_timestamp: int | None = None
    reason: str


class IncrementalPage(BaseModel):
    tickets: list[IncrementalTicket] = Field(default_factory=list)
    skipped: list[SkippedRecord] = Field(default_factory=list)  # records that failed to parse
    after_cursor: str | None = None  # persist it, then pass it as `cursor` next time
    end_of_stream: bool = True  # True = caught up; poll again later with after_cursor


def note_marker(run_id: str) -> str:
    """The last line of a private note: which triage run wrote it (found again after a timeout)."""
    return f"[triagebot run {run_id}]"


def _skip_of(raw: dict[str, Any], exc: Exception) -> SkippedRecord:
    """Why a record was skipped: the exception kind and first line, never the record's text."""
    tid, stamp = raw.get("id"), raw.get("generated_timestamp")
    first = str(exc).splitlines()[0][:160] if str(exc) else ""
    if hasattr(exc, "errors"):  # pydantic: name the fields, not their (customer-written) values
        first = "invalid " + ", ".join(".".join(map(str, e["loc"])) for e in exc.errors()[:3])
    return SkippedRecord(
        ticket_id=tid if isinstance(tid, int) and not isinstance(tid, bool) else None,
        generated_timestamp=stamp if isinstance(stamp, int) and not isinstance(stamp, bool) else None,
        reason=f"{type(exc).__name__}: {first}".strip(),
    )


@dataclass(frozen=True)
class ZendeskLocation:
    base_url: str  # what humans open: scheme://host[:port], no trailing slash
    subdomain: str
    domain: str
    force_netloc: str | None  # set → ZENPY_FORCE_NETLOC / ZENPY_FORCE_SCHEME are needed
    force_scheme: str | None


def parse_base_url(base_url: str) -> ZendeskLocation:
    """`https://acme.zendesk.com` → subdomain "acme"; any other host → the ZENPY_FORCE_* override."""
    raw = (base_url or "").strip().rstrip("/")
    if not raw:
        raise ConfigError("Zendesk is not configured: set ZENDESK_URL (or ZENDESK_SUBDOMAIN)")
    if "://" not in raw:
        raw = f"https://{raw}" if "." in raw or ":" in raw else f"https://{raw}.{ZENDESK_DOMAIN}"
    parts = urlsplit(raw)
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or not host:
        raise ConfigError(f"ZENDESK_URL must look like https://acme.zendesk.com, got {base_url!r}")
    if parts.path not in ("", "/") or parts.query:
        raise ConfigError(f"ZENDESK_URL must not have a path (zenpy adds /api/v2), got {base_url!r}")
    netloc = parts.netloc.lower()
    clean = f"{parts.scheme}://{netloc}"
    if host.endswith("." + ZENDESK_DOMAIN) and parts.scheme == "https" and parts.port is None:
        return ZendeskLocation(clean, host[: -len(ZENDESK_DOMAIN) - 1], ZENDESK_DOMAIN, None, None)
    # zenpy insists on a non-empty subdomain even when the netloc is forced
    label, _, rest = host.partition(".")
    return ZendeskLocation(clean, label or "local", rest or "local", netloc, parts.scheme)


# ---------------------------------------------------------------- errors


class _Retryable(Exception):
    """Transient: worth another attempt (network, 5xx, 429 without Retry-After)."""

    def __init__(self, message: str, *, resend_safe: bool) -> None:
        super().__init__(message)
        self.resend_safe = resend_safe  # True when the server cannot have applied the request


class _NotFound(Exception):
    pass


def _status_of(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    code = getattr(response, "status_code", None)
    return int(code) if code is not None else None


def _never_sent(exc: requests.RequestException) -> bool:
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, NewConnectionError)


# ---------------------------------------------------------------- the source


class ZendeskTicketSource:
    """TicketSource + the Zendesk extras the bot needs (private notes, incremental export, check)."""

    def __init__(
        self,
        base_url: str,
        *,
        email: str = "",
        api_token: str = "",
        oauth_token: str = "",
        workers: int = 4,
        timeout_s: float = 30,
        max_retries: int = 3,
        backoff_s: float = 0.5,
        ratelimit_wait_s: float = 60,
    ) -> None:
        self.location = parse_base_url(base_url)
        self.base_url = self.location.base_url
        if oauth_token:
            self._auth: dict[str, Any] = {"oauth_token": oauth_token}
            self._auth_settings = "ZENDESK_OAUTH_TOKEN"
        elif api_token:
            if not email:
                raise ConfigError("ZENDESK_EMAIL is required with ZENDESK_API_TOKEN")
            self._auth = {"email": email, "token": api_token}
            self._auth_settings = "ZENDESK_EMAIL/ZENDESK_API_TOKEN"
        else:
            raise ConfigError(
                "Zendesk credentials are missing: "
                "set ZENDESK_EMAIL and ZENDESK_API_TOKEN, or ZENDESK_OAUTH_TOKEN"
            )
        self.workers = max(1, workers)
        self.timeout_s = timeout_s
        self.max_retries = max(0, max_retries)
        self.backoff_s = backoff_s
        self.ratelimit_wait_s = ratelimit_wait_s
        self._executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="zendesk")
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._sessions_lock = threading.Lock()
        self._saved_env: dict[str, str | None] | None = None
        self._closed = False
        self._apply_env()

    # ------------------------------------------------------------ process-global zenpy override

    def _apply_env(self) -> None:
        loc = self.location
        if loc.force_netloc is None:
            if os.environ.get(FORCE_NETLOC):
                log.warning(
                    "%s=%s is set: zenpy will send Zendesk calls there instead of %s",
                    FORCE_NETLOC,
                    os.environ[FORCE_NETLOC],
                    self.base_url,
                )
            return
        current = os.environ.get(FORCE_NETLOC)
        if current and current != loc.force_netloc:
            log.warning(
                "%s was %s and is now %s: zenpy supports one Zendesk base URL per process",
                FORCE_NETLOC,
                current,
                loc.force_netloc,
            )
        self._saved_env = {FORCE_NETLOC: current, FORCE_SCHEME: os.environ.get(FORCE_SCHEME)}
        os.environ[FORCE_NETLOC] = loc.force_netloc
        os.environ[FORCE_SCHEME] = loc.force_scheme or "https"

    def _restore_env(self) -> None:
        if self._saved_env is None:
            return
        if os.environ.get(FORCE_NETLOC) == self.location.force_netloc:  # still ours
            for key, value in self._saved_env.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        self._saved_env = None

    # ------------------------------------------------------------ one client per worker thread

    def _client(self) -> Zenpy:
        client: Zenpy | None = getattr(self._local, "client", None)
        if client is None:
            session = requests.Session()  # our own: no hidden urllib3 retries, we retry in one place
            with self._sessions_lock:
                self._sessions.append(session)
            client = Zenpy(
                subdomain=self.location.subdomain,
                domain=self.location.domain,
                session=session,
                timeout=self.timeout_s,
                disable_cache=True,
                proactive_ratelimit=None,
                **self._auth,
            )
            self._local.client = client
        # zenpy's ratelimit_budget is a lifetime budget per API object: re-arm it for every call
        budget = int(self.ratelimit_wait_s) + 1
        for api in (client.tickets, client.users, client.organizations):
            api.ratelimit_budget = budget
        return client

    def _in_worker(self, op: str, fn: Callable[[Zenpy], T]) -> T:
        try:
            return fn(self._client())
        except Exception as exc:  # translated into our error types, in this one place
            translated = self._translate(op, exc)
            if translated is exc:
                raise
            raise translated from exc

    def _translate(self, op: str, exc: Exception) -> Exception:
        if isinstance(exc, TriageError | _NotFound):
            return exc
        if isinstance(exc, RecordNotFoundException):
            return _NotFound(str(exc))
        if isinstance(exc, RatelimitBudgetExceeded):
            return SourceUnavailable(
                f"Zendesk {op}: rate limited for more than {self.ratelimit_wait_s:.0f}s (HTTP 429)"
            )
        if isinstance(exc, requests.RequestException) and getattr(exc, "response", None) is None:
            return _Retryable(f"network error: {exc.__class__.__name__}", resend_safe=_never_sent(exc))
        status = _status_of(exc)
        if isinstance(exc, APIException | requests.HTTPError) and status is not None:
            if status == 404:
                return _NotFound(str(exc))
            if status == 401:
                return ConfigError(
                    f"Zendesk rejected the credentials (HTTP 401): check {self._auth_settings}"
                )
            if status == 403:
                hint = " (the incremental export needs an admin user)" if op == "incremental export" else ""
                return ConfigError(
                    f"Zendesk denied {op} (HTTP 403){hint}: "
                    f"check the role of the user behind {self._auth_settings}"
                )
            if status == 429 or status >= 500:
                return _Retryable(f"HTTP {status}", resend_safe=status in (429, 503))
            return SourceUnavailable(f"Zendesk {op} failed: HTTP {status}")
        if isinstance(exc, ZenpyException):
            return SourceUnavailable(f"Zendesk {op} failed: {exc}")
        return exc

    async def _run(self, op: str, fn: Callable[[Zenpy], T], *, write: bool = False) -> T:
        if self._closed:
            raise SourceUnavailable("the Zendesk source is closed")
        loop = asyncio.get_running_loop()
        attempt = 0
        while True:
            attempt += 1
            try:
                return await loop.run_in_executor(self._executor, functools.partial(self._in_worker, op, fn))
            except _Retryable as exc:
                if attempt > self.max_retries or (write and not exc.resend_safe):
                    raise SourceUnavailable(f"Zendesk {op} failed after {attempt} attempt(s): {exc}") from exc
                delay = min(self.backoff_s * 2 ** (attempt - 1), 10.0) * (0.75 + random.random() / 2)
                log.info("Zendesk %s: %s, retry %d in %.1fs", op, exc, attempt, delay)
                await asyncio.sleep(delay)

    # ------------------------------------------------------------ TicketSource

    async def get_ticket(self, ticket_id: int) -> Ticket:
        try:
            return await self._run("ticket fetch", functools.partial(self._fetch_ticket, ticket_id))
        except _NotFound:
            raise TicketNotFound(ticket_id) from None

    def _fetch_ticket(self, ticket_id: int, client: Zenpy) -> Ticket:
        raw = client.tickets(id=ticket_id).to_dict()
        comments = [c.to_dict() for c in client.tickets.comments(ticket=ticket_id)]
        requester_id = raw.get("requester_id")
        user_ids = {c["author_id"] for c in comments if isinstance(c.get("author_id"), int)}
        if isinstance(requester_id, int):
            user_ids.add(requester_id)
        users = self._fetch_users(client, sorted(i for i in user_ids if i > 0))
        org: dict[str, Any] | None = None
        if raw.get("organization_id"):
            try:
                org = client.organizations(id=raw["organization_id"]).to_dict()
            except RecordNotFoundException:
                org = {"id": raw["organization_id"]}
        return self._to_ticket(raw, comments, users, org)

    @staticmethod
    def _fetch_users(client: Zenpy, ids: list[int]) -> dict[int, dict[str, Any]]:
        users: dict[int, dict[str, Any]] = {}
        for start in range(0, len(ids), SHOW_MANY_LIMIT):
            for user in client.users(ids=ids[start : start + SHOW_MANY_LIMIT]):
                data = user.to_dict()
                users[int(data["id"])] = data
        return users

    def _to_ticket(
        self,
        raw: dict[str, Any],
        comments: Iterable[dict[str, Any]],
        users: dict[int, dict[str, Any]],
        org: dict[str, Any] | None,
    ) -> Ticket:
        return ticket_from_api(raw, comments, users, org, url=f"{self.base_url}/agent/tickets/{raw['id']}")

    @staticmethod
    def _to_comment(c: dict[str, Any], users: dict[int, dict[str, Any]], requester_id: Any) -> Comment:
        author_id = c.get("author_id")
        user = users.get(author_id) if isinstance(author_id, int) else None
        role = author_role(user.get("role") if user else None, author_id, requester_id)
        body = c.get("body")
        if body is None:
            body = c.get("plain_body") or ""
        return Comment(
            id=c.get("id"),
            author_id=author_id if isinstance(author_id, int) and author_id > 0 else None,
            author_name=(user or {}).get("name") or ("Zendesk" if role is AuthorRole.system else ""),
            author_role=role,
            public=bool(c.get("public", True)),
            body=body,
            created_at=c.get("created_at"),
            attachments=[
                str(a["file_name"])
                for a in c.get("attachments") or []
                if isinstance(a, dict) and a.get("file_name")
            ],
        )

    # ------------------------------------------------------------ extras

    async def add_private_note(self, ticket_id: int, body: str, *, run_id: str = "") -> int:
        """Add an internal (public: false) comment; returns the new comment id (0 if Zendesk omits it).

        Exactly once: with a `run_id` the note ends with the marker line `note_marker(run_id)`. Before
        posting, and after a failure whose outcome is unknown (a timeout, a 5xx), the ticket's comments are
        searched for that marker: a note that is already there is returned, never posted again. A note
        that came back (or is found) public is an error.
        """
        marker = note_marker(run_id) if run_id else ""
        text = f"{body}\n\n{marker}" if marker else body

        def find(client: Zenpy) -> int | None:
            for comment in client.tickets.comments(ticket=ticket_id):
                data = comment.to_dict()
                if marker in str(data.get("body") or data.get("plain_body") or ""):
                    if data.get("public") is not False:
                        raise SourceUnavailable(f"Zendesk made the note on #{ticket_id} public")
                    return int(data.get("id") or 0)
            return None

        def do(client: Zenpy) -> int:
            if marker and (found := find(client)) is not None:
                return found  # an earlier attempt was applied: do not post it twice
            ticket = client.tickets(id=ticket_id)  # fetched, so only the comment is dirty
            ticket.comment = ZenpyComment(body=text, public=False)
            result = client.tickets.update(ticket)
            audit = getattr(result, "audit", None)
            events = getattr(audit, "events", None) or []
            for event in events:
                data = event if isinstance(event, dict) else getattr(event, "to_dict", dict)()
                if data.get("type") in ("Comment", "VoiceComment"):
                    if data.get("public") is not False:
                        raise SourceUnavailable(f"Zendesk made the note on #{ticket_id} public")
                    return int(data.get("id") or 0)
            return 0

        try:
            return await self._run("private note", do, write=True)
        except _NotFound:
            raise TicketNotFound(ticket_id) from None
        except SourceUnavailable as exc:
            if not marker or "public" in str(exc):
                raise
            try:
                found = await self._run("private note check", find)
            except Exception:
                raise exc from None
            if found is None:
                raise
            log.info("Zendesk applied the private note on #%s despite the error; not posted again", ticket_id)
            return found

    async def incremental_page(
        self, *, cursor: str | None = None, start_time: int | None = None, per_page: int | None = None
    ) -> IncrementalPage:
        """ONE page of the cursor-based incremental ticket export (`incremental/tickets/cursor.json`).

        Pass `start_time` (unix seconds) the first time, then the returned `after_cursor`. We read
        only the first page zenpy fetched (its generator would follow `after_url` on iteration), so
        the caller can persist the cursor after every page. Needs an admin user; 10 requests/minute.
        `per_page` is only sent with `start_time` (zenpy drops it with a cursor).
        """
        if (cursor is None) == (start_time is None):
            raise ValueError("pass exactly one of cursor or start_time")
        if start_time is not None:
            # Zendesk rejects a start_time less than a minute in the past
            start_time = max(0, min(int(start_time), int(time()) - 61))

        def do(client: Zenpy) -> IncrementalPage:
            if cursor is not None:
                gen = client.tickets.incremental(cursor=cursor)
            else:
                gen = client.tickets.incremental(start_time=start_time, per_page=per_page)
            items: list[IncrementalTicket] = []
            skipped: list[SkippedRecord] = []
            for record in getattr(gen, "values", None) or []:
                raw = record.to_dict()
                try:
                    items.append(self._to_incremental(raw))
                except (KeyError, TypeError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
                    skipped.append(_skip_of(raw, exc))
            after = getattr(gen, "after_cursor", None)
            return IncrementalPage(
                tickets=items,
                skipped=skipped,
                after_cursor=str(after) if after else cursor,
                end_of_stream=bool(getattr(gen, "end_of_stream", True)),
            )

        try:
            return await self._run("incremental export", do)
        except _NotFound as exc:
            raise SourceUnavailable("Zendesk incremental export: endpoint not found") from exc

    @staticmethod
    def _to_incremental(raw: dict[str, Any]) -> IncrementalTicket:
        if not isinstance(raw.get("id"), int) or isinstance(raw.get("id"), bool):
            raise ValueError(f"id is {type(raw.get('id')).__name__}, not an integer")
        via = raw.get("via") or {}
        return IncrementalTicket(
            id=int(raw["id"]),
            updated_at=raw.get("updated_at"),
            generated_timestamp=raw.get("generated_timestamp"),
            status=raw.get("status") or "",
            priority=raw.get("priority"),
            type=raw.get("type"),
            tags=list(raw.get("tags") or []),
            group_id=raw.get("group_id"),
            brand_id=raw.get("brand_id"),
            ticket_form_id=raw.get("ticket_form_id"),
            organization_id=raw.get("organization_id"),
            requester_id=raw.get("requester_id"),
            via_channel=via.get("channel") if isinstance(via, dict) else None,
        )

    async def check(self) -> str:
        """One cheap authenticated call (users/me) for `triagebot check`."""

        def do(client: Zenpy) -> dict[str, Any]:
            return dict(client.users.me().to_dict())

        try:
            me = await self._run("credential check", do)
        except _NotFound as exc:
            raise ConfigError(f"ZENDESK_URL {self.base_url} does not look like a Zendesk account") from exc
        role = me.get("role") or "?"
        note = "" if role == "admin" else " — the incremental export (polling) needs an admin"
        return (
            f"Zendesk {self.base_url}: authenticated as {me.get('name')} <{me.get('email')}> ({role}){note}"
        )

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        await asyncio.to_thread(self._executor.shutdown, wait=True, cancel_futures=True)
        with self._sessions_lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()
        self._restore_env()

    async def __aenter__(self) -> ZendeskTicketSource:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def author_role(user_role: str | None, author_id: Any, requester_id: Any = None) -> AuthorRole:
    """end-user → customer, agent/admin → agent, no author / the Zendesk system user → system."""
    if not isinstance(author_id, int) or author_id <= 0:
        return AuthorRole.system
    if user_role == "end-user":
        return AuthorRole.customer
    if user_role in ("agent", "admin"):
        return AuthorRole.agent
    if user_role is None and author_id == requester_id:
        return AuthorRole.customer  # the requester's user record could not be loaded
    return AuthorRole.system


def ticket_from_api(
    raw: dict[str, Any],
    comments: Iterable[dict[str, Any]],
    users: dict[int, dict[str, Any]],
    org: dict[str, Any] | None,
    *,
    url: str = "",
) -> Ticket:
    """A Ticket from Zendesk API JSON: the ticket, its comments, the users and organization they name."""
    requester_id = raw.get("requester_id")
    req = users.get(requester_id) if isinstance(requester_id, int) else None
    requester = Person(
        id=requester_id,
        name=(req or {}).get("name") or "",
        email=(req or {}).get("email") or "",
        role=(req or {}).get("role") or "",
    )
    organization = None
    if org is not None:
        organization = Organization(
            id=org.get("id"),
            name=org.get("name") or "",
            tags=list(org.get("tags") or []),
            details=org.get("details") or "",
        )
    via = raw.get("via") or {}
    custom = {
        str(f["id"]): f.get("value")
        for f in raw.get("custom_fields") or []
        if isinstance(f, dict) and f.get("id") is not None and f.get("value") is not None
    }
    return Ticket(
        id=int(raw["id"]),
        url=url,
        subject=raw.get("subject") or raw.get("raw_subject") or "",
        description=raw.get("description") or "",
        status=raw.get("status") or "new",
        priority=raw.get("priority"),
        type=raw.get("type"),
        tags=list(raw.get("tags") or []),
        requester=requester,
        organization=organization,
        comments=[ZendeskTicketSource._to_comment(c, users, requester_id) for c in comments],
        created_at=raw.get("created_at"),
        updated_at=raw.get("updated_at"),
        group_id=raw.get("group_id"),
        brand_id=raw.get("brand_id"),
        ticket_form_id=raw.get("ticket_form_id"),
        via_channel=via.get("channel") if isinstance(via, dict) else None,
        custom_fields=custom,
    )
