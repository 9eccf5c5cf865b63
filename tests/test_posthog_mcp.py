"""PostHogMcpSource and ExtraMcpSource: planning, capability resolution, evidence, over a real MCP server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from mcp.types import Tool

from bot.settings import ExtraMcpServer
from integrations.extra_mcp import ExtraMcpSource
from integrations.mcp_client import MAX_EXCERPT
from integrations.posthog_mcp import (
    CAPABILITIES,
    EU_URL,
    Candidate,
    PostHogMcpSource,
    fits_schema,
    hogql_string,
    posthog_headers,
    with_mode_tools,
)
from integrations.posthog_mcp_replay import build_posthog_like_server
from tests.fakes.http import free_port
from tests.fakes.mcp_server import TOKEN, FakeMcpServer
from triage.models import Evidence, EvidenceStatus, Identifiers, Intake
from triage.playbooks import McpCheck, Playbook, bundled_playbooks
from triage.protocols import ConfigError

FLAGS_INTAKE = Intake(
    product_area="feature_flags",
    playbook_id="feature_flags",
    identifiers=Identifiers(
        flag_keys=["new-checkout-flow"], distinct_ids=["user_8f3a2c"], emails=["jane@acme-analytics.io"]
    ),
    symptom_keywords=["feature flag", "identify", "false"],
)


@pytest.fixture
async def inproc() -> AsyncIterator[PostHogMcpSource]:
    src = PostHogMcpSource(server=build_posthog_like_server())
    assert await src.start()
    yield src
    await src.aclose()


async def run_all(src: PostHogMcpSource, intake: Intake, playbook: Playbook) -> dict[str, Evidence]:
    out: dict[str, Evidence] = {}
    for t in src.plan(intake, playbook):
        [evidence] = await src.execute(t)
        out[t.key] = evidence
    return out


# ---------------------------------------------------------------- capability map


async def test_every_capability_resolves_to_an_offered_guarded_tool(inproc: PostHogMcpSource) -> None:
    assert inproc.client.tools is not None
    for capability in CAPABILITIES.values():
        resolved = inproc.resolve(capability, "x")
        assert resolved is not None, capability.name
        tool, _ = resolved
        assert inproc.client.guard.check(tool, inproc.client.tools) is None, capability.name


async def test_renamed_tool_falls_back_to_the_next_candidate() -> None:
    server = build_posthog_like_server(exclude_tools=("feature-flag-get-definition", "execute-sql"))
    src = PostHogMcpSource(server=server)
    try:
        assert await src.start()
        evidence = await run_all(src, FLAGS_INTAKE, bundled_playbooks()["feature_flags"])
    finally:
        await src.aclose()
    flag = evidence["posthog_mcp:flag_definition:new-checkout-flow"]
    assert flag.tool == "feature-flag-get-all"
    assert flag.status is EvidenceStatus.ok
    assert flag.summary.startswith("Flag new-checkout-flow: active")
    assert evidence["posthog_mcp:sdk_versions:-"].tool == "query-run"


def test_schema_fit_only_enforces_identifier_keys() -> None:
    tool = Tool(
        name="persons-list", input_schema={"type": "object", "properties": {"search": {"type": "string"}}}
    )
    by_id = Candidate("persons-list", lambda v: {"distinct_id": v, "limit": 5}, ("distinct_id",))
    by_search = Candidate("persons-list", lambda v: {"search": v, "limit": 5}, ("search",))
    assert not fits_schema(by_id, by_id.build("u1"), tool)
    assert fits_schema(by_search, by_search.build("u1"), tool)


# ---------------------------------------------------------------- planning


def test_plan_from_the_feature_flags_playbook_before_discovery() -> None:
    src = PostHogMcpSource(server=build_posthog_like_server())
    intake = FLAGS_INTAKE.model_copy(update={"identifiers": Identifiers(flag_keys=["a", "b", "c", "d"])})
    tasks = src.plan(intake, bundled_playbooks()["feature_flags"])
    keys = [t.key for t in tasks]
    flag_tasks = [k for k in keys if ":flag_definition:" in k]
    assert flag_tasks == [
        "posthog_mcp:flag_definition:a",
        "posthog_mcp:flag_definition:b",
        "posthog_mcp:flag_definition:c",
    ]
    assert not any(
        ":person_by_distinct_id:" in k or ":person_by_email:" in k for k in keys
    )  # no ids → skipped
    assert "posthog_mcp:sdk_versions:-" in keys
    docs = [t for t in tasks if t.tool == "docs-search"]
    assert [t.arguments["query"] for t in docs] == [
        "feature flag identify false",
        "feature flags troubleshooting",
        "feature flag local evaluation",
    ]
    assert all(not t.first_party for t in docs)
    assert all(t.first_party for t in tasks if t.tool != "docs-search")
    assert all(t.source == "posthog_mcp" for t in tasks)


def test_hogql_literals_are_escaped() -> None:
    assert hogql_string("order_placed") == "'order_placed'"
    assert hogql_string("x' OR 1=1 --\\") == "'x\\' OR 1=1 --\\\\'"
    assert hogql_string("a\nb") == "'ab'"


def test_url_and_headers() -> None:
    assert with_mode_tools(EU_URL) == "https://mcp-eu.posthog.com/mcp?mode=tools"
    assert (
        with_mode_tools("https://h/mcp?features=flags&mode=cli") == "https://h/mcp?features=flags&mode=tools"
    )
    headers = posthog_headers("phx_1")
    assert headers["x-posthog-readonly"] == "true"
    assert "x-posthog-project-id" not in headers
    with pytest.raises(ConfigError, match="POSTHOG_API_KEY"):
        PostHogMcpSource(EU_URL, "")


# ---------------------------------------------------------------- the demo tickets, in-process


async def test_ticket_48291_flag_evidence(inproc: PostHogMcpSource) -> None:
    evidence = await run_all(inproc, FLAGS_INTAKE, bundled_playbooks()["feature_flags"])
    flag = evidence["posthog_mcp:flag_definition:new-checkout-flow"]
    assert flag.summary == "Flag new-checkout-flow: active, 1 release condition (plan = enterprise, 100%)"
    assert flag.url == "https://us.posthog.com/project/84512/feature_flags/4521"
    assert flag.data["conditions"] == ["plan = enterprise, 100%"]
    reasons = evidence["posthog_mcp:flag_evaluation_reasons:user_8f3a2c"]
    assert "new-checkout-flow → false (no_condition_match" in reasons.summary
    assert reasons.data["flags"]["new-checkout-flow"]["reason"] == "no_condition_match"
    person = evidence["posthog_mcp:person_by_distinct_id:user_8f3a2c"]
    assert "plan=enterprise (set 2026-11-18 09:03:13 UTC)" in person.summary
    assert evidence["posthog_mcp:person_by_email:jane@acme-analytics.io"].status is EvidenceStatus.ok
    sdks = evidence["posthog_mcp:sdk_versions:-"]
    assert "posthog-js (web) 1.160.0 (98%" in sdks.summary
    for ev in evidence.values():
        assert ev.status is EvidenceStatus.ok, (ev.task_key, ev.summary)
        assert len(ev.excerpt) <= MAX_EXCERPT
        assert ev.internal is ev.first_party  # customer data is internal; docs are not
        assert ev.query
    docs = [e for e in evidence.values() if e.tool == "docs-search"]
    assert docs and all(
        not e.internal and e.url and e.url.startswith("https://posthog.com/docs") for e in docs
    )
    assert inproc.client.connects == 1


async def test_ticket_48330_event_counts(inproc: PostHogMcpSource) -> None:
    intake = Intake(
        playbook_id="events_ingestion",
        identifiers=Identifiers(event_names=["order_placed", "subscription_renewed"]),
        symptom_keywords=["events", "not showing up", "python"],
    )
    evidence = await run_all(inproc, intake, bundled_playbooks()["events_ingestion"])
    counts = evidence["posthog_mcp:event_counts:order_placed"]
    assert "0 events since 2026-11-19 14:00 UTC while other events kept arriving" in counts.summary
    assert counts.data["libs"] == ["posthog-python"]
    definition = evidence["posthog_mcp:event_definitions:order_placed"]
    assert "last seen 2026-11-19 13:58:41 UTC" in definition.summary
    assert "posthog-python 3.6.0" in evidence["posthog_mcp:sdk_versions:-"].summary


async def test_ticket_48317_survey(inproc: PostHogMcpSource) -> None:
    survey_id = "0193f2aa-7c1e-4b2f-9d55-2f1e8c3a9b10"
    intake = Intake(playbook_id="surveys", identifiers=Identifiers(survey_ids=[survey_id]), language="es")
    evidence = await run_all(inproc, intake, bundled_playbooks()["surveys"])
    survey = evidence[f"posthog_mcp:survey_get:{survey_id}"]
    assert "shown after event checkout_completed" in survey.summary
    assert "device types Desktop" in survey.summary
    stats = evidence[f"posthog_mcp:survey_stats:{survey_id}"]
    assert "shown 1,204" in stats.summary and "mobile shown 0" in stats.summary


async def test_ticket_48302_recordings_and_docs(inproc: PostHogMcpSource) -> None:
    playbook = Playbook(
        id="session_replay",
        title="Session replay",
        mcp_checks=[McpCheck(capability="recordings_list"), McpCheck(capability="docs_search", limit=1)],
    )
    intake = Intake(symptom_keywords=["blank", "recordings", "csp"])
    evidence = await run_all(inproc, intake, playbook)
    recordings = evidence["posthog_mcp:recordings_list:-"]
    assert "2 with 0-byte snapshots / full snapshot missing" in recordings.summary
    docs = evidence["posthog_mcp:docs_search:blank recordings csp"]
    assert "Content Security Policy" in docs.summary


async def test_write_tools_never_run_in_process() -> None:
    server = build_posthog_like_server()
    src = PostHogMcpSource(server=server)
    try:
        await run_all(src, FLAGS_INTAKE, bundled_playbooks()["feature_flags"])
        for name in ("delete-feature-flag", "feature-flags-sync", "persons-bulk-delete"):
            task = src.plan(FLAGS_INTAKE, bundled_playbooks()["feature_flags"])[0]
            [ev] = await src.execute(task.model_copy(update={"tool": name, "key": f"posthog_mcp:x:{name}"}))
            assert ev.status is EvidenceStatus.refused
    finally:
        await src.aclose()
    assert server.calls  # the read tools did run
    assert server.write_calls == []


# ---------------------------------------------------------------- failures and HTTP


async def test_discovery_failure_still_plans_and_reports_errors() -> None:
    src = PostHogMcpSource(f"http://127.0.0.1:{free_port()}/mcp", TOKEN, max_retries=0)
    try:
        assert not await src.start()
        tasks = src.plan(FLAGS_INTAKE, bundled_playbooks()["feature_flags"])
        assert tasks
        evidence = [ev for t in tasks for ev in await src.execute(t)]
    finally:
        await src.aclose()
    assert all(ev.status is EvidenceStatus.error for ev in evidence)
    assert all("could not connect to the posthog_mcp MCP server" in ev.summary for ev in evidence)
    assert any(ev.first_party for ev in evidence)


async def test_http_flags_evidence_and_pins() -> None:
    with FakeMcpServer() as fake:
        src = PostHogMcpSource(fake.url, TOKEN, project_id="84512")
        try:
            assert await src.start()
            evidence = await run_all(src, FLAGS_INTAKE, bundled_playbooks()["feature_flags"])
        finally:
            await src.aclose()
        assert evidence["posthog_mcp:flag_definition:new-checkout-flow"].status is EvidenceStatus.ok
        assert {r.query.get("mode") for r in fake.requests} == {"tools"}
        assert {r.headers.get("x-posthog-project-id") for r in fake.requests} == {"84512"}
        sent = {r.tool for r in fake.tool_calls()}
        assert "feature-flag-get-definition" in sent and not sent & {
            "delete-feature-flag",
            "feature-flags-sync",
        }


async def test_extra_mcp_source_over_http() -> None:
    with FakeMcpServer() as fake:
        config = ExtraMcpServer(
            name="kb",
            url=fake.url,
            headers={"Authorization": f"Bearer {TOKEN}"},
            allowed_tools=["docs-search"],
            calls={"docs-search": {"query": "{query}"}, "persons-bulk-delete": {"distinct_ids": ["{query}"]}},
        )
        src = ExtraMcpSource(config, timeout_s=10)
        try:
            tasks = src.plan(
                Intake(symptom_keywords=["session", "replay", "csp"]), bundled_playbooks()["other"]
            )
            assert [t.key for t in tasks] == ["kb:docs-search", "kb:persons-bulk-delete"]
            assert tasks[0].arguments == {"query": "session replay csp"}
            results = {t.tool: (await src.execute(t))[0] for t in tasks}
        finally:
            await src.aclose()
        assert results["docs-search"].status is EvidenceStatus.ok
        assert results["docs-search"].source == "kb"
        assert results["docs-search"].internal
        assert results["persons-bulk-delete"].status is EvidenceStatus.refused
        assert fake.tool_calls("persons-bulk-delete") == []
        assert fake.server.write_calls == []
        assert fake.requests[0].headers["authorization"] == f"Bearer {TOKEN}"


def test_extra_mcp_source_config_errors() -> None:
    with pytest.raises(ConfigError):
        ExtraMcpSource("no-url")
    with pytest.raises(ConfigError):
        ExtraMcpSource("bad:name", "http://127.0.0.1:1/mcp")
    assert ExtraMcpSource("ok", "http://127.0.0.1:1/mcp").plan(Intake(), Playbook(id="x", title="x")) == []
