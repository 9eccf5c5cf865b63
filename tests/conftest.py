"""Shared fixtures. No test may reach the network: every base URL points at a local fake."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from integrations.anthropic_model import AnthropicModel
from integrations.store import SqlStore
from tests.fakes.anthropic import FakeAnthropic
from tests.pg_support import pg_schema

# Property tests are deterministic in the suite (the same examples on every run, so CI can't fail at
# random); `HYPOTHESIS_PROFILE=explore` draws new random examples while developing.
settings.register_profile("suite", derandomize=True, database=None)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "suite"))

# Settings come from the test, never from a developer's shell or .env.
_PREFIXES = (
    "SLACK_",
    "ZENDESK_",
    "ANTHROPIC_",
    "POSTHOG_",
    "GITHUB_",
    "TRIAGE_",
    "DATABASE_URL",
    "MCP_SERVERS",
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith(_PREFIXES):
            monkeypatch.delenv(key, raising=False)
    # anthropic reads credentials from these too
    monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN", raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture
def fake() -> Iterator[FakeAnthropic]:
    """A fake Anthropic Messages API on 127.0.0.1 (script it with push_json / push_error)."""
    with FakeAnthropic() as server:
        yield server  # type: ignore[misc]


@pytest.fixture
async def model(fake: FakeAnthropic) -> AsyncIterator[AnthropicModel]:
    """The real AnthropicModel pointed at `fake` with `base_url`; no retries, so errors are immediate."""
    m = AnthropicModel(
        fake.api_key,
        base_url=fake.url,
        synthesis_model="claude-sonnet-5-5",
        intake_model="claude-haiku-5-5",
        max_retries=0,
        timeout_s=10,
    )
    yield m
    await m.aclose()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh store database: a SQLite file, then a throw-away schema of the local PostgreSQL (skipped,
    with the reason, when it is not reachable). A module that needs SQLite only overrides it."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'triagebot.db'}"
        return
    with pg_schema() as url:
        yield url


@pytest.fixture
async def stores(db_url: str) -> AsyncIterator[tuple[SqlStore, SqlStore]]:
    """Two replicas' stores on one database."""
    a = await SqlStore.connect(db_url, replica="replica-a")
    b = await SqlStore.connect(db_url, replica="replica-b")
    yield a, b
    await a.close()
    await b.close()
