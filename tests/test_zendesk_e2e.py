"""Issue 4 end to end: the real bot (`bot.runner.start_bot`) in HTTP mode on a free port.

Slack Web API → FakeSlack, Zendesk → FakeZendesk (zenpy for real), the store is a SQLite file, the
research sources are the demo's recordings served through the real adapters, no model (evidence-only
reports). Webhooks and slash commands are really signed. A "restart" is a new bot (new Services,
queue, scheduler, HTTP server) on the same database file and fakes.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from sqlalchemy import func, select

from bot import cli
from bot.delivery import REPORT_RUN
from bot.poller import JOB_ID as POLL_JOB_ID
from bot.runner import PRUNE_JOB_ID, RunningBot, start_bot
from bot.slack_runtime import runtime_for
from bot.zendesk_webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, WEBHOOK_PATH, sign
from integrations.store import SqlStore, triage_runs
from integrations.zendesk import FORCE_NETLOC, FORCE_SCHEME
from tests.fakes.http import free_port
from tests.fakes.slack import FakeSlack, Message
from tests.fakes.zendesk import FakeZendesk
from tests.slack_support import TRIAGE_CHANNEL, ZD_EMAIL, ZD_TOKEN, SlackHarness, example, seed_ticket
from tests.slack_support import sign as slack_sign
from tests.waits import WAIT_S
from triage.models import Evidence, EvidenceStatus, Intake, ResearchTask
from triage.playbooks import Playbook
from triage.protocols import ResearchSource
from triage.store import RunStatus

WEBHOOK_SECRET = "zendesk-webhook-secret"
FLAGS, REPLAY = 48291, 48302
AGENT = {"id": 77, "name": "Sam Agent", "email": "sam@support.example", "role": "agent"}


def iso(seconds_ago: float) -> str:
    return (datetime.now(UTC) - timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def seed_recent(zd: FakeZendesk, ticket_id: int, *, seconds_ago: float = 300, **update: Any) -> None:
    """An example ticket, changed `seconds_ago` (inside the poller's look-back)."""
    ticket = example(ticket_id)
    fields: dict[str, Any] = {"updated_at": datetime.now(UTC) - timedelta(seconds=seconds_ago), **update}
    seed_ticket(zd, ticket.model_copy(update=fields))


class Blocker:
    """A research source that never answers (until cancelled): a triage stuck mid-research."""

    name = "blocker"

    def __init__(self) -> None:
        self.started = asyncio.Event()

    def plan(self, intake: Intake, playbook: Playbook) -> list[ResearchTask]:
        return [ResearchTask(key="blocker:wait", source=self.name, tool="wait", description="never ends")]

    async def execute(self, task: ResearchTask) -> list[Evidence]:
        self.started.set()
        await asyncio.sleep(3600)
        return [Evidence(source=self.name, status=EvidenceStatus.ok)]  # pragma: no cover


@dataclass
class Env:
    slack: FakeSlack
    zendesk: FakeZendesk
    db_path: Path
    session: aiohttp.ClientSession
    overrides: dict[str, Any]
    bot: RunningBot | None = None

    async def start(self, *, sources: list[ResearchSource] | None = None, **overrides: Any) -> RunningBot:
        harness = SlackHarness(
            self.slack, self.zendesk, self.db_path, {**self.overrides, **overrides}, sources=sources
        )
        services = harness.build_services()
        self.bot = await start_bot(services.settings, http=True, port=0, host="127.0.0.1", services=services)
        return self.bot

    @property
    def running(self) -> RunningBot:
        assert self.bot is not None
        return self.bot

    async def stop(self, drain_timeout: float | None = None) -> None:
        if self.bot is not None:
            await self.bot.stop(drain_timeout)
            self.bot = None

    async def first_poll(self) -> None:
        poller = self.running.poller
        assert poller is not None
        await self.slack.wait_for(lambda: poller.last_stats is not None, what="the start-up poll")
        await self.settle()

    async def settle(self, within: float = WAIT_S) -> None:
        """Until every webhook dispatch, slash command and queued triage has finished."""
        bot = self.running
        rt = runtime_for(bot.services)
        deadline = time.monotonic() + within
        quiet = 0
        while quiet < 3:
            busy = bot.queue.in_flight + sum(1 for t in rt.tasks if not t.done())
            quiet = 0 if busy else quiet + 1
            if time.monotonic() > deadline:
                raise AssertionError(f"{busy} tasks still running")
            await asyncio.sleep(0.05)

    async def webhook(
        self, ticket_id: int, *, secret: str = WEBHOOK_SECRET, timestamp: str | None = None
    ) -> int:
        raw = json.dumps({"ticket_id": str(ticket_id)}).encode()
        ts = timestamp or iso(0)
        headers = {
            SIGNATURE_HEADER: sign(secret, ts, raw),
            TIMESTAMP_HEADER: ts,
            "Content-Type": "application/json",
        }
        async with self.session.post(self.running.url + WEBHOOK_PATH, data=raw, headers=headers) as resp:
            return resp.status

    async def slash(self, text: str, name: str) -> int:
        body = urlencode(
            {
                "team_id": "T111",
                "channel_id": "C0SUPPORT",
                "user_id": "W111",
                "command": "/triage",
                "text": text,
                "api_app_id": "A111",
                "response_url": self.slack.response_url(name),
                "trigger_id": f"111.222.{uuid.uuid4().hex[:6]}",
            }
        )
        headers = {"Content-Type": "application/x-www-form-urlencoded", **slack_sign(body)}
        async with self.session.post(self.running.url + "/slack/events", data=body, headers=headers) as resp:
            return resp.status

    # ------------------------------------------------------------ reading results

    def parents(self) -> list[Message]:
        return self.slack.top_level(TRIAGE_CHANNEL)

    def thread(self, parent: Message) -> list[Message]:
        return sorted(self.slack.thread(TRIAGE_CHANNEL, parent.ts), key=lambda m: m.ts)

    def runs_per_ticket(self) -> dict[int, int]:
        store = self.running.services.store
        with store.engine.connect() as conn:
            rows = conn.execute(
                select(triage_runs.c.ticket_id, func.count()).group_by(triage_runs.c.ticket_id)
            )
            return {int(r[0]): int(r[1]) for r in rows}


@pytest.fixture
async def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Env]:
    monkeypatch.delenv(FORCE_NETLOC, raising=False)
    monkeypatch.delenv(FORCE_SCHEME, raising=False)
    slack = FakeSlack().start()
    zendesk = FakeZendesk()
    zendesk.start()
    zendesk.accept_token(ZD_EMAIL, ZD_TOKEN)
    overrides: dict[str, Any] = {
        "zendesk_webhook_secret": WEBHOOK_SECRET,
        "zendesk_poll_seconds": 3600,  # the start-up poll runs at once; further polls are driven by the test
        "zendesk_poll_lookback_minutes": 60,
        "shutdown_drain_seconds": 5,
    }
    session = aiohttp.ClientSession()
    e = Env(slack, zendesk, tmp_path / "e2e.db", session, overrides)
    try:
        yield e
    finally:
        await e.stop()
        await session.close()
        slack.stop()
        zendesk.stop()


