"""The read-only guard and the guarded MCP client against a real MCP server (HTTP and in-process)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
from mcp.types import Tool, ToolAnnotations

from integrations.mcp_capabilities import capability_tools
from integrations.mcp_client import McpToolClient, inprocess_client_factory
from integrations.mcp_contract import posthog_contract
from integrations.mcp_guard import ReadOnlyGuard, annotation_refusal
from integrations.posthog_mcp import PostHogMcpSource
from integrations.posthog_mcp_replay import build_posthog_like_server
from tests.fakes.http import free_port
from tests.fakes.mcp_server import TOKEN, FakeMcpServer, add_lying_tool
from triage.models import EvidenceStatus, ResearchTask
from triage.protocols import ConfigError


def tool(name: str, annotations: ToolAnnotations | None) -> Tool:
    return Tool(name=name, input_schema={"type": "object", "properties": {}}, annotations=annotations)


WRITE_TOOLS = frozenset(name for name, spec in posthog_contract().tools.items() if not spec.read_only)


def task(capability: str, **arguments: object) -> ResearchTask:
    return ResearchTask(
        key=f"posthog_mcp:{capability}:x", source="posthog_mcp", tool=capability, arguments=arguments
    )


@pytest.fixture
def fake() -> Iterator[FakeMcpServer]:
    with FakeMcpServer() as server:
        yield server


@pytest.fixture
async def source(fake: FakeMcpServer) -> AsyncIterator[PostHogMcpSource]:
    src = PostHogMcpSource(fake.url, TOKEN, project_id="84512", timeout_s=10, backoff_s=0.01)
    yield src
    await src.aclose()


# ---------------------------------------------------------------- the guard, as pure logic


def test_guard_rules() -> None:
    ro = ToolAnnotations(read_only_hint=True, destructive_hint=False)
    tools = {
        "read": tool("read", ro),
        "no-hints": tool("no-hints", None),
        "write": tool("write", ToolAnnotations(read_only_hint=False)),
        "ro-but-destructive": tool(
            "ro-but-destructive", ToolAnnotations(read_only_hint=True, destructive_hint=True)
        ),
        "liar": tool("liar", ro),  # claims read-only; only the allowlist can stop it
    }
    guard = ReadOnlyGuard.of(["read", "no-hints", "write", "ro-but-destructive", "ghost"])
    assert guard.check("read", tools) is None
    assert "allowlist" in (guard.check("liar", tools) or "")
    assert "not offered" in (guard.check("ghost", tools) or "")
    assert "readOnlyHint=None" in (guard.check("no-hints", tools) or "")
    assert "readOnlyHint=False" in (guard.check("write", tools) or "")
    assert "destructive" in (guard.check("ro-but-destructive", tools) or "")
    assert guard.permitted(tools) == ["read"]
    assert annotation_refusal(tools["read"]) is None


def test_default_allowlist_is_read_only_in_the_pinned_contract() -> None:
    src = PostHogMcpSource(server=build_posthog_like_server())
    allowed = capability_tools(src.capabilities)
    assert WRITE_TOOLS and not allowed & WRITE_TOOLS
    for name in allowed:
        assert annotation_refusal(posthog_contract().tools[name].as_mcp_tool()) is None, name
    assert src.client.guard.allowed == allowed


# ---------------------------------------------------------------- over streamable HTTP


async def test_discovery_and_connection_headers(fake: FakeMcpServer, source: PostHogMcpSource) -> None:
    assert await source.start()
    assert source.client.tools is not None
    # the server honours read-only and ?tools=: it lists only our read allowlist
    assert set(source.client.tools) == source.client.guard.allowed
    outcome = await source.client.call("docs-search", {"query": "feature flags"})
    assert outcome.status is EvidenceStatus.ok
    assert fake.requests
    for request in fake.requests:
        assert request.query.get("mode") == "tools"
        assert request.query.get("readonly") == "true"
        assert set(request.query["tools"].split(",")) == source.client.guard.allowed
        assert request.headers["authorization"] == f"Bearer {TOKEN}"
        assert request.headers["x-posthog-read-only"] == "true"
        assert request.headers["x-posthog-project-id"] == "84512"


async def test_write_tools_are_refused_and_never_reach_the_server(
    fake: FakeMcpServer, source: PostHogMcpSource
) -> None:
    fake.add_lying_tool()
    assert await source.start()
    for name in sorted(WRITE_TOOLS | {"feature-flags-sync"}):  # the last one lies that it is read-only
        outcome = await source.client.call(name, {"id": 4521})
        assert outcome.status is EvidenceStatus.refused, name
        assert "allowlist" in outcome.error
    assert fake.tool_calls() == []  # nothing was sent
    assert fake.server.write_calls == []  # nothing ran


def test_allowlisting_a_contract_write_tool_is_a_config_error(fake: FakeMcpServer) -> None:
    with pytest.raises(ConfigError, match="delete-feature-flag"):
        PostHogMcpSource(fake.url, TOKEN, extra_allowed_tools=["delete-feature-flag"])


async def test_allowlisted_but_destructive_or_unlisted_tools_are_refused() -> None:
    """Without the server's read-only switch (in-process), the annotations still stop write tools."""
    server = build_posthog_like_server()
    client = McpToolClient(
        "inproc",
        inprocess_client_factory(server.server, mode="legacy"),
        ReadOnlyGuard.of(["delete-feature-flag", "create-feature-flag", "ghost-tool"]),
    )
    try:
        destructive = await client.call("delete-feature-flag", {"id": 4521})
        write = await client.call("create-feature-flag", {"key": "x"})
        ghost = await client.call("ghost-tool")
    finally:
        await client.aclose()
    assert destructive.status is EvidenceStatus.refused
    assert "destructive" in destructive.error
    assert write.status is EvidenceStatus.refused
    assert "readOnlyHint=False" in write.error
    assert ghost.status is EvidenceStatus.refused
    assert "not offered" in ghost.error
    assert server.calls == []


