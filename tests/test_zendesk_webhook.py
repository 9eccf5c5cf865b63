"""POST /zendesk/webhook: signature, timestamps, body shapes, fail-closed, background dispatch.

The handler runs in a real aiohttp server (aiohttp.test_utils.TestServer on 127.0.0.1); the
end-to-end test fetches through zenpy against the fake Zendesk and claims in a real SqlStore.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Coroutine, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.intake_filters import TicketFilter
from bot.intake_queue import TriageQueue, ticket_dispatcher
from bot.poller import ZendeskPoller
from bot.zendesk_webhook import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WEBHOOK_PATH,
    ignored_event,
    make_webhook_handler,
    parse_ticket_id,
    sign,
    verify_signature,
    webhook_route,
)
from integrations.store import SqlStore
from integrations.zendesk import FORCE_NETLOC, FORCE_SCHEME, ZendeskTicketSource
from tests.fakes.zendesk import FakeZendesk
from tests.waits import WAIT_S
from triage.models import TicketSummary, TriageReport
from triage.store import Claim

SECRET = "dGhpc19zZWNyZXRfaXNfZm9yX3Rlc3Rz"
EMAIL = "admin@example.com"
TOKEN = "zd-admin-token"


def iso(offset_s: float = 0) -> str:
    return (datetime.now(UTC) + timedelta(seconds=offset_s)).strftime("%Y-%m-%dT%H:%M:%SZ")


def headers(raw: bytes, *, timestamp: str | None = None, secret: str = SECRET) -> dict[str, str]:
    ts = timestamp or iso()
    return {
        SIGNATURE_HEADER: sign(secret, ts, raw),
        TIMESTAMP_HEADER: ts,
        "Content-Type": "application/json",
    }


class Harness:
    def __init__(self) -> None:
        self.dispatched: list[tuple[int, str]] = []
        self.tasks: set[asyncio.Future[Any]] = set()
        self.delay = 0.0

    async def dispatch(self, ticket_id: int, trigger: str) -> None:
        await asyncio.sleep(self.delay)
        self.dispatched.append((ticket_id, trigger))

    def spawn(self, work: Coroutine[Any, Any, Any]) -> asyncio.Future[Any]:
        fut = asyncio.ensure_future(work)
        self.tasks.add(fut)
        fut.add_done_callback(self.tasks.discard)
        return fut

    async def settle(self) -> None:
        while self.tasks:
            await asyncio.gather(*list(self.tasks))


async def client_for(secret: str | None, h: Harness) -> TestClient[web.Request, web.Application]:
    app = web.Application()
    app.router.add_routes([webhook_route(secret, h.dispatch, h.spawn)])
    client: TestClient[web.Request, web.Application] = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    return client


@pytest.fixture
def h() -> Harness:
    return Harness()


@pytest.fixture
async def client(h: Harness) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    c = await client_for(SECRET, h)
    yield c
    await c.close()


# ---------------------------------------------------------------- pure parts


def test_verify_signature_iso_and_epoch() -> None:
    raw = b'{"ticket_id": "48291"}'
    now = time.time()
    ts_iso = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert verify_signature(SECRET, sign(SECRET, ts_iso, raw), ts_iso, raw, now=now)
    ts_epoch = str(int(now))
    assert verify_signature(SECRET, sign(SECRET, ts_epoch, raw), ts_epoch, raw, now=now)
    # Zendesk's documented example shape with an offset
    ts_off = datetime.fromtimestamp(now, UTC).astimezone(UTC).isoformat()
    assert verify_signature(SECRET, sign(SECRET, ts_off, raw), ts_off, raw, now=now)


def test_verify_signature_rejects() -> None:
    raw = b'{"ticket_id": "48291"}'
    now = 1_800_000_000.0
    ts = str(int(now))
    good = sign(SECRET, ts, raw)
    assert verify_signature(SECRET, good, ts, raw, now=now + 299)
    assert not verify_signature(SECRET, good, ts, raw, now=now + 301)  # stale
    assert not verify_signature(SECRET, good, ts, raw, now=now - 301)  # from the future
    assert not verify_signature(SECRET, good, ts, raw + b" ", now=now)  # body changed
    assert not verify_signature("other-secret", good, ts, raw, now=now)
    assert not verify_signature(SECRET, good, str(int(now) + 1), raw, now=now)  # timestamp is signed
    assert not verify_signature(SECRET, "", ts, raw, now=now)
    assert not verify_signature(SECRET, good, "", raw, now=now)
    assert not verify_signature(SECRET, good, "yesterday", raw, now=now)
    assert not verify_signature("", good, ts, raw, now=now)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"ticket_id": "48291"}, 48291),
        ({"ticket_id": 48291}, 48291),
        ({"ticket_id": " 7 "}, 7),
        ({"type": "zen:event-type:ticket.created", "detail": {"id": "123", "status": "NEW"}}, 123),
        ({"ticket": {"id": 55, "subject": "x"}}, 55),
        ({"type": "zen:event-type:ticket.comment_added", "subject": "zen:ticket:99", "detail": {}}, 99),
        ({"ticket_id": "{{ticket.id}}"}, None),
        ({"ticket_id": 0}, None),
        ({"ticket_id": True}, None),
        ({"ticket_id": None, "detail": {"id": "5"}}, None),
        ({"detail": {"id": "abc"}}, None),
        ({"detail": {"id": "5"}}, None),  # detail.id is only a ticket id in a ticket event
        ({"ticket_id": "9" * 5000}, None),
        ({"ticket_id": "9" * 20}, None),
        ({"ticket_id": 2**63}, None),
        ({"ticket_id": "²"}, None),
        ({"type": "zen:event-type:ticket.created", "subject": "zen:ticket:¹", "detail": {"id": "¹"}}, None),
        ({}, None),
        ([1, 2], None),
        ("48291", None),
    ],
)
def test_parse_ticket_id(body: Any, expected: int | None) -> None:
    assert parse_ticket_id(body) == expected


# Zendesk's own example user event (developer.zendesk.com "Webhook event types", event schema)
USER_EVENT = {
    "type": "zen:event-type:user.active_changed",
    "account_id": 12514403,
    "id": "2b24ef10-19d4-4740-93cf-8f98ec4776c0",
    "time": "2099-07-04T05:33:18Z",
    "zendesk_event_version": "2022-06-20",
    "subject": "zen:user:6596848315901",
    "detail": {"id": "6596848315901", "role": "end-user", "organization_id": "0"},
    "event": {"current": False, "previous": True},
}
ORG_EVENT = {
    "type": "zen:event-type:organization.created",
    "subject": "zen:organization:48291",
    "detail": {"id": "48291", "name": "Acme"},
    "event": {},
}


def test_user_and_organization_events_are_not_tickets() -> None:
    assert ignored_event(USER_EVENT) == "zen:event-type:user.active_changed"
    assert ignored_event(ORG_EVENT) == "zen:event-type:organization.created"
    assert ignored_event({"subject": "zen:user:5", "detail": {"id": "5"}}) == "zen:user"
    assert ignored_event({"type": "zen:event-type:ticket.created", "subject": "zen:ticket:5"}) is None
    assert ignored_event({"ticket_id": "5", "type": "zen:event-type:user.created"}) is None


async def test_user_and_organization_events_are_acknowledged_and_ignored(
    client: TestClient[web.Request, web.Application], h: Harness
) -> None:
    for body in (USER_EVENT, ORG_EVENT):
        raw = json.dumps(body).encode()
        resp = await client.post(WEBHOOK_PATH, data=raw, headers=headers(raw))
        assert resp.status == 200 and (await resp.json())["ignored"] == body["type"]
    await h.settle()
    assert h.dispatched == []


@pytest.mark.parametrize(
    "raw",
    [
        b'{"ticket_id": "' + b"9" * 5000 + b'"}',
        '{"ticket_id": "²"}'.encode(),
        rb'{"type": "zen:event-type:ticket.created", "subject": "zen:ticket:\u00b9"}',
        b"[" * 100_000,
        b"{" * 50_000 + b"}" * 50_000,
        b"\xff\xfe not utf-8",
        b"[1, 2]",
        b'"48291"',
    ],
    ids=[
        "huge-id",
        "superscript",
        "superscript-subject",
        "nested-lists",
        "nested-objects",
        "bytes",
        "list",
        "str",
    ],
)
async def test_signed_odd_bodies_get_400_never_500(
    client: TestClient[web.Request, web.Application], h: Harness, raw: bytes
) -> None:
    resp = await client.post(WEBHOOK_PATH, data=raw, headers=headers(raw))
    assert resp.status == 400
    await h.settle()
    assert h.dispatched == []


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
_ID_LIKE = st.one_of(st.integers(), st.text(max_size=30), st.from_regex(r"[0-9²³¹٣]{1,40}", fullmatch=True))
_BODY = st.one_of(
    _JSON,
    st.builds(lambda v: {"ticket_id": v}, _ID_LIKE),
    st.builds(lambda v: {"subject": f"zen:ticket:{v}"}, _ID_LIKE),
    st.builds(
        lambda t, v: {"type": f"zen:event-type:{t}.created", "detail": {"id": v}},
        st.sampled_from(["ticket", "user", "organization", "article"]),
        _ID_LIKE,
    ),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=_BODY, garbage=st.binary(max_size=200), as_bytes=st.booleans())
async def test_fuzz_signed_webhook_never_answers_500(
    client: TestClient[web.Request, web.Application], h: Harness, body: Any, garbage: bytes, as_bytes: bool
) -> None:
    raw = garbage if as_bytes else json.dumps(body).encode()
    resp = await client.post(WEBHOOK_PATH, data=raw, headers=headers(raw))
    assert resp.status in (200, 202, 400), resp.status
    unsigned = await client.post(WEBHOOK_PATH, data=raw, headers={"Content-Type": "application/json"})
    assert unsigned.status == 401
    await h.settle()


# ---------------------------------------------------------------- the handler


async def test_good_signature_202_and_dispatched(
    client: TestClient[web.Request, web.Application], h: Harness
) -> None:
    raw = b'{"ticket_id": "48291"}'
    resp = await client.post(WEBHOOK_PATH, data=raw, headers=headers(raw))
    assert resp.status == 202
    assert (await resp.json()) == {"ok": True, "ticket_id": 48291}
    await h.settle()
    assert h.dispatched == [(48291, "webhook")]


async def test_epoch_timestamp_and_event_shape(
    client: TestClient[web.Request, web.Application], h: Harness
) -> None:
    # signed over the RAW bytes: odd spacing and unicode must not matter
    raw = json.dumps(
        {"type": "zen:event-type:ticket.created", "detail": {"id": "123", "subject": "¿Encuestas?"}},
        indent=3,
        ensure_ascii=False,
    ).encode()
    resp = await client.post(WEBHOOK_PATH, data=raw, headers=headers(raw, timestamp=str(int(time.time()))))
    assert resp.status == 202
    raw2 = b'{"ticket": {"id": 77}}'
    assert (await client.post(WEBHOOK_PATH, data=raw2, headers=headers(raw2))).status == 202
    await h.settle()
    assert h.dispatched == [(123, "webhook"), (77, "webhook")]


@pytest.mark.parametrize(
    "case", ["bad", "missing_signature", "missing_timestamp", "stale", "future", "wrong_secret"]
)
async def test_rejected_signatures_401_nothing_dispatched(
    client: TestClient[web.Request, web.Application], h: Harness, case: str
) -> None:
    raw = b'{"ticket_id": "48291"}'
    hdrs = headers(raw)
    if case == "bad":
        hdrs[SIGNATURE_HEADER] = sign(SECRET, hdrs[TIMESTAMP_HEADER], b'{"ticket_id": "1"}')
    elif case == "missing_signature":
        del hdrs[SIGNATURE_HEADER]
    elif case == "missing_timestamp":
        del hdrs[TIMESTAMP_HEADER]
    elif case == "stale":
        hdrs = headers(raw, timestamp=iso(-360))
    elif case == "future":
        hdrs = headers(raw, timestamp=iso(+360))
    else:
        hdrs = headers(raw, secret="not-the-secret")
    resp = await client.post(WEBHOOK_PATH, data=raw, headers=hdrs)
    assert resp.status == 401
    await h.settle()
    assert h.dispatched == []


@pytest.mark.parametrize("raw", [b"not json", b'{"ticket_id": "abc"}', b'{"hello": 1}', b"\xff\xfe"])
async def test_signed_but_useless_body_400(
    client: TestClient[web.Request, web.Application], h: Harness, raw: bytes
) -> None:
    resp = await client.post(WEBHOOK_PATH, data=raw, headers=headers(raw))
    assert resp.status == 400
    assert h.dispatched == [] and not h.tasks


@pytest.mark.parametrize("secret", [None, ""])
async def test_no_secret_fails_closed_503(h: Harness, secret: str | None) -> None:
    c = await client_for(secret, h)
    try:
        raw = b'{"ticket_id": "48291"}'
        resp = await c.post(WEBHOOK_PATH, data=raw, headers=headers(raw))
        assert resp.status == 503
        assert "ZENDESK_WEBHOOK_SECRET" in (await resp.json())["error"]
    finally:
        await c.close()
    assert h.dispatched == []


async def test_answers_before_the_triage_finishes(
    client: TestClient[web.Request, web.Application], h: Harness
) -> None:
    h.delay = 3.0  # a slow triage
    raw = b'{"ticket_id": 5}'
    started = time.monotonic()
    resp = await client.post(WEBHOOK_PATH, data=raw, headers=headers(raw))
    elapsed = time.monotonic() - started
    assert resp.status == 202 and h.dispatched == []
    assert elapsed < 1.5  # far below the 3 s the work takes
    await h.settle()
    assert h.dispatched == [(5, "webhook")]


async def test_spawn_failure_is_503_and_no_coroutine_leaks(h: Harness) -> None:
    def broken_spawn(work: Coroutine[Any, Any, Any]) -> None:
        raise RuntimeError("shutting down")

    app = web.Application()
    app.router.add_post(WEBHOOK_PATH, make_webhook_handler(SECRET, h.dispatch, broken_spawn))
    async with TestClient(TestServer(app, host="127.0.0.1")) as c:
        raw = b'{"ticket_id": 5}'
        assert (await c.post(WEBHOOK_PATH, data=raw, headers=headers(raw))).status == 503


# ---------------------------------------------------------------- end to end with the queue


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeZendesk]:
    monkeypatch.delenv(FORCE_NETLOC, raising=False)
    monkeypatch.delenv(FORCE_SCHEME, raising=False)
    server = FakeZendesk()
    server.accept_token(EMAIL, TOKEN)
    with server:
        yield server


async def test_webhook_poll_and_slash_at_once_make_one_run(
    fake: FakeZendesk, tmp_path: Path, h: Harness
) -> None:
    stamp = (datetime.now(UTC) - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    fake.add_ticket(48291, subject="flags", status="new", updated_at=stamp)
    fake.add_ticket(48292, subject="closed", status="closed", updated_at=stamp)
    source = ZendeskTicketSource(fake.url, email=EMAIL, api_token=TOKEN, workers=3, backoff_s=0.01)
    store = await SqlStore.connect(f"sqlite:///{tmp_path / 'wh.db'}")
    runs: list[tuple[int, str, str]] = []

    async def run(claim: Claim, trigger: str) -> None:
        runs.append((claim.run.ticket_id, claim.run.ticket_version, trigger))
        await asyncio.sleep(0.2)
        await store.finish_run(
            claim.run.run_id,
            TriageReport(run_id=claim.run.run_id, ticket=TicketSummary(id=claim.run.ticket_id)),
            token=claim.token,
        )

    flt = TicketFilter.build(statuses=["new", "open"])
    queue = TriageQueue(store, run, concurrency=2)
    dispatch = ticket_dispatcher(queue, source.get_ticket, flt)
    poller = ZendeskPoller(source, store, flt, queue.submit, lookback_minutes=30, page_interval_s=0)
    app = web.Application()
    app.router.add_routes([webhook_route(SECRET, dispatch, h.spawn)])
    async with TestClient(TestServer(app, host="127.0.0.1")) as c:

        async def hook(ticket_id: int) -> int:
            raw = json.dumps({"ticket_id": str(ticket_id)}).encode()
            return (await c.post(WEBHOOK_PATH, data=raw, headers=headers(raw))).status

        async def slash() -> object:
            return await queue.submit_unversioned(48291, "slash", lambda i: _version(source, i))

        results = await asyncio.gather(
            hook(48291), hook(48291), poller.poll_once(), slash(), slash(), hook(48292)
        )
        assert results[0] == results[1] == results[5] == 202
        await h.settle()
        assert await queue.drain(WAIT_S)
    assert len(runs) == 1 and runs[0][0] == 48291  # 48292 is closed: filtered on the webhook path too
    assert runs[0][1] == (await source.get_ticket(48291)).version_key
    await queue.aclose()
    await store.close()
    await source.aclose()


async def _version(source: ZendeskTicketSource, ticket_id: int) -> str:
    return (await source.get_ticket(ticket_id)).version_key