def report_posts(messages: list[Message], ticket_id: int) -> list[Message]:
    return [m for m in messages if m.text.startswith(f"Triage report for #{ticket_id}")]


# ---------------------------------------------------------------- (a) + (b) poll → thread → re-triage


async def test_poll_triages_new_ticket_then_customer_reply_retriages_in_same_thread(env: Env) -> None:
    bot = await env.start()
    assert bot.scheduler.get_job(POLL_JOB_ID) is not None and bot.scheduler.get_job(PRUNE_JOB_ID) is not None
    await env.first_poll()
    assert env.parents() == []  # nothing recent in Zendesk yet

    # (a) a new ticket appears → one poll → one parent card + the report in its thread
    seed_recent(env.zendesk, FLAGS, seconds_ago=300)
    poller = bot.poller
    assert poller is not None
    stats = await poller.poll_once()
    assert (stats.matched, stats.dispatched) == (1, 1)
    await env.settle()
    [parent] = env.parents()
    first_thread = env.thread(parent)
    assert len(report_posts(first_thread, FLAGS)) == 1
    assert "#48291" in parent.text and parent.updates >= 1  # the live card, finished in place
    store = bot.services.store
    run = await store.latest_run(FLAGS)
    assert run is not None and run.status is RunStatus.done and run.trigger == "poll"
    assert run.report is not None and (run.channel, run.thread_ts) == (TRIAGE_CHANNEL, parent.ts)
    # the poll's claim key (export row) is the fetched ticket's version_key
    assert run.ticket_version == (await bot.services.engine.fetch(FLAGS)).version_key
    state = await store.get_ticket_state(FLAGS)
    assert state is not None and state.extra[REPORT_RUN] == run.run_id
    assert state.public_customer_comments == 2

    # (b) the customer replies publicly → next poll → an update in the SAME thread, no new parent
    env.zendesk.add_comment(
        FLAGS, "Upgraded to posthog-js 1.161 and the flag is still false for everyone.", created_at=iso(120)
    )
    stats = await poller.poll_once()
    assert stats.dispatched == 1
    await env.settle()
    assert [p.ts for p in env.parents()] == [parent.ts]
    second_thread = env.thread(parent)
    new = second_thread[len(first_thread) :]
    assert new and new[0].text.startswith("Customer replied on #48291")
    assert "still false for everyone" in env.slack.all_text(new[:1])
    assert len(report_posts(new, FLAGS)) == 1  # the new report follows the "what changed" update
    retriaged = await store.latest_run(FLAGS)
    assert retriaged is not None and retriaged.run_id != run.run_id and retriaged.status is RunStatus.done
    card = env.slack.messages[parent.ts]
    assert retriaged.run_id in json.dumps(card.blocks)  # card updated in place: buttons → the new run
    state = await store.get_ticket_state(FLAGS)
    assert state is not None and state.public_customer_comments == 3
    assert state.extra[REPORT_RUN] == retriaged.run_id

    # an agent's internal note (and an agent's public reply) → new versions, but nothing is posted
    posted_before = len(env.slack.calls_to("chat.postMessage"))
    env.zendesk.add_comment(
        FLAGS, "Internal: checked the flag definition.", author=AGENT, public=False, created_at=iso(60)
    )
    assert (await poller.poll_once()).dispatched == 1
    await env.settle()
    env.zendesk.add_comment(
        FLAGS, "Thanks, we are looking into it.", author=AGENT, public=True, created_at=iso(30)
    )
    assert (await poller.poll_once()).dispatched == 1
    await env.settle()
    assert len(env.slack.calls_to("chat.postMessage")) == posted_before
    assert len(env.thread(parent)) == len(second_thread) and len(env.parents()) == 1
    skipped = await store.latest_run(FLAGS)
    assert skipped is not None and skipped.run_id != retriaged.run_id
    # the skipped run carries the report that is in the thread, so follow-ups still find it
    assert skipped.status is RunStatus.done and skipped.report is not None
    assert skipped.report.run_id == retriaged.run_id
    assert env.runs_per_ticket() == {FLAGS: 4}
    state = await store.get_ticket_state(FLAGS)
    assert state is not None and state.public_customer_comments == 3
    assert state.extra[REPORT_RUN] == retriaged.run_id