async def test_session_is_reused_across_calls(fake: FakeMcpServer, source: PostHogMcpSource) -> None:
    outcomes = await asyncio.gather(
        *(source.client.call("docs-search", {"query": f"q{i}"}) for i in range(4))
    )
    assert all(o.status is EvidenceStatus.ok for o in outcomes)
    assert source.client.connects == 1
    handshakes = [r for r in fake.requests if r.rpc_method == "initialize"]
    assert len(handshakes) == 1


async def test_timeout_becomes_timeout_evidence_and_session_survives(
    fake: FakeMcpServer, source: PostHogMcpSource
) -> None:
    fake.add_slow_tool("slow-query", seconds=5)
    src = PostHogMcpSource(fake.url, TOKEN, extra_allowed_tools=["slow-query"], timeout_s=10)
    try:
        assert await src.start()
        src.client.timeout_s = 0.5
        outcome = await src.client.call("slow-query", {"query": "x"})
        assert outcome.status is EvidenceStatus.timeout
        assert "timed out" in outcome.error
        src.client.timeout_s = 10
        after = await src.client.call("docs-search", {"query": "flags"})
        assert after.status is EvidenceStatus.ok
        assert src.client.connects == 1
        assert len(fake.tool_calls("slow-query")) == 1  # timeouts are not retried
    finally:
        await src.aclose()


async def test_server_down_gives_error_evidence_not_an_exception() -> None:
    url = f"http://127.0.0.1:{free_port()}/mcp"  # nothing listens here
    src = PostHogMcpSource(url, TOKEN, timeout_s=5, max_retries=1, backoff_s=0.01)
    try:
        assert await src.start() is False
        assert "could not connect" in src.discovery_error
        [evidence] = await src.execute(task("docs_search", query="x"))
    finally:
        await src.aclose()
    assert evidence.status is EvidenceStatus.error
    assert "could not connect" in evidence.summary


async def test_http_500_is_retried_then_error(fake: FakeMcpServer, source: PostHogMcpSource) -> None:
    assert await source.start()
    fake.fail_status = 500
    outcome = await source.client.call("docs-search", {"query": "flags"})
    assert outcome.status is EvidenceStatus.error
    assert outcome.attempts == source.client.max_retries + 1
    assert len(fake.tool_calls("docs-search")) == source.client.max_retries + 1
    fake.fail_status = None
    again = await source.client.call("docs-search", {"query": "flags"})
    assert again.status is EvidenceStatus.ok


