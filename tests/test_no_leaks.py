"""A ticket full of secrets and personal data, triaged through the real app: nothing leaks.

The ticket comes from the fake Zendesk (subject, description, comments, attachment names, requester and
organization names, tags, custom fields all carry secrets), `/triage` runs it end to end with the real
Anthropic adapter against the fake Messages API and the recorded research sources. Afterwards no secret
and (with the default REDACT_EMAILS/REDACT_PHONES) no email or phone number may appear in anything Slack
received, any prompt, any MCP or GitHub argument, the logs, or anywhere in the database: the raw SQLite
file, or every row of every table on PostgreSQL. The requester's email reaches the PostHog person
look-up (inside the adapter call) and nothing else.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import MetaData, create_engine, select

from bot.wiring import replay_sources
from integrations.anthropic_model import AnthropicModel
from integrations.posthog_mcp import PostHogMcpSource
from integrations.posthog_mcp_replay import PostHogLikeServer, build_posthog_like_server
from integrations.store import normalize_database_url
from tests.fakes.anthropic import FakeAnthropic
from tests.slack_support import SlackHarness, example, seed_ticket, slack_harness
from triage.redaction import Redactor, SecretFilter

CORPUS = json.loads((Path(__file__).parent / "data" / "redaction_corpus.json").read_text("utf-8"))
TICKET = 48291
REQUESTER_EMAIL = "jane@acme-analytics.io"  # named in the ticket text: the one email that is looked up
OTHER_EMAIL = "bob.builder@acme-analytics.io"
PHONE = "+1 415 555 0134"
PHX = "phx_4f9aKq2LmN8pR1sT6vW3yZ0bC5dE7gH9jK2mN4pQ"
SK_ANT = "sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_abcdEF"
CARD = "4111 1111 1111 1111"


def _needles() -> list[str]:
    found = [PHX, SK_ANT, CARD, "4111111111111111", REQUESTER_EMAIL, OTHER_EMAIL, "415 555 0134"]
    for item in CORPUS["secrets"]:
        found += item["needles"]
    return [n for n in found if len(n) >= 6]


def _seed(h: SlackHarness) -> None:
    base = example(TICKET)
    secrets = "\n".join(item["text"] for item in CORPUS["secrets"])
    ticket = base.model_copy(
        update={
            "subject": f"{base.subject} — key {PHX} card {CARD} call {PHONE}",
            "description": f"{base.description}\n\nConfig:\n{secrets}\nalso ask {OTHER_EMAIL} ({SK_ANT})",
            "tags": [*base.tags, f"key-{PHX}"],
            "comments": [],
        }
    )
    seed_ticket(h.zendesk, ticket)
    zt = h.zendesk.tickets[TICKET]
    zt["custom_fields"] = [
        {"id": 360001, "value": f"db postgres://admin:Sup3rS3cret@db.acme:5432/x {SK_ANT}"}
    ]
    org = h.zendesk.organizations[zt["organization_id"]]
    org["name"] = f"Acme {PHX}"
    h.zendesk.users[zt["requester_id"]]["name"] = f"Jane {SK_ANT}"
    comment = h.zendesk.add_comment(TICKET, f"Here is the HAR, my phone {PHONE}", bump=False)
    comment["attachments"].append(
        {
            "id": 9911,
            "file_name": f"har-{PHX}.har",
            "content_url": f"{h.zendesk.url}/attachments/token/x/?name=a.har",
            "content_type": "application/json",
            "size": 1200,
            "thumbnails": [],
            "inline": False,
            "deleted": False,
        }
    )


@pytest.fixture
async def leaky(
    tmp_path: Path,
    fake: FakeAnthropic,
    model: AnthropicModel,
    db_url: str,
) -> AsyncIterator[tuple[SlackHarness, PostHogLikeServer]]:
    server = build_posthog_like_server()
    posthog = PostHogMcpSource("http://demo.invalid/mcp", "phx_demo", timeout_s=15, server=server)
    sources = [posthog, *replay_sources()[1:]]
    async with slack_harness(tmp_path, model=model, sources=sources, database_url=db_url) as h:
        _seed(h)
        yield h, server


def _database_text(url: str, db_file: Path | None) -> str:
    if db_file is not None:
        return db_file.read_bytes().decode("utf-8", "replace")  # the whole file, free pages included
    engine = create_engine(normalize_database_url(url))
    try:
        meta = MetaData()
        meta.reflect(engine)
        with engine.connect() as conn:
            return "\n".join(
                repr(tuple(row)) for table in meta.sorted_tables for row in conn.execute(select(table))
            )
    finally:
        engine.dispose()


async def test_a_ticket_full_of_secrets_leaks_nowhere(
    leaky: tuple[SlackHarness, PostHogLikeServer],
    fake: FakeAnthropic,
    db_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    h, posthog = leaky
    caplog.set_level(logging.DEBUG)
    assert (await h.command(str(TICKET))).status == 200
    await h.idle(within=180)  # generous: the whole pipeline runs, and CI machines can be slow
    run = await h.svc.store.latest_run(TICKET)
    assert run is not None and run.report is not None and run.report.evidence

    slack = json.dumps([c.params for c in h.slack.api_calls] + list(h.slack.responses), ensure_ascii=False)
    prompts = json.dumps(fake.bodies(), ensure_ascii=False)
    assert fake.bodies(), "the model was asked"
    mcp_calls = list(posthog.calls)
    person_calls = [c for c in mcp_calls if c.tool == "persons-list" and "email" in c.arguments]
    other_mcp = json.dumps([c.arguments for c in mcp_calls if c not in person_calls], ensure_ascii=False)
    report = run.report.model_dump_json()
    # what a handler with the production filter writes, even at DEBUG (zenpy logs raw response bodies)
    log_filter = SecretFilter(Redactor())
    logs = "\n".join(r.getMessage() for r in caplog.records if log_filter.filter(r))
    await h.stop()  # flush and close the database before reading it
    db_file = Path(db_url.removeprefix("sqlite:///")) if db_url.startswith("sqlite") else None
    database = _database_text(db_url, db_file)

    # the card and its notification text carry the redacted subject
    parent = h.slack.calls_to("chat.postMessage")[0].params
    assert "[redacted:" in json.dumps(parent["blocks"]) and "[redacted:" in parent["text"]
    # the requester's email reached the person look-up, inside the adapter call only
    assert [c.arguments["email"] for c in person_calls] == [REQUESTER_EMAIL]
    assert "Person (requester)" in report
    for needle in _needles():
        for where, text in [
            ("slack", slack),
            ("prompts", prompts),
            ("mcp", other_mcp),
            ("report", report),
            ("logs", logs),
            ("database", database),
        ]:
            assert needle not in text, f"{needle!r} leaked into {where}"