# ---------------------------------------------------------------- (c) three triggers at once


async def test_poll_webhook_and_slash_at_the_same_moment_make_one_run_and_one_thread(env: Env) -> None:
    bot = await env.start()
    await env.first_poll()
    seed_recent(env.zendesk, FLAGS, seconds_ago=60)
    poller = bot.poller
    assert poller is not None

    polled, hooked, slashed = await asyncio.gather(
        poller.poll_once(), env.webhook(FLAGS), env.slash(str(FLAGS), "race")
    )
    assert (polled.dispatched, hooked, slashed) == (1, 202, 200)
    await env.settle()

    assert env.runs_per_ticket() == {FLAGS: 1}
    [parent] = env.parents()
    assert len(report_posts(env.thread(parent), FLAGS)) == 1
    run = await bot.services.store.latest_run(FLAGS)
    assert run is not None and run.status is RunStatus.done and run.attempts == 1
    # whoever lost the race was told where the thread is; nobody started a second run
    response = await env.slack.wait_for(
        lambda: [r for r in env.slack.responses if r.get("_name") == "race"], what="the /triage answer"
    )
    assert "#48291" in response[-1]["text"]
    assert bot.queue.stats.claimed + (1 if run.trigger == "slash" else 0) == 1
    # a replayed webhook and a second poll change nothing
    assert await env.webhook(FLAGS) == 202
    assert (await poller.poll_once()).dispatched == 0
    await env.settle()
    assert env.runs_per_ticket() == {FLAGS: 1} and len(env.parents()) == 1


# ---------------------------------------------------------------- (d) kill and restart mid-triage


