"""A fake Zendesk Support API (the subset triagebot uses), shaped like the real responses.

Routes (all under /api/v2, JSON):
- GET  tickets/{id}.json                      → {"ticket": …}; unknown id → 404 RecordNotFound
- GET  tickets/{id}/comments.json             → cursor pages (page[size] ≤ 100, page[after]) with ABSOLUTE
                                                 links.next on this server's netloc, like Zendesk
- PUT  tickets/{id}.json                      → applies {"ticket": {"comment": {...}, status, tags…}};
                                                 records the comment (public flag) → {"ticket", "audit"}
- GET  users/{id}.json, users/show_many.json?ids=1,2, users/me.json
- GET  organizations/{id}.json
- GET  incremental/tickets/cursor.json?start_time=… | ?cursor=… → tickets, after_cursor, after_url,
                                                 before_cursor, before_url, end_of_stream

Seed it with `add_ticket(...)` (users and the organization are created on the fly), add comments at
runtime with `add_comment(...)`, and script failures with `fail(path, status, times=…, retry_after=…)`.
Credentials: when `accept_token(email, token)` / `accept_oauth(token)` were called, any other
Authorization header gets 401 {"error": "Couldn't authenticate you"}; otherwise every request is accepted.
"""

from __future__ import annotations

import base64
import itertools
import json
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from tests.fakes.http import FakeServer, free_port, json_response

API = "/api/v2"


def _iso(value: datetime | str | None) -> str:
    if value is None:
        value = datetime.now(UTC)
    if isinstance(value, str):
        return value
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _epoch(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp())


@dataclass
class Scripted:
    path: str  # exact request path, e.g. "/api/v2/tickets/1.json"; "*" matches any path
    status: int
    times: int = 1
    method: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    applied: bool = False  # the request is carried out, then the answer is lost (a gateway timeout)