async def test_tool_error_is_error_evidence_and_not_retried(
    fake: FakeMcpServer, source: PostHogMcpSource
) -> None:
    outcome = await source.client.call("feature-flag-get-definition", {"id": 999})
    assert outcome.status is EvidenceStatus.error
    assert outcome.error.startswith("Error: [feature-flag-get-definition]: Request failed:")
    assert "Status Code: 404 (Not Found)" in outcome.error
    assert len(fake.tool_calls("feature-flag-get-definition")) == 1


async def test_reconnects_after_the_server_restarts(fake: FakeMcpServer, source: PostHogMcpSource) -> None:
    assert (await source.client.call("docs-search", {"query": "a"})).ok
    fake.stop()
    down = await source.client.call("docs-search", {"query": "b"})
    assert down.status in (EvidenceStatus.error, EvidenceStatus.timeout)
    fake.start()  # same port
    up = await source.client.call("docs-search", {"query": "c"})
    assert up.status is EvidenceStatus.ok, up.error


async def test_per_server_concurrency_limit(fake: FakeMcpServer) -> None:
    fake.add_slow_tool("slow-query", seconds=0.3)
    src = PostHogMcpSource(fake.url, TOKEN, extra_allowed_tools=["slow-query"], concurrency=2)
    try:
        outcomes = await asyncio.gather(*(src.client.call("slow-query", {"query": str(i)}) for i in range(5)))
    finally:
        await src.aclose()
    assert all(o.ok for o in outcomes)
    assert fake.max_in_flight == 2


async def test_tools_list_is_paginated() -> None:
    with FakeMcpServer(build_posthog_like_server(page_size=5)) as fake:
        src = PostHogMcpSource(fake.url, TOKEN)
        try:
            assert await src.start()
        finally:
            await src.aclose()
        assert src.client.tools is not None
        assert set(src.client.tools) == src.client.guard.allowed
        assert len([r for r in fake.requests if r.rpc_method == "tools/list"]) >= 4


async def test_modern_protocol_mode_over_http(fake: FakeMcpServer) -> None:
    src = PostHogMcpSource(fake.url, TOKEN, mode="auto")
    try:
        assert await src.start()
        assert (await src.client.call("docs-search", {"query": "replay"})).ok
    finally:
        await src.aclose()
    assert any(r.rpc_method == "server/discover" for r in fake.requests)
    assert all(r.headers.get("x-posthog-read-only") == "true" for r in fake.requests)


async def test_generic_client_guard_in_process() -> None:
    server = build_posthog_like_server()
    add_lying_tool(server)
    client = McpToolClient(
        "inproc",
        inprocess_client_factory(server.server),
        ReadOnlyGuard.of(["docs-search", "feature-flags-sync"]),
    )
    try:
        ok = await client.call("docs-search", {"query": "survey"})
        lying = await client.call("feature-flags-sync", {"active": False})  # allowlisted by name: runs
        refused = await client.call("project-settings-update", {"id": 84512})
    finally:
        await client.aclose()
    assert ok.ok
    assert refused.status is EvidenceStatus.refused
    # Documented limit: the allowlist is the trust decision; annotations can only narrow it.
    assert lying.ok
    assert [c.tool for c in server.write_calls] == ["feature-flags-sync"]


def test_a_source_survives_a_new_event_loop() -> None:
    """The CLI runs one loop per command; a source object reused on a new loop reconnects there."""
    src = PostHogMcpSource(server=build_posthog_like_server())

    async def one_call() -> EvidenceStatus:
        return (await src.client.call("docs-search", {"query": "flags"})).status

    assert asyncio.run(one_call()) is EvidenceStatus.ok  # loop ends without aclose()
    assert asyncio.run(one_call()) is EvidenceStatus.ok
    assert src.client.connects == 2
    asyncio.run(src.aclose())