async def test_run_killed_mid_triage_is_resumed_once_after_restart(env: Env) -> None:
    quick = {"run_stale_after_seconds": 2.0}
    blocker = Blocker()
    seed_recent(env.zendesk, FLAGS, seconds_ago=120)
    first = await env.start(sources=[blocker], **quick)
    await asyncio.wait_for(blocker.started.wait(), WAIT_S)  # claimed by the start-up poll, card posted, stuck
    [parent] = env.parents()
    assert report_posts(env.thread(parent), FLAGS) == []
    assert first.queue.stats.claimed == 1

    await env.stop(drain_timeout=0)  # "kill": cancelled mid-research, nothing finished or failed
    store = await SqlStore.connect(f"sqlite:///{env.db_path}")
    try:
        crashed = await store.latest_run(FLAGS)
        assert crashed is not None and crashed.status is RunStatus.running and crashed.attempts == 1
    finally:
        await store.close()

    second = await env.start(**quick)  # the replay sources: this time the triage can finish
    await env.slack.wait_for(lambda: report_posts(env.thread(parent), FLAGS), what="the report")
    await env.settle()
    assert second.queue.stats.recovered == 1
    assert [p.ts for p in env.parents()] == [parent.ts]  # no second parent
    assert len(report_posts(env.thread(parent), FLAGS)) == 1
    assert "interrupted" in env.slack.all_text(env.thread(parent))
    run = await second.services.store.latest_run(FLAGS)
    assert run is not None and run.run_id == crashed.run_id
    assert run.status is RunStatus.done and run.attempts == 2 and run.report is not None
    assert env.runs_per_ticket() == {FLAGS: 1}

    # a finished ticket is not re-posted after another restart + re-poll + webhook
    await env.stop()
    posted = len(env.slack.calls_to("chat.postMessage"))
    third = await env.start(**quick)
    await env.first_poll()
    assert third.queue.stats.recovered == 0
    assert await env.webhook(FLAGS) == 202
    await env.settle()
    assert third.queue.stats.claimed == 0 and third.queue.stats.duplicates >= 1
    assert len(env.slack.calls_to("chat.postMessage")) == posted
    assert env.runs_per_ticket() == {FLAGS: 1}


# ---------------------------------------------------------------- (e) webhook signatures


async def test_webhook_with_bad_or_stale_signature_is_refused_and_posts_nothing(env: Env) -> None:
    await env.start(zendesk_poll_seconds=0)
    assert env.running.poller is None and env.running.scheduler.get_job(POLL_JOB_ID) is None
    seed_recent(env.zendesk, FLAGS)
    assert await env.webhook(FLAGS, secret="not-the-secret") == 401
    assert await env.webhook(FLAGS, timestamp=iso(600)) == 401
    await env.settle()
    await asyncio.sleep(0.3)
    assert env.slack.calls_to("chat.postMessage") == [] and env.runs_per_ticket() == {}
    # the same request correctly signed is accepted and triaged (the test can fail)
    assert await env.webhook(FLAGS) == 202
    await env.settle()
    await env.slack.wait_for(lambda: env.parents(), what="the parent card")
    await env.settle()
    assert env.runs_per_ticket() == {FLAGS: 1}
    run = await env.running.services.store.latest_run(FLAGS)
    assert run is not None and run.trigger == "webhook" and run.status is RunStatus.done


# ---------------------------------------------------------------- (f) intake filters


async def test_ticket_excluded_by_tag_is_not_triaged_by_poll_or_webhook(env: Env) -> None:
    bot = await env.start(zendesk_filter_tags_exclude=["no-triage"])
    await env.first_poll()
    seed_recent(env.zendesk, REPLAY, seconds_ago=90, tags=["session_replay", "no-triage"])
    seed_recent(env.zendesk, FLAGS, seconds_ago=60)
    poller = bot.poller
    assert poller is not None
    stats = await poller.poll_once()
    assert (stats.seen, stats.matched, stats.skipped) == (2, 1, 1)
    assert await env.webhook(REPLAY) == 202
    await env.settle()
    assert env.runs_per_ticket() == {FLAGS: 1}
    [parent] = env.parents()
    assert "#48291" in parent.text and "#48302" not in env.slack.all_text(env.parents())


# ---------------------------------------------------------------- Socket Mode: polling still runs


async def test_socket_mode_bot_still_polls_zendesk(env: Env) -> None:
    seed_recent(env.zendesk, FLAGS, seconds_ago=60)
    harness = SlackHarness(
        env.slack, env.zendesk, env.db_path, {**env.overrides, "slack_app_token": "xapp-1-test"}
    )
    services = harness.build_services()
    env.bot = await start_bot(services.settings, http=False, port=0, host="127.0.0.1", services=services)
    assert env.bot.url == "" and env.bot.socket_handler is not None and env.bot.http_server is None
    assert env.slack.calls_to("apps.connections.open")[0].token == "xapp-1-test"
    await env.first_poll()
    [parent] = env.parents()
    assert len(report_posts(env.thread(parent), FLAGS)) == 1