@dataclass
class FakeZendesk(FakeServer):
    tickets: dict[int, dict[str, Any]] = field(default_factory=dict)
    comments: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    users: dict[int, dict[str, Any]] = field(default_factory=dict)
    organizations: dict[int, dict[str, Any]] = field(default_factory=dict)
    me_id: int = 1
    incremental_page_size: int = 1000
    deleted: set[int] = field(default_factory=set)  # ticket ids deleted (export: status "deleted"; GET: 404)
    scripted: list[Scripted] = field(default_factory=list)
    valid_auth: set[str] = field(default_factory=set)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(900_000))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.port = self.port or free_port()  # known before start(), so seeded URLs are right
        self.add_user(self.me_id, name="Triage Bot", email="bot@example.com", role="admin")

    # ------------------------------------------------------------ seeding (thread-safe)

    def add_user(
        self, user_id: int, *, name: str = "", email: str = "", role: str = "end-user"
    ) -> dict[str, Any]:
        user = {
            "id": user_id,
            "url": f"{self.url}{API}/users/{user_id}.json",
            "name": name or f"User {user_id}",
            "email": email or f"user{user_id}@example.com",
            "role": role,
            "active": True,
        }
        with self._lock:
            self.users[user_id] = user
        return user

    def add_organization(
        self, org_id: int, *, name: str = "", tags: list[str] | None = None, details: str = ""
    ) -> dict[str, Any]:
        org = {
            "id": org_id,
            "url": f"{self.url}{API}/organizations/{org_id}.json",
            "name": name or f"Org {org_id}",
            "tags": list(tags or []),
            "details": details,
            "notes": "",
        }
        with self._lock:
            self.organizations[org_id] = org
        return org

    def _user_id(self, user: int | dict[str, Any] | None, default_role: str) -> int | None:
        if user is None:
            return None
        if isinstance(user, int):
            if user > 0 and user not in self.users:
                self.add_user(user, role=default_role)
            return user
        uid = int(user["id"])
        self.add_user(
            uid, name=user.get("name", ""), email=user.get("email", ""), role=user.get("role", default_role)
        )
        return uid

    def add_ticket(
        self,
        ticket_id: int,
        *,
        subject: str = "",
        description: str = "",
        status: str = "open",
        priority: str | None = "normal",
        type: str | None = None,
        tags: list[str] | None = None,
        requester: int | dict[str, Any] = 1001,
        organization: int | dict[str, Any] | None = None,
        comments: list[dict[str, Any]] | None = None,
        created_at: datetime | str | None = None,
        updated_at: datetime | str | None = None,
        group_id: int | None = None,
        brand_id: int | None = None,
        ticket_form_id: int | None = None,
        via_channel: str = "web",
        custom_fields: dict[int, Any] | None = None,
    ) -> dict[str, Any]:
        """Seed a ticket. `comments` items: {"body", "author" (id or user dict), "public", "created_at"};
        without them the description becomes the first public comment by the requester."""
        requester_id = self._user_id(requester, "end-user")
        org_id: int | None = None
        if isinstance(organization, dict):
            org_id = int(organization["id"])
            self.add_organization(
                org_id,
                name=organization.get("name", ""),
                tags=organization.get("tags"),
                details=organization.get("details", ""),
            )
        elif isinstance(organization, int):
            org_id = organization
            if org_id not in self.organizations:
                self.add_organization(org_id)
        created = _iso(created_at or updated_at)
        updated = _iso(updated_at or created_at)
        ticket = {
            "id": ticket_id,
            "url": f"{self.url}{API}/tickets/{ticket_id}.json",
            "external_id": None,
            "via": {"channel": via_channel, "source": {"from": {}, "to": {}, "rel": None}},
            "created_at": created,
            "updated_at": updated,
            "generated_timestamp": _epoch(updated),
            "type": type,
            "subject": subject,
            "raw_subject": subject,
            "description": description,
            "priority": priority,
            "status": status,
            "requester_id": requester_id,
            "submitter_id": requester_id,
            "assignee_id": None,
            "organization_id": org_id,
            "group_id": group_id,
            "brand_id": brand_id,
            "ticket_form_id": ticket_form_id,
            "tags": list(tags or []),
            "custom_fields": [{"id": k, "value": v} for k, v in (custom_fields or {}).items()],
            "is_public": True,
        }
        with self._lock:
            self.tickets[ticket_id] = ticket
            self.comments[ticket_id] = []
        if comments is None:
            comments = [{"body": description, "author": requester_id, "public": True, "created_at": created}]
        for c in comments:
            self.add_comment(
                ticket_id,
                c.get("body", ""),
                author=c.get("author", requester_id),
                public=c.get("public", True),
                created_at=c.get("created_at", created),
                bump=False,
            )
        return ticket

    def delete_ticket(self, ticket_id: int, **seed: Any) -> dict[str, Any]:
        """A deleted ticket as the incremental export still lists it: `status: "deleted"` and a newer
        generated_timestamp (developer.zendesk.com "Using the Incremental Exports API", *Excluding deleted
        tickets*: deleted tickets are included unless `exclude_deleted=true`; the exact field set of a
        deleted row is not documented, so the other fields keep their last values here). Reading it
        (GET tickets/{id}) answers 404 RecordNotFound, like a deleted ticket does.
        `seed` is passed to `add_ticket` when the ticket does not exist yet."""
        ticket = self.tickets.get(ticket_id) or self.add_ticket(ticket_id, **seed)
        with self._lock:
            ticket["status"] = "deleted"
            self._touch(ticket, ticket["updated_at"])
            self.deleted.add(ticket_id)
        return ticket

    def add_comment(
        self,
        ticket_id: int,
        body: str,
        *,
        author: int | dict[str, Any] | None = None,
        public: bool = True,
        created_at: datetime | str | None = None,
        bump: bool = True,
    ) -> dict[str, Any]:
        """Append a comment; `bump` moves updated_at and generated_timestamp (the export sees it)."""
        ticket = self.tickets[ticket_id]
        author_id = self._user_id(author if author is not None else ticket["requester_id"], "end-user")
        stamp = _iso(created_at)
        comment = {
            "id": next(self._ids),
            "type": "Comment",
            "author_id": author_id if author_id is not None else -1,
            "body": body,
            "html_body": f"<p>{body}</p>",
            "plain_body": body,
            "public": public,
            "attachments": [],
            "audit_id": next(self._ids),
            "via": {"channel": "web", "source": {"from": {}, "to": {}, "rel": None}},
            "metadata": {"system": {}, "custom": {}},
            "created_at": stamp,
        }
        with self._lock:
            self.comments[ticket_id].append(comment)
            if bump:
                self._touch(ticket, stamp)
        return comment

    def _touch(self, ticket: dict[str, Any], stamp: str | None = None) -> None:
        stamp = stamp or _iso(None)
        ticket["updated_at"] = stamp
        # generated_timestamp always moves forward (Zendesk bumps it on every update)
        ticket["generated_timestamp"] = max(_epoch(stamp), int(ticket["generated_timestamp"]) + 1)

    def update_ticket(self, ticket_id: int, **fields: Any) -> None:
        with self._lock:
            ticket = self.tickets[ticket_id]
            ticket.update(fields)
            self._touch(ticket, fields.get("updated_at"))

    def fail(
        self,
        path: str,
        status: int,
        *,
        times: int = 1,
        method: str | None = None,
        retry_after: int | None = None,
        body: Any = None,
        applied: bool = False,
    ) -> None:
        """Answer the next `times` requests to `path` (exact path or "*") with `status`; with `applied`,
        the request is carried out first (Zendesk did the write, the proxy in front timed out)."""
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        if body is None:
            body = {
                404: {"error": "RecordNotFound", "description": "Not found"},
                401: {"error": "Couldn't authenticate you"},
                403: {"error": "Forbidden", "description": "You do not have access to this page."},
                429: {
                    "error": "APIRateLimitExceeded",
                    "description": "Number of allowed API requests exceeded",
                },
            }.get(status, {"error": "InternalError", "description": "Something went wrong"})
        with self._lock:
            self.scripted.append(Scripted(path, status, times, method, headers, body, applied))

    def accept_token(self, email: str, token: str) -> None:
        raw = f"{email}/token:{token}".encode()
        self.valid_auth.add("Basic " + base64.b64encode(raw).decode())

    def accept_oauth(self, token: str) -> None:
        self.valid_auth.add(f"Bearer {token}")

    def public_comments(self, ticket_id: int) -> list[dict[str, Any]]:
        return [c for c in self.comments[ticket_id] if c["public"]]

    # ------------------------------------------------------------ routes

    def routes(self, app: web.Application) -> None:
        app.middlewares.append(self._gate)
        app.router.add_get(API + "/tickets/{id:\\d+}.json", self._get_ticket)
        app.router.add_put(API + "/tickets/{id:\\d+}.json", self._put_ticket)
        app.router.add_get(API + "/tickets/{id:\\d+}/comments.json", self._get_comments)
        app.router.add_get(API + "/users/me.json", self._get_me)
        app.router.add_get(API + "/users/show_many.json", self._show_many_users)
        app.router.add_get(API + "/users/{id:\\d+}.json", self._get_user)
        app.router.add_get(API + "/organizations/{id:\\d+}.json", self._get_org)
        app.router.add_get(API + "/incremental/tickets/cursor.json", self._incremental)

    @web.middleware
    async def _gate(self, request: web.Request, handler: Any) -> web.StreamResponse:
        with self._lock:
            hit = next(
                (
                    s
                    for s in self.scripted
                    if s.times > 0 and s.path in ("*", request.path) and s.method in (None, request.method)
                ),
                None,
            )
            if hit is not None:
                hit.times -= 1
        if hit is not None:
            if hit.applied:
                await handler(request)
            return json_response(hit.body, status=hit.status, headers=hit.headers)
        if self.valid_auth and request.headers.get("Authorization", "") not in self.valid_auth:
            return json_response({"error": "Couldn't authenticate you"}, status=401)
        return await handler(request)

    def _not_found(self) -> web.Response:
        return json_response({"error": "RecordNotFound", "description": "Not found"}, status=404)

    async def _get_ticket(self, request: web.Request) -> web.Response:
        ticket_id = int(request.match_info["id"])
        ticket = self.tickets.get(ticket_id)
        return (
            json_response({"ticket": ticket})
            if ticket and ticket_id not in self.deleted
            else self._not_found()
        )

    async def _get_comments(self, request: web.Request) -> web.Response:
        ticket_id = int(request.match_info["id"])
        if ticket_id not in self.tickets:
            return self._not_found()
        size = min(int(request.query.get("page[size]", "100")), 100)
        start = int(request.query.get("page[after]", "0") or 0)
        with self._lock:
            items = list(self.comments[ticket_id])
        page = items[start : start + size]
        end = start + len(page)
        has_more = end < len(items)
        base = f"{self.url}{request.path}"
        return json_response(
            {
                "comments": page,
                "meta": {"has_more": has_more, "after_cursor": str(end), "before_cursor": str(start)},
                "links": {
                    "next": f"{base}?page%5Bafter%5D={end}&page%5Bsize%5D={size}" if has_more else None,
                    "prev": f"{base}?page%5Bbefore%5D={start}&page%5Bsize%5D={size}" if start else None,
                },
            }
        )

    async def _put_ticket(self, request: web.Request) -> web.Response:
        ticket_id = int(request.match_info["id"])
        ticket = self.tickets.get(ticket_id)
        if ticket is None:
            return self._not_found()
        payload = (await request.json()).get("ticket", {})
        events: list[dict[str, Any]] = []
        comment = payload.pop("comment", None)
        if comment:
            # like Zendesk, a comment without "public" defaults to public
            added = self.add_comment(
                ticket_id,
                comment.get("body") or comment.get("html_body", ""),
                author=comment.get("author_id", self.me_id),
                public=bool(comment.get("public", True)),
            )
            events.append({k: added[k] for k in ("id", "type", "author_id", "body", "public")})
        changes = {k: v for k, v in payload.items() if k in {"status", "priority", "tags", "subject", "type"}}
        if changes:
            self.update_ticket(ticket_id, **changes)
        elif not comment:
            self.update_ticket(ticket_id)
        audit = {
            "id": next(self._ids),
            "ticket_id": ticket_id,
            "author_id": self.me_id,
            "events": events,
            "created_at": ticket["updated_at"],
        }
        return json_response({"ticket": ticket, "audit": audit})

    async def _get_me(self, request: web.Request) -> web.Response:
        return json_response({"user": self.users[self.me_id]})

    async def _get_user(self, request: web.Request) -> web.Response:
        user = self.users.get(int(request.match_info["id"]))
        return json_response({"user": user}) if user else self._not_found()

    async def _show_many_users(self, request: web.Request) -> web.Response:
        ids = [int(x) for x in request.query.get("ids", "").split(",") if x.strip()]
        if len(ids) > 100:
            return json_response({"error": "TooManyValues", "description": "max 100 ids"}, status=400)
        users = [self.users[i] for i in ids if i in self.users]
        return json_response({"users": users, "next_page": None, "previous_page": None, "count": len(users)})

    async def _get_org(self, request: web.Request) -> web.Response:
        org = self.organizations.get(int(request.match_info["id"]))
        return json_response({"organization": org}) if org else self._not_found()

    async def _incremental(self, request: web.Request) -> web.Response:
        """Cursor export: tickets ordered by (generated_timestamp, id); the cursor is the last position."""
        size = min(
            int(request.query.get("per_page", str(self.incremental_page_size))), self.incremental_page_size
        )
        if "cursor" in request.query:
            try:
                last = json.loads(base64.urlsafe_b64decode(request.query["cursor"].encode()))
            except ValueError:
                return json_response({"error": "InvalidCursor", "description": "bad cursor"}, status=400)
            after: tuple[int, int] = (int(last[0]), int(last[1]))
        elif "start_time" in request.query:
            after = (int(request.query["start_time"]) - 1, 2**62)
        else:
            return json_response({"error": "InvalidValue", "description": "start_time or cursor"}, status=400)
        with self._lock:
            ordered = sorted(self.tickets.values(), key=lambda t: (t["generated_timestamp"], t["id"]))
            remaining = [t for t in ordered if (t["generated_timestamp"], t["id"]) > after]
            page = [dict(t) for t in remaining[:size]]
        end_of_stream = len(remaining) <= size
        position = (page[-1]["generated_timestamp"], page[-1]["id"]) if page else after
        cursor = base64.urlsafe_b64encode(json.dumps(list(position)).encode()).decode()
        first = base64.urlsafe_b64encode(json.dumps(list(after)).encode()).decode()
        base = f"{self.url}{request.path}"
        return json_response(
            {
                "tickets": page,
                "after_cursor": cursor,
                "after_url": f"{base}?cursor={cursor}",
                "before_cursor": first,
                "before_url": f"{base}?cursor={first}",
                "end_of_stream": end_of_stream,
            }
        )
