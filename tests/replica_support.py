"""Real `triagebot run --http` processes against the local fakes: shared by tests/test_replicas.py and
bench/replicas.py. The fakes (`Fakes`) run in the calling process on 127.0.0.1; each replica is an OS
process (`Replica`, started with `start_replicas`)."""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
from aiohttp import web

from bot.zendesk_webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, WEBHOOK_PATH
from bot.zendesk_webhook import sign as zendesk_sign
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.github import GitHubFake
from tests.fakes.http import FakeServer
from tests.fakes.registries import RegistryFake
from tests.fakes.slack import FakeSlack
from tests.fakes.zendesk import FakeZendesk
from tests.slack_support import (
    BOT_TOKEN,
    SECRET,
    TRIAGE_CHANNEL,
    ZD_EMAIL,
    ZD_TOKEN,
    SlackHarness,
    example,
    seed_ticket,
)

WEBHOOK_SECRET = "replicas-webhook-secret"
EXAMPLES = (48291, 48302, 48317, 48330)
LATEST_NPM = {"posthog-js": "1.165.0"}  # what the fake registries call the latest release
LATEST_PYPI = {"posthog": "3.7.4"}
REPORT_RE = re.compile(r"^Triage report for #(\d+)\b(?! \(part [2-9])")


@dataclass
class GatedGitHub(GitHubFake):
    """The fake GitHub with search latency (`search_latency_s` range), holding searches until `release` is set."""

    release: threading.Event = field(default_factory=threading.Event)
    search_latency_s: tuple[float, float] = (0.2, 0.2)
    held: int = 0
    _rng: random.Random = field(default_factory=lambda: random.Random(7))

    async def _search(self, request: web.Request) -> web.StreamResponse:
        self.held += 1
        if not self.release.is_set():
            await asyncio.to_thread(self.release.wait, 120)
        await asyncio.sleep(self._rng.uniform(*self.search_latency_s))
        return await super()._search(request)


@dataclass
class ReplicaClient(SlackHarness):
    """The test harness's signed Slack request builders, aimed at one replica."""

    base: str = ""

    @property
    def url(self) -> str:
        return self.base + "/slack/events"


@dataclass
class Replica:
    name: str
    port: int
    log: Path
    proc: asyncio.subprocess.Process | None = None
    client: ReplicaClient | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def start(self, env: dict[str, str], cwd: Path) -> None:
        with self.log.open("wb") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                *("-m", "bot.cli", "run", "--http", "--host", "127.0.0.1", "--port", str(self.port)),
                cwd=cwd,
                env=env,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=log,
            )

    async def stop(self, within: float = 15.0) -> None:
        if self.proc is None:
            return
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.proc.wait(), within)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()

    def peak_rss_mb(self) -> float:
        """VmHWM of the live process (Linux)."""
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def cpu_seconds(self) -> float:
        """User + system CPU time of the live process so far (Linux)."""
        assert self.proc is not None
        return process_cpu_seconds(self.proc.pid)


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of a process from /proc/<pid>/stat (fields 14 and 15, in clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Fakes:
    """The services the replicas talk to, each a local fake on 127.0.0.1 served by this process.
    Without `model` the replicas have no model configured (evidence-only reports)."""

    slack: FakeSlack = field(default_factory=FakeSlack)
    zendesk: FakeZendesk = field(default_factory=FakeZendesk)
    github: GatedGitHub = field(default_factory=GatedGitHub)
    registry: RegistryFake = field(default_factory=lambda: RegistryFake(npm=LATEST_NPM, pypi=LATEST_PYPI))
    model: FakeAnthropic | None = None

    def servers(self) -> list[FakeServer]:
        found = [self.slack, self.zendesk, self.github, self.registry, self.model]
        return [f for f in found if f is not None]

    def start(self) -> Fakes:
        for fake in self.servers():
            fake.start()
        self.zendesk.accept_token(ZD_EMAIL, ZD_TOKEN)
        return self

    def stop(self) -> None:
        self.github.release.set()
        for fake in self.servers():
            fake.stop()

    def env(self, name: str, database_url: str, **settings: str) -> dict[str, str]:
        """The environment of one replica: every endpoint one of these fakes, then `settings` (upper-cased)."""
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("SLACK_", "ZENDESK_", "ZENPY_", "ANTHROPIC_", "POSTHOG_", "GITHUB_"))
        }
        env.update(
            REPLICA_ID=name,
            NO_PROXY="127.0.0.1,localhost",
            DATABASE_URL=database_url,
            SLACK_BOT_TOKEN=BOT_TOKEN,
            SLACK_SIGNING_SECRET=SECRET,
            SLACK_API_URL=self.slack.api_url,
            TRIAGE_CHANNEL=TRIAGE_CHANNEL,
            ZENDESK_URL=self.zendesk.url,
            ZENDESK_EMAIL=ZD_EMAIL,
            ZENDESK_API_TOKEN=ZD_TOKEN,
            ZENDESK_WEBHOOK_SECRET=WEBHOOK_SECRET,
            GITHUB_API_URL=self.github.url,
            NPM_REGISTRY_URL=f"{self.registry.url}/npm",
            PYPI_URL=self.registry.url,
            SOURCE_MAX_RETRIES="0",
        )
        if self.model is not None:
            env.update(
                ANTHROPIC_API_KEY=self.model.api_key,
                ANTHROPIC_BASE_URL=self.model.url,
                ANTHROPIC_MAX_RETRIES="0",
            )
        env.update({key.upper(): value for key, value in settings.items()})
        return env