async def test_socket_mode_health_port_serves_probes_and_the_webhook(env: Env) -> None:
    """`run --health-port P` in Socket Mode: /healthz for container probes and the webhook, no Slack route."""
    harness = SlackHarness(
        env.slack, env.zendesk, env.db_path, {**env.overrides, "slack_app_token": "xapp-1-test"}
    )
    services = harness.build_services()
    port = free_port()
    env.bot = await start_bot(
        services.settings, http=False, port=0, host="127.0.0.1", services=services, health_port=port
    )
    assert env.bot.socket_handler is not None
    base = f"http://127.0.0.1:{port}"
    async with env.session.get(base + "/healthz") as resp:
        assert resp.status == 200 and (await resp.json())["ok"] is True
    async with env.session.post(base + "/slack/events", data=b"{}") as resp:
        assert resp.status in (404, 405)  # Slack arrives over the WebSocket only
    async with env.session.post(base + WEBHOOK_PATH, data=b"{}") as resp:
        assert resp.status == 401  # the webhook is mounted and fails closed


# ---------------------------------------------------------------- `triagebot run` without settings


@pytest.mark.parametrize(
    ("env_vars", "expected"),
    [
        ({}, "SLACK_BOT_TOKEN is not set"),
        ({"SLACK_BOT_TOKEN": "xoxb-1", "TRIAGE_CHANNEL": "C1"}, "SLACK_SIGNING_SECRET is not set"),
        ({"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s"}, "TRIAGE_CHANNEL is not set"),
    ],
)
def test_run_without_required_settings_prints_one_clear_line(
    env_vars: dict[str, str],
    expected: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env
    for key, value in env_vars.items():
        monkeypatch.setenv(key, value)
    code = cli.main(["run", "--http", "--port", "0"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == cli.EXIT_FAIL
    assert len(err) == 1 and err[0].startswith(f"triagebot: {expected}"), err
    assert "Traceback" not in err[0]


async def test_triagebot_run_serves_polls_and_stops_cleanly_on_sigterm(env: Env, tmp_path: Path) -> None:
    """The real CLI process: starts (HTTP + poller + webhook), answers /healthz, exits 0 on SIGTERM."""
    seed_recent(env.zendesk, FLAGS, seconds_ago=60, tags=["no-triage"])  # polled but filtered: no research
    port = free_port()
    child_env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "ZENDESK_", "ZENPY_"))}
    child_env.update(
        SLACK_BOT_TOKEN="xoxb-test-token",
        SLACK_SIGNING_SECRET="s",
        SLACK_API_URL=env.slack.api_url,
        TRIAGE_CHANNEL=TRIAGE_CHANNEL,
        ZENDESK_URL=env.zendesk.url,
        ZENDESK_EMAIL=ZD_EMAIL,
        ZENDESK_API_TOKEN=ZD_TOKEN,
        ZENDESK_WEBHOOK_SECRET=WEBHOOK_SECRET,
        ZENDESK_POLL_SECONDS="60",
        ZENDESK_POLL_LOOKBACK_MINUTES="10",
        ZENDESK_FILTER_TAGS_EXCLUDE="no-triage",
        DATABASE_URL=f"sqlite:///{tmp_path / 'cli.db'}",
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "bot.cli", "run", "--http", "--host", "127.0.0.1", "--port", str(port)),
        cwd=tmp_path,
        env=child_env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    stderr = asyncio.create_task(proc.stderr.read())  # drained all along: a full pipe would block the child
    try:
        export = "/api/v2/incremental/tickets/cursor.json"
        # a cold process start (imports, migrations) takes long on a loaded machine
        await env.slack.wait_for(lambda: env.zendesk.calls(export), what="the first poll")
        health: dict[str, Any] = {}
        deadline = time.monotonic() + WAIT_S
        while not health and time.monotonic() < deadline:
            try:
                async with env.session.get(f"http://127.0.0.1:{port}/healthz") as resp:
                    health = await resp.json() if resp.status == 200 else {}
            except aiohttp.ClientConnectionError:
                pass  # not listening yet
            if not health:
                await asyncio.sleep(0.1)
        assert health.get("ok") is True, health
        async with env.session.post(f"http://127.0.0.1:{port}{WEBHOOK_PATH}", data=b"{}") as resp:
            assert resp.status == 401  # the webhook route is mounted and fails closed
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), WAIT_S)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        err = (await stderr).decode()
    assert proc.returncode == 0, err
    assert "triagebot stopped" in err and "Traceback" not in err
    assert env.slack.calls_to("chat.postMessage") == []  # the ticket was filtered out
