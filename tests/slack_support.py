"""Shared harness for the Slack tests and bench/slack_ack.py.

The real app in HTTP mode on a free port, every base URL pointed at a local fake: FakeSlack (Web API,
response_url, uploads), FakeZendesk (tickets from `triage/examples`), optionally FakeAnthropic, and the
research sources served from the recordings the offline demo uses (PostHog MCP in-process over the MCP
protocol, GitHub and registries through an httpx replay transport). Requests are really signed.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
from slack_sdk.signature import SignatureVerifier

from bot.app import build_app
from bot.http_server import HttpServer, build_web_app, start_http
from bot.settings import Settings
from bot.slack_runtime import runtime_for
from bot.wiring import Services, build_services, replay_sources
from tests.fakes.slack import FakeSlack
from tests.fakes.zendesk import FakeZendesk
from tests.waits import WAIT_S
from triage.models import Ticket
from triage.protocols import LanguageModel, ResearchSource

SECRET = "test-signing-secret"
BOT_TOKEN = "xoxb-test-token"
TRIAGE_CHANNEL = "C0TRIAGE"
ZD_EMAIL = "bot@example.com"
ZD_TOKEN = "zd-token"


def example(ticket_id: int) -> Ticket:
    raw = (resources.files("triage") / "examples" / f"{ticket_id}.json").read_text("utf-8")
    return Ticket.model_validate_json(raw)


def seed_ticket(zd: FakeZendesk, ticket: Ticket) -> None:
    org = ticket.organization
    zd.add_ticket(
        ticket.id,
        subject=ticket.subject,
        description=ticket.description,
        status=ticket.status,
        priority=ticket.priority,
        type=ticket.type,
        tags=ticket.tags,
        requester={
            "id": ticket.requester.id or 9001,
            "name": ticket.requester.name,
            "email": ticket.requester.email,
            "role": "end-user",
        },
        organization={"id": org.id or 501, "name": org.name, "tags": org.tags} if org else None,
        comments=[
            {
                "body": c.body,
                "author": c.author_id or ticket.requester.id or 9001,
                "public": c.public,
                "created_at": c.created_at,
            }
            for c in ticket.comments
        ]
        or None,
        created_at=ticket.created_at,
        updated_at=ticket.updated_at,
    )


def sign(body: str, *, secret: str = SECRET, timestamp: int | None = None) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    sig = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": sig}


@dataclass
class Sent:
    status: int
    body: str
    elapsed_s: float

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class SlackHarness:
    slack: FakeSlack
    zendesk: FakeZendesk
    db_path: Path
    overrides: dict[str, Any] = field(default_factory=dict)
    model: LanguageModel | None = None
    sources: list[ResearchSource] | None = None
    services: Services | None = None
    server: HttpServer | None = None
    session: aiohttp.ClientSession | None = None

    # ------------------------------------------------------------ lifecycle

    def settings(self) -> Settings:
        values: dict[str, Any] = {
            "slack_bot_token": BOT_TOKEN,
            "slack_signing_secret": SECRET,
            "slack_api_url": self.slack.api_url,
            "triage_channel": TRIAGE_CHANNEL,
            "slack_update_interval_seconds": 0.05,
            "zendesk_url": self.zendesk.url,
            "zendesk_email": ZD_EMAIL,
            "zendesk_api_token": ZD_TOKEN,
            "database_url": f"sqlite:///{self.db_path}",
            "research_deadline_seconds": 20,
            "source_timeout_seconds": 10,
            "triage_concurrency": 4,
        }
        values.update(self.overrides)
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    def build_services(self) -> Services:
        return build_services(
            self.settings(),
            sources=self.sources if self.sources is not None else replay_sources(),
            model=self.model,
        )

    async def start(self) -> SlackHarness:
        self.services = self.build_services()
        app = build_app(self.services)
        self.server = await start_http(build_web_app(self.services, app), host="127.0.0.1", port=0)
        if self.session is None:
            self.session = aiohttp.ClientSession()
        return self

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()
            self.server = None
        if self.services is not None:
            await self.services.aclose()
            self.services = None

    async def restart(self, **overrides: Any) -> None:
        """A new process: new Services and app over the same database and fakes."""
        await self.stop()
        self.overrides.update(overrides)
        await self.start()

    async def close(self) -> None:
        await self.stop()
        if self.session is not None:
            await self.session.close()
            self.session = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url + "/slack/events"

    @property
    def svc(self) -> Services:
        assert self.services is not None
        return self.services

    async def idle(self, within: float = WAIT_S) -> None:
        """Wait until every background task (and what it spawned) has finished."""
        rt = runtime_for(self.svc)
        deadline = time.monotonic() + within
        while True:
            pending = [t for t in rt.tasks if not t.done()]
            if not pending:
                await asyncio.sleep(0.05)
                if not [t for t in rt.tasks if not t.done()]:
                    return
                continue
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(pending)} background tasks still running")
            await asyncio.wait(pending, timeout=max(0.01, deadline - time.monotonic()))

    # ------------------------------------------------------------ sending

    async def post(
        self, body: str, content_type: str, *, headers: dict[str, str] | None = None, signed: bool = True
    ) -> Sent:
        assert self.session is not None
        h = {"Content-Type": content_type}
        if signed:
            h.update(sign(body))
        h.update(headers or {})
        t0 = time.perf_counter()
        async with self.session.post(self.url, data=body.encode(), headers=h) as resp:
            text = await resp.text()
            return Sent(resp.status, text, time.perf_counter() - t0)

    def command_body(
        self, text: str, *, user: str = "W111", channel: str = "C0SUPPORT", name: str | None = None
    ) -> str:
        return urlencode(
            {
                "token": "legacy",
                "team_id": "T111",
                "team_domain": "acme",
                "channel_id": channel,
                "channel_name": "support",
                "user_id": user,
                "user_name": "alice",
                "command": "/triage",
                "text": text,
                "api_app_id": "A111",
                "is_enterprise_install": "false",
                "response_url": self.slack.response_url(name or f"cmd-{uuid.uuid4().hex[:8]}"),
                "trigger_id": f"111.222.{uuid.uuid4().hex[:6]}",
            }
        )

    async def command(self, text: str, **kw: Any) -> Sent:
        headers = kw.pop("headers", None)
        signed = kw.pop("signed", True)
        return await self.post(
            self.command_body(text, **kw), "application/x-www-form-urlencoded", headers=headers, signed=signed
        )

    async def action(
        self,
        action_id: str,
        value: str,
        *,
        user: str = "W111",
        channel: str = TRIAGE_CHANNEL,
        message_ts: str = "1700000001.000001",
        name: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> Sent:
        payload: dict[str, Any] = {
            "type": "block_actions",
            "user": {"id": user, "username": "alice", "name": "alice", "team_id": "T111"},
            "api_app_id": "A111",
            "token": "legacy",
            "trigger_id": f"111.222.{uuid.uuid4().hex[:6]}",
            "container": {
                "type": "message",
                "message_ts": message_ts,
                "channel_id": channel,
                "is_ephemeral": False,
            },
            "team": {"id": "T111", "domain": "acme"},
            "channel": {"id": channel, "name": "escalations"},
            "message": {
                "type": "message",
                "bot_id": "B0BOT",
                "user": "U0BOT",
                "ts": message_ts,
                "text": "card",
            },
            "response_url": self.slack.response_url(name or f"act-{uuid.uuid4().hex[:8]}"),
            "actions": [
                {
                    "type": "button",
                    "action_id": action_id,
                    "block_id": "b1",
                    "value": value,
                    "text": {"type": "plain_text", "text": "x"},
                    "action_ts": str(time.time()),
                }
            ],
        }
        payload.update(extra or {})
        body = "payload=" + quote(json.dumps(payload))
        return await self.post(body, "application/x-www-form-urlencoded")

    async def view_submission(
        self,
        callback_id: str,
        private_metadata: str,
        values: dict[str, dict[str, str]],
        *,
        user: str = "W111",
    ) -> Sent:
        state = {
            block: {action: {"type": "plain_text_input", "value": value} for action, value in actions.items()}
            for block, actions in values.items()
        }
        payload = {
            "type": "view_submission",
            "team": {"id": "T111", "domain": "acme"},
            "user": {"id": user, "username": "alice", "name": "alice", "team_id": "T111"},
            "api_app_id": "A111",
            "token": "legacy",
            "trigger_id": f"111.222.{uuid.uuid4().hex[:6]}",
            "view": {
                "id": "V0001",
                "team_id": "T111",
                "type": "modal",
                "callback_id": callback_id,
                "private_metadata": private_metadata,
                "state": {"values": state},
                "hash": "1.abc",
                "blocks": [],
            },
            "response_urls": [],
        }
        return await self.post("payload=" + quote(json.dumps(payload)), "application/x-www-form-urlencoded")

    async def message_shortcut(
        self,
        message: dict[str, Any],
        *,
        user: str = "W111",
        channel: str = "C0SUPPORT",
        callback_id: str = "triage_message",
        name: str | None = None,
    ) -> Sent:
        """A signed `message_action` payload (the shape in bolt-python's tests/scenario_tests/test_shortcut.py)."""
        payload = {
            "type": "message_action",
            "token": "legacy",
            "action_ts": str(time.time()),
            "team": {"id": "T111", "domain": "acme"},
            "user": {"id": user, "username": "alice", "name": "alice", "team_id": "T111"},
            "channel": {"id": channel, "name": "support"},
            "is_enterprise_install": False,
            "enterprise": None,
            "callback_id": callback_id,
            "trigger_id": f"111.222.{uuid.uuid4().hex[:6]}",
            "response_url": self.slack.response_url(name or f"sc-{uuid.uuid4().hex[:8]}"),
            "message_ts": message["ts"],
            "message": {"type": "message", "team": "T111", **message},
        }
        return await self.post("payload=" + quote(json.dumps(payload)), "application/x-www-form-urlencoded")

    async def event(
        self,
        event: dict[str, Any],
        *,
        event_id: str | None = None,
        retry_num: int | None = None,
        shared: bool = False,
    ) -> Sent:
        envelope = {
            "token": "legacy",
            "team_id": "T111",
            "api_app_id": "A111",
            "type": "event_callback",
            "event_id": event_id or f"Ev{uuid.uuid4().hex[:10]}",
            "event_time": int(time.time()),
            "is_ext_shared_channel": shared,
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": "T111",
                    "user_id": "U0BOT",
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "event": {"team": "T111", "event_ts": event.get("ts", ""), **event},
        }
        headers = {}
        if retry_num is not None:
            headers = {"X-Slack-Retry-Num": str(retry_num), "X-Slack-Retry-Reason": "http_timeout"}
        return await self.post(json.dumps(envelope), "application/json", headers=headers)

    # ------------------------------------------------------------ reading results

    def responses_for(self, name: str) -> list[dict[str, Any]]:
        return [r for r in list(self.slack.responses) if r.get("_name") == name]

    async def wait_response(self, name: str, within: float = WAIT_S) -> dict[str, Any]:
        found: list[dict[str, Any]] = await self.slack.wait_for(
            lambda: self.responses_for(name), within=within, what=f"response_url post {name}"
        )
        return found[-1]

    async def run_to_done(self, ticket_id: int) -> Any:
        """/triage a ticket and wait until its run is finished; returns the RunRecord."""
        sent = await self.command(str(ticket_id))
        assert sent.status == 200, sent
        await self.idle()
        run = await self.svc.store.latest_run(ticket_id)
        assert run is not None and run.report is not None, run
        return run


@asynccontextmanager
async def slack_harness(tmp_path: Path, **overrides: Any) -> AsyncIterator[SlackHarness]:
    """A started harness (fake Zendesk holds the bundled tickets); `overrides` are settings, plus the
    `model` and the research `sources`. Everything is stopped on the way out."""
    slack, zendesk = FakeSlack(), FakeZendesk()
    slack.start()
    zendesk.start()
    try:
        zendesk.accept_token(ZD_EMAIL, ZD_TOKEN)
        for tid in (48291, 48302, 48317, 48330):
            seed_ticket(zendesk, example(tid))
        model = overrides.pop("model", None)
        sources = overrides.pop("sources", None)
        h = SlackHarness(slack, zendesk, tmp_path / "triage.db", overrides, model=model, sources=sources)
        await h.start()
        try:
            yield h
        finally:
            await h.close()
    finally:
        slack.stop()
        zendesk.stop()