async def start_replicas(
    replicas: list[Replica], fakes: Fakes, database_url: str, cwd: Path, **settings: str
) -> None:
    """Start every replica's process (they import and connect concurrently; wait with `healthy`)."""
    for replica in replicas:
        await replica.start(fakes.env(replica.name, database_url, **settings), cwd)


async def until(predicate: Callable[[], Awaitable[bool] | bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while True:
        value = predicate()
        if not isinstance(value, bool):
            value = await value
        if value:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within:.0f}s waiting for {what}")
        await asyncio.sleep(0.1)


def seed(zendesk: FakeZendesk, ticket_id: int, seconds_ago: float) -> None:
    """One of the bundled example tickets under a new id, changed `seconds_ago`."""
    ticket = example(EXAMPLES[ticket_id % len(EXAMPLES)])
    changed = datetime.now(UTC) - timedelta(seconds=seconds_ago)
    seed_ticket(zendesk, ticket.model_copy(update={"id": ticket_id, "updated_at": changed}))


async def send_webhook(session: aiohttp.ClientSession, replica: Replica, ticket_id: int) -> int:
    raw = json.dumps({"ticket_id": str(ticket_id)}).encode()
    ts = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    headers = {
        SIGNATURE_HEADER: zendesk_sign(WEBHOOK_SECRET, ts, raw),
        TIMESTAMP_HEADER: ts,
        "Content-Type": "application/json",
    }
    async with session.post(replica.url + WEBHOOK_PATH, data=raw, headers=headers) as resp:
        return resp.status


async def healthy(session: aiohttp.ClientSession, replicas: list[Replica]) -> bool:
    for replica in replicas:
        try:
            async with session.get(replica.url + "/healthz") as resp:
                if resp.status != 200:
                    return False
        except aiohttp.ClientError:
            return False
    return True


def report_counts(slack: FakeSlack) -> Counter[int]:
    """Reports (their first message) per ticket, in any thread."""
    return Counter(
        int(m.group(1)) for msg in list(slack.messages.values()) if (m := REPORT_RE.match(msg.text))
    )


def parent_counts(slack: FakeSlack) -> Counter[int]:
    """Parent cards per ticket in the triage channel."""
    found: Counter[int] = Counter()
    for msg in slack.top_level(TRIAGE_CHANNEL):
        m = re.search(r"#(\d+)", msg.text)
        found[int(m.group(1)) if m else -1] += 1
    return found
