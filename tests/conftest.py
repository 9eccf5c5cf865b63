"""Shared fixtures. No test may reach the network: every base URL points at a local fake."""

from __future__ import annotations

import os

import pytest

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
