"""Verify before parse: /slack/events checks the signature before Bolt sees a byte.

The real app in HTTP mode (tests/slack_support.py). Unsigned or badly signed requests get 401 and one
INFO line, never a traceback or an echo of the body; signed bodies Bolt could not parse get 400; a
fuzz run over signed and unsigned bodies never sees a 500.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.http_server import slack_body_problem
from tests.slack_support import SlackHarness, sign, slack_harness

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[SlackHarness]:
    async with slack_harness(tmp_path) as harness:
        yield harness


async def test_unsigned_malformed_json_is_401_with_one_info_line_and_no_traceback(
    h: SlackHarness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    marker = "ECHO-ME-4711"
    body = '{"type": "event_callback", "event": ' + marker
    sent = [await h.post(body, JSON, signed=False) for _ in range(50)]
    assert {s.status for s in sent} == {401}
    assert all(marker not in s.body for s in sent)
    ours = [r for r in caplog.records if r.name == "bot.http_server"]
    assert len(ours) == 50 and {r.levelno for r in ours} == {logging.INFO}
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert marker not in caplog.text
    assert not h.slack.api_calls  # nothing reached Bolt's listeners


@pytest.mark.parametrize(
    ("timestamp", "signature"),
    [("²", "v0=abc"), ("9" * 5000, "v0=abc"), ("", ""), ("1700000000", "v0=" + "0" * 64), ("now", "v1=x")],
)
async def test_odd_signature_headers_are_401(h: SlackHarness, timestamp: str, signature: str) -> None:
    body = h.command_body("48291")
    headers = {"X-Slack-Request-Timestamp": timestamp, "X-Slack-Signature": signature}
    assert (await h.post(body, FORM, signed=False, headers=headers)).status == 401


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ('{"type": "event_callback", "event": ', JSON),
        ("[1, 2, 3]", JSON),
        ('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}", JSON),
        ("payload=" + quote("{not json"), FORM),
        ("payload=" + quote("[1]"), FORM),
        ("payload=" + quote('{"a": ' + "[" * 50_000 + "]" * 50_000 + "}"), FORM),
        ('{"type": "block_actions", "event": null}', JSON),
    ],
    ids=["truncated", "array", "deep", "payload-garbage", "payload-array", "payload-deep", "null-event"],
)
async def test_signed_malformed_bodies_are_400(
    h: SlackHarness, caplog: pytest.LogCaptureFixture, body: str, content_type: str
) -> None:
    sent = await h.post(body, content_type)
    assert sent.status == 400, sent
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_body_problem_mirrors_bolt_parsing() -> None:
    assert slack_body_problem(b"\xff\xfe", FORM) == "body is not UTF-8"
    assert slack_body_problem(b"", FORM) is None
    assert slack_body_problem(b"command=%2Ftriage&text=1", FORM) is None
    assert slack_body_problem(b'{"type": "url_verification"}', JSON) is None
    assert slack_body_problem(b"payload=%7B%7D", FORM) is None


_JSON_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=10), c, max_size=4),
    max_leaves=15,
)
_ENVELOPE = st.fixed_dictionaries(
    {
        "type": st.sampled_from(
            ["event_callback", "block_actions", "view_submission", "url_verification", "shortcut", "x"]
        )
    },
    optional={
        "event": _JSON_VALUE,
        "actions": _JSON_VALUE,
        "user": _JSON_VALUE,
        "view": _JSON_VALUE,
        "challenge": _JSON_VALUE,
        "team_id": _JSON_VALUE,
        "channel": _JSON_VALUE,
    },
)


def _body(kind: str, value: object, raw: bytes) -> tuple[str, str]:
    if kind == "json":
        return json.dumps(value), JSON
    if kind == "payload":
        return "payload=" + quote(json.dumps(value)), FORM
    if kind == "form":
        return raw.decode("latin-1"), FORM
    return raw.decode("utf-8", "replace"), JSON


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    kind=st.sampled_from(["json", "payload", "form", "junk"]),
    value=st.one_of(_ENVELOPE, _JSON_VALUE),
    raw=st.binary(max_size=120),
)
async def test_fuzz_slack_events_never_answers_500(
    h: SlackHarness, kind: str, value: object, raw: bytes
) -> None:
    body, content_type = _body(kind, value, raw)
    signed = await h.post(body, content_type)
    assert signed.status != 500 and signed.status < 500, (signed, body[:200])
    stale = sign(body, timestamp=int(time.time()) - 3600)
    unsigned = await h.post(body, content_type, signed=False, headers=stale)
    assert unsigned.status == 401
