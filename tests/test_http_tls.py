"""Research clients share one verifying SSL context instead of loading the CA bundle for every client."""

from __future__ import annotations

import ssl

import pytest

from integrations.github.source import GitHubSource
from integrations.http import tls_context
from integrations.posthog_mcp import PostHogMcpSource
from integrations.registries import RegistrySource
from tests.fakes.mcp_server import TOKEN, FakeMcpServer
from tests.fakes.registries import RegistryFake
from triage.models import EvidenceStatus, Identifiers, Intake, Sdk
from triage.playbooks import Playbook


def test_one_verifying_context_per_process() -> None:
    ctx = tls_context()
    assert ctx is tls_context()
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname


async def test_research_clients_build_no_new_ssl_context(monkeypatch: pytest.MonkeyPatch) -> None:
    tls_context()  # built before the patch, as at start-up

    def new_context(*args: object, **kwargs: object) -> ssl.SSLContext:
        raise AssertionError("a client built its own SSL context (loads the CA bundle again)")

    monkeypatch.setattr(ssl, "create_default_context", new_context)
    async with GitHubSource("https://api.github.com")._http():
        pass
    with RegistryFake(npm={"posthog-js": "1.165.0"}) as fake:
        src = RegistrySource(f"{fake.url}/npm", fake.url, max_retries=0)
        sdk = Sdk(name="posthog-js", version="1.160.0", package="posthog-js", registry="npm")
        [task] = src.plan(Intake(identifiers=Identifiers(sdks=[sdk])), Playbook(id="x", title="X"))
        [row] = await src.execute(task)
    assert row.status == EvidenceStatus.ok, row
    with FakeMcpServer() as mcp:  # an MCP session opens its own HTTP client
        posthog = PostHogMcpSource(mcp.url, TOKEN, project_id="84512", timeout_s=10)
        try:
            assert await posthog.start()
        finally:
            await posthog.aclose()
