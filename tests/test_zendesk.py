"""ZendeskTicketSource: real zenpy against the local fake Zendesk (tests/fakes/zendesk.py)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from integrations.zendesk import (
    FORCE_NETLOC,
    FORCE_SCHEME,
    IncrementalPage,
    ZendeskTicketSource,
    author_role,
    note_marker,
    parse_base_url,
)
from tests.fakes.http import free_port
from tests.fakes.zendesk import FakeZendesk
from triage.models import AuthorRole
from triage.protocols import ConfigError, SourceUnavailable, TicketNotFound, TicketSource

EMAIL = "bot@example.com"
TOKEN = "zd-token-123"


@pytest.fixture(autouse=True)
def _no_zenpy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(FORCE_NETLOC, raising=False)
    monkeypatch.delenv(FORCE_SCHEME, raising=False)


@pytest.fixture
def fake() -> Iterator[FakeZendesk]:
    server = FakeZendesk()
    server.accept_token(EMAIL, TOKEN)
    with server:
        yield server


@pytest.fixture
async def source(fake: FakeZendesk) -> AsyncIterator[ZendeskTicketSource]:
    src = ZendeskTicketSource(fake.url, email=EMAIL, api_token=TOKEN, workers=3, backoff_s=0.01)
    try:
        yield src
    finally:
        await src.aclose()


def seed_big_ticket(fake: FakeZendesk, ticket_id: int = 48291, n_comments: int = 300) -> None:
    fake.add_user(77, name="Sam (Support)", email="sam@posthog.com", role="agent")
    fake.add_user(78, name="Ada Admin", email="ada@posthog.com", role="admin")
    comments = [
        {"body": "Flags return false after identify", "author": 9001, "public": True},
        {"body": "Internal: Scale plan, 40k MAU", "author": 77, "public": False},
        {"body": "Ticket escalated by trigger", "author": -1, "public": False},
        {"body": "Could you send a HAR file?", "author": 78, "public": True},
    ]
    comments += [
        {"body": f"comment {i}", "author": 9001 if i % 2 else 77, "public": bool(i % 3)}
        for i in range(4, n_comments)
    ]
    fake.add_ticket(
        ticket_id,
        subject="Feature flag returns false",
        description="Flags return false after identify",
        status="open",
        priority="high",
        type="problem",
        tags=["feature_flags", "enterprise"],
        requester={"id": 9001, "name": "Jane Doe", "email": "jane@acme-analytics.io", "role": "end-user"},
        organization={"id": 501, "name": "Acme Analytics", "tags": ["enterprise"], "details": "Scale plan"},
        comments=comments,
        created_at="2026-01-18T09:12:00Z",
        updated_at="2026-01-18T10:02:00Z",
        group_id=11,
        brand_id=22,
        ticket_form_id=33,
        via_channel="email",
        custom_fields={360001: "posthog-js", 360002: None},
    )


async def test_is_a_ticket_source(source: ZendeskTicketSource) -> None:
    assert isinstance(source, TicketSource)


async def test_ticket_with_300_paginated_comments(fake: FakeZendesk, source: ZendeskTicketSource) -> None:
    seed_big_ticket(fake)
    ticket = await source.get_ticket(48291)

    assert ticket.id == 48291
    assert ticket.url == f"{fake.url}/agent/tickets/48291"
    assert ticket.subject == "Feature flag returns false"
    assert (ticket.status, ticket.priority, ticket.type) == ("open", "high", "problem")
    assert ticket.tags == ["feature_flags", "enterprise"]
    assert ticket.requester.name == "Jane Doe" and ticket.requester.email == "jane@acme-analytics.io"
    assert ticket.organization is not None and ticket.organization.name == "Acme Analytics"
    assert ticket.organization.tags == ["enterprise"] and ticket.organization.details == "Scale plan"
    assert ticket.updated_at is not None and ticket.updated_at.isoformat() == "2026-01-18T10:02:00+00:00"
    assert ticket.version_key == "2026-01-18T10:02:00+00:00"
    assert (ticket.group_id, ticket.brand_id, ticket.ticket_form_id, ticket.via_channel) == (
        11,
        22,
        33,
        "email",
    )
    assert ticket.custom_fields == {"360001": "posthog-js"}

    assert len(ticket.comments) == 300
    assert [c.body for c in ticket.comments[4:7]] == ["comment 4", "comment 5", "comment 6"]
    assert ticket.comments[-1].body == "comment 299"
    first, internal, system, admin = ticket.comments[:4]
    assert (first.author_role, first.public, first.author_name) == (AuthorRole.customer, True, "Jane Doe")
    assert (internal.author_role, internal.public, internal.author_name) == (
        AuthorRole.agent,
        False,
        "Sam (Support)",
    )
    assert (system.author_role, system.author_id) == (AuthorRole.system, None)
    assert (admin.author_role, admin.public) == (AuthorRole.agent, True)
    assert all(c.created_at is not None for c in ticket.comments)

    # zenpy followed the fake's absolute links.next: 3 pages of 100
    pages = fake.calls("/api/v2/tickets/48291/comments.json")
    assert len(pages) == 3
    assert [p.query.get("page[after]") for p in pages] == [None, "100", "200"]
    # explicit fetches only: one show_many for all authors + requester, no lazy per-user reads
    show_many = fake.calls("/api/v2/users/show_many.json")
    assert len(show_many) == 1 and show_many[0].query["ids"] == "77,78,9001"
    assert not [r for r in fake.requests if r.path.startswith("/api/v2/users/") and r.path[14:15].isdigit()]
    assert len(fake.calls("/api/v2/organizations/501.json")) == 1
    assert all(r.headers.get("Authorization", "").startswith("Basic ") for r in fake.requests)


async def test_many_authors_are_fetched_in_batches_of_100(
    fake: FakeZendesk, source: ZendeskTicketSource
) -> None:
    comments = [{"body": f"hi {i}", "author": {"id": 20_000 + i, "role": "end-user"}} for i in range(150)]
    fake.add_ticket(7, subject="crowd", requester=9001, comments=comments)
    ticket = await source.get_ticket(7)
    assert len(ticket.comments) == 150 and {c.author_role for c in ticket.comments} == {AuthorRole.customer}
    assert len(fake.calls("/api/v2/users/show_many.json")) == 2
    assert ticket.organization is None


async def test_ticket_without_comments_or_org(fake: FakeZendesk, source: ZendeskTicketSource) -> None:
    fake.add_ticket(8, subject="empty", requester=9001, comments=[])
    ticket = await source.get_ticket(8)
    assert ticket.comments == [] and ticket.organization is None and ticket.requester.id == 9001


async def test_not_found(fake: FakeZendesk, source: ZendeskTicketSource) -> None:
    with pytest.raises(TicketNotFound) as info:
        await source.get_ticket(404404)
    assert info.value.ticket_id == 404404
    assert len(fake.calls("/api/v2/tickets/404404.json")) == 1  # a 404 is not retried


async def test_bad_api_token_names_the_settings(fake: FakeZendesk) -> None:
    fake.add_ticket(1, subject="x")
    src = ZendeskTicketSource(fake.url, email=EMAIL, api_token="wrong", backoff_s=0.01)
    try:
        with pytest.raises(ConfigError, match="ZENDESK_EMAIL/ZENDESK_API_TOKEN") as info:
            await src.get_ticket(1)
        assert "401" in str(info.value)
        assert len(fake.requests) == 1  # not retried
    finally:
        await src.aclose()


async def test_oauth_token(fake: FakeZendesk) -> None:
    fake.add_ticket(1, subject="x")
    fake.accept_oauth("good-oauth")
    good = ZendeskTicketSource(fake.url, oauth_token="good-oauth")
    bad = ZendeskTicketSource(fake.url, oauth_token="bad-oauth")
    try:
        assert (await good.get_ticket(1)).subject == "x"
        assert fake.requests[0].headers["Authorization"] == "Bearer good-oauth"
        with pytest.raises(ConfigError, match="ZENDESK_OAUTH_TOKEN"):
            await bad.get_ticket(1)
    finally:
        await good.aclose()
        await bad.aclose()


def test_missing_credentials() -> None:
    with pytest.raises(ConfigError, match="ZENDESK_OAUTH_TOKEN"):
        ZendeskTicketSource("https://acme.zendesk.com")
    with pytest.raises(ConfigError, match="ZENDESK_EMAIL"):
        ZendeskTicketSource("https://acme.zendesk.com", api_token="t")
    with pytest.raises(ConfigError, match="ZENDESK_URL"):
        ZendeskTicketSource("", api_token="t", email="e")


async def test_429_retry_after_is_honoured_without_blocking_the_loop(
    fake: FakeZendesk, source: ZendeskTicketSource
) -> None:
    seed_big_ticket(fake, 5, n_comments=10)
    fake.fail("/api/v2/tickets/5.json", 429, retry_after=1)
    ticks = 0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0.01)

    tick_task = asyncio.create_task(ticker())
    started = time.monotonic()
    ticket = await source.get_ticket(5)
    elapsed = time.monotonic() - started
    stop.set()
    await tick_task

    assert ticket.id == 5 and len(ticket.comments) == 10
    assert elapsed >= 0.9  # zenpy waited Retry-After: 1 in its worker thread
    assert len(fake.calls("/api/v2/tickets/5.json")) == 2
    # ~100 ticks if the loop ran freely during the 1 s wait; a blocked loop would give ~1
    assert ticks >= 20


async def test_429_wait_is_capped(fake: FakeZendesk) -> None:
    fake.add_ticket(5, subject="x")
    fake.fail("/api/v2/tickets/5.json", 429, retry_after=30, times=5)
    src = ZendeskTicketSource(fake.url, email=EMAIL, api_token=TOKEN, ratelimit_wait_s=1)
    started = time.monotonic()
    try:
        with pytest.raises(SourceUnavailable, match="429"):
            await src.get_ticket(5)
    finally:
        await src.aclose()
    assert time.monotonic() - started < 10


async def test_5xx_is_retried_then_gives_up(fake: FakeZendesk, source: ZendeskTicketSource) -> None:
    fake.add_ticket(5, subject="x")
    fake.fail("/api/v2/tickets/5.json", 500, times=2)
    assert (await source.get_ticket(5)).subject == "x"
    assert len(fake.calls("/api/v2/tickets/5.json")) == 3

    fake.fail("/api/v2/tickets/5.json", 503, times=100)
    with pytest.raises(SourceUnavailable, match="503"):
        await source.get_ticket(5)
    assert len(fake.calls("/api/v2/tickets/5.json")) == 3 + 4  # 1 try + max_retries (3)


async def test_network_error_becomes_source_unavailable() -> None:
    src = ZendeskTicketSource(
        f"http://127.0.0.1:{free_port()}", email=EMAIL, api_token=TOKEN, max_retries=1, backoff_s=0.01
    )
    try:
        with pytest.raises(SourceUnavailable, match="network error"):
            await src.get_ticket(1)
    finally:
        await src.aclose()


async def test_incremental_pages_and_cursor(fake: FakeZendesk, source: ZendeskTicketSource) -> None:
    fake.incremental_page_size = 2
    for i in range(1, 6):
        fake.add_ticket(
            100 + i,
            subject=f"t{i}",
            updated_at=f"2026-01-0{i}T00:00:00Z",
            tags=["sdk"],
            group_id=9,
            brand_id=8,
            ticket_form_id=7,
            via_channel="api",
        )
    start = int(time.time()) - 400 * 86400  # before all five

    seen: list[int] = []
    page = await source.incremental_page(start_time=start)
    assert isinstance(page, IncrementalPage)
    assert [t.id for t in page.tickets] == [101, 102] and not page.end_of_stream and page.after_cursor
    first = page.tickets[0]
    assert (
        first.status,
        first.tags,
        first.group_id,
        first.brand_id,
        first.ticket_form_id,
        first.via_channel,
    ) == (
        "open",
        ["sdk"],
        9,
        8,
        7,
        "api",
    )
    assert first.updated_at is not None and first.updated_at.day == 1
    seen += [t.id for t in page.tickets]
    calls = 1
    while not page.end_of_stream:  # the poller persists page.after_cursor after every page
        assert page.after_cursor is not None
        page = await source.incremental_page(cursor=page.after_cursor)
        seen += [t.id for t in page.tickets]
        calls += 1
    assert seen == [101, 102, 103, 104, 105]
    export = fake.calls("/api/v2/incremental/tickets/cursor.json")
    assert len(export) == calls == 3  # exactly one request per call: zenpy never ran ahead
    assert export[0].query["start_time"] == str(start) and "cursor" not in export[0].query
    assert all("cursor" in r.query and "start_time" not in r.query for r in export[1:])

    saved = page.after_cursor
    assert saved is not None
    empty = await source.incremental_page(cursor=saved)
    assert empty.tickets == [] and empty.end_of_stream and empty.after_cursor

    fake.add_comment(103, "any update?")  # the customer replied: ticket 103 moves to the end
    again = await source.incremental_page(cursor=saved)
    assert [t.id for t in again.tickets] == [103] and again.end_of_stream

    with pytest.raises(ValueError):
        await source.incremental_page()


async def test_incremental_needs_admin(fake: FakeZendesk, source: ZendeskTicketSource) -> None:
    fake.fail("/api/v2/incremental/tickets/cursor.json", 403)
    with pytest.raises(ConfigError, match="admin"):
        await source.incremental_page(start_time=0)


async def test_private_note_is_private(fake: FakeZendesk, source: ZendeskTicketSource) -> None:
    fake.add_ticket(9, subject="x", description="first")
    comment_id = await source.add_private_note(9, "Triage: likely a known bug, see #123")
    last = fake.comments[9][-1]
    assert comment_id == last["id"] and comment_id > 0
    assert last["public"] is False and last["body"] == "Triage: likely a known bug, see #123"
    assert fake.public_comments(9)[-1]["body"] == "first"
    put = fake.calls("/api/v2/tickets/9.json", method="PUT")
    assert len(put) == 1
    assert put[0].json() == {
        "ticket": {"id": 9, "comment": {"body": "Triage: likely a known bug, see #123", "public": False}}
    }

    with pytest.raises(TicketNotFound):
        await source.add_private_note(12345, "x")


async def test_private_note_is_not_resent_after_an_ambiguous_error(
    fake: FakeZendesk, source: ZendeskTicketSource
) -> None:
    fake.add_ticket(9, subject="x")
    fake.fail("/api/v2/tickets/9.json", 500, method="PUT")
    with pytest.raises(SourceUnavailable):
        await source.add_private_note(9, "note")
    assert len(fake.calls("/api/v2/tickets/9.json", method="PUT")) == 1

    fake.fail("/api/v2/tickets/9.json", 503, method="PUT")  # 503: not applied, safe to resend
    assert await source.add_private_note(9, "note") > 0
    assert len(fake.calls("/api/v2/tickets/9.json", method="PUT")) == 3


async def test_concurrent_fetches_use_one_client_per_worker(
    fake: FakeZendesk, source: ZendeskTicketSource
) -> None:
    for i in range(12):
        fake.add_ticket(200 + i, subject=f"s{i}", comments=[{"body": f"b{i}"}, {"body": "more"}])
    tickets = await asyncio.gather(*[source.get_ticket(200 + i) for i in range(12)])
    assert [t.subject for t in tickets] == [f"s{i}" for i in range(12)]
    assert all(len(t.comments) == 2 for t in tickets)
    assert 1 <= len(source._sessions) <= source.workers == 3


async def test_check(fake: FakeZendesk, source: ZendeskTicketSource) -> None:
    text = await source.check()
    assert "Triage Bot" in text and "admin" in text and fake.url in text


def test_parse_base_url() -> None:
    loc = parse_base_url("https://acme.zendesk.com/")
    assert (loc.subdomain, loc.domain, loc.force_netloc, loc.base_url) == (
        "acme",
        "zendesk.com",
        None,
        "https://acme.zendesk.com",
    )
    assert parse_base_url("acme").base_url == "https://acme.zendesk.com"
    local = parse_base_url("http://127.0.0.1:8123")
    assert (local.force_netloc, local.force_scheme) == ("127.0.0.1:8123", "http")
    assert local.subdomain  # zenpy needs one even when the netloc is forced
    proxy = parse_base_url("https://support.example.com")
    assert proxy.force_netloc == "support.example.com" and proxy.force_scheme == "https"
    with pytest.raises(ConfigError, match="path"):
        parse_base_url("https://acme.zendesk.com/api/v2")
    with pytest.raises(ConfigError):
        parse_base_url("ftp://acme.zendesk.com")


async def test_force_env_is_set_for_a_local_server_and_restored() -> None:
    port = free_port()
    real = ZendeskTicketSource("https://acme.zendesk.com", email=EMAIL, api_token=TOKEN)
    assert FORCE_NETLOC not in os.environ
    await real.aclose()
    local = ZendeskTicketSource(f"http://127.0.0.1:{port}", email=EMAIL, api_token=TOKEN)
    assert os.environ[FORCE_NETLOC] == f"127.0.0.1:{port}" and os.environ[FORCE_SCHEME] == "http"
    await local.aclose()
    assert FORCE_NETLOC not in os.environ and FORCE_SCHEME not in os.environ
    with pytest.raises(SourceUnavailable, match="closed"):
        await local.get_ticket(1)


def test_author_roles() -> None:
    assert author_role("end-user", 5) is AuthorRole.customer
    assert author_role("agent", 5) is AuthorRole.agent
    assert author_role("admin", 5) is AuthorRole.agent
    assert author_role(None, None) is AuthorRole.system
    assert author_role(None, -1) is AuthorRole.system
    assert author_role(None, 5, requester_id=5) is AuthorRole.customer
    assert author_role(None, 6, requester_id=5) is AuthorRole.system


async def test_private_note_exactly_once_after_a_timeout(
    fake: FakeZendesk, source: ZendeskTicketSource
) -> None:
    fake.add_ticket(9, subject="x", description="first")
    # Zendesk applies the update, then the proxy in front answers 504: the outcome looks unknown
    fake.fail("/api/v2/tickets/9.json", 504, method="PUT", applied=True)
    comment_id = await source.add_private_note(9, "Triage: known bug", run_id="run-abc")
    notes = [c for c in fake.comments[9] if not c["public"]]
    assert len(notes) == 1 and notes[0]["id"] == comment_id
    assert notes[0]["body"] == f"Triage: known bug\n\n{note_marker('run-abc')}"
    # the button is clicked again for the same run: the marker is found, nothing is posted
    assert await source.add_private_note(9, "Triage: known bug", run_id="run-abc") == comment_id
    assert len(fake.calls("/api/v2/tickets/9.json", method="PUT")) == 1
    assert len([c for c in fake.comments[9] if not c["public"]]) == 1
    # another run writes its own note
    assert await source.add_private_note(9, "Re-run", run_id="run-def") != comment_id


async def test_private_note_not_applied_is_still_an_error(
    fake: FakeZendesk, source: ZendeskTicketSource
) -> None:
    fake.add_ticket(9, subject="x")
    fake.fail("/api/v2/tickets/9.json", 500, method="PUT")  # not applied, and not safe to resend
    with pytest.raises(SourceUnavailable):
        await source.add_private_note(9, "note", run_id="run-1")
    assert [c for c in fake.comments[9] if not c["public"]] == []


async def test_a_marked_note_found_public_is_an_error(fake: FakeZendesk, source: ZendeskTicketSource) -> None:
    fake.add_ticket(9, subject="x")
    fake.add_comment(9, f"leaked\n\n{note_marker('run-2')}", public=True)
    with pytest.raises(SourceUnavailable, match="public"):
        await source.add_private_note(9, "note", run_id="run-2")
