"""Local fakes for the `triagebot` command line, and the settings that point it at them.

Zendesk (seeded with bundled ticket #48291), GitHub, npm/PyPI, the Anthropic Messages API and the PostHog
MCP server, each a local fake that speaks the real protocol (sources noted in tests/fakes/).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.github import GitHubFake
from tests.fakes.http import FakeServer
from tests.fakes.mcp_server import TOKEN, FakeMcpServer
from tests.fakes.registries import RegistryFake
from tests.fakes.zendesk import FakeZendesk
from tests.slack_support import ZD_EMAIL, ZD_TOKEN, example, seed_ticket


@dataclass(frozen=True)
class CliFakes:
    zendesk: FakeZendesk
    github: GitHubFake
    registry: RegistryFake
    anthropic: FakeAnthropic
    mcp: FakeMcpServer


@contextmanager
def cli_fakes(github: GitHubFake | None = None) -> Iterator[CliFakes]:
    """Start every fake (`github` instead of an empty GitHubFake when given); stop them all after."""
    fakes = CliFakes(
        zendesk=FakeZendesk(),
        github=github or GitHubFake(),
        registry=RegistryFake(npm={"posthog-js": "1.165.0"}, pypi={"posthog": "3.7.4"}),
        anthropic=FakeAnthropic(),
        mcp=FakeMcpServer(),
    )
    started: list[FakeServer | FakeMcpServer] = []
    try:
        for server in (fakes.zendesk, fakes.github, fakes.registry, fakes.anthropic, fakes.mcp):
            started.append(server.start())
        seed_ticket(fakes.zendesk, example(48291))
        yield fakes
    finally:
        for server in started:
            server.stop()


def configure_cli(fakes: CliFakes, monkeypatch: pytest.MonkeyPatch, db_path: Path) -> str:
    """Point every setting of the CLI at `fakes` and the store at a SQLite file; return its URL."""
    db = f"sqlite:///{db_path}"
    env = {
        "ZENDESK_URL": fakes.zendesk.url,
        "ZENDESK_EMAIL": ZD_EMAIL,
        "ZENDESK_API_TOKEN": ZD_TOKEN,
        "POSTHOG_MCP_URL": fakes.mcp.url,
        "POSTHOG_API_KEY": TOKEN,
        "GITHUB_API_URL": fakes.github.url,
        "NPM_REGISTRY_URL": f"{fakes.registry.url}/npm",
        "PYPI_URL": fakes.registry.url,
        "ANTHROPIC_BASE_URL": fakes.anthropic.url,
        "ANTHROPIC_API_KEY": fakes.anthropic.api_key,
        "ANTHROPIC_MAX_RETRIES": "0",
        "DATABASE_URL": db,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return db
