"""PostHogMcpSource against the fake built from the pinned real catalog: capabilities, demo tickets, failures."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml

from bot.settings import ExtraMcpServer
from integrations.extra_mcp import ExtraMcpSource
from integrations.mcp_capabilities import CAPABILITIES_FILE, hogql_string
from integrations.mcp_contract import posthog_contract
from integrations.posthog_mcp import (
    EU_URL,
    PostHogMcpSource,
    parse_org_projects,
    posthog_headers,
    server_url,
    validate_project_id,
)
from integrations.posthog_mcp_replay import build_posthog_like_server
from tests.fakes.http import free_port
from tests.fakes.mcp_server import TOKEN, FakeMcpServer
from triage.models import Evidence, EvidenceStatus, Identifiers, Intake, Sdk
from triage.playbooks import BUNDLED_DIR, McpCheck, Playbook, bundled_playbooks
from triage.protocols import ConfigError

FLAG = "new-checkout-flow"
JANE_ID = "user_8f3a2c"
JANE_EMAIL = "jane@acme-analytics.io"
SURVEY = "0193f2aa-7c1e-4b2f-9d55-2f1e8c3a9b10"
SESSION = "0193a4c1-2d3e-7f40-8a1b-9c0d1e2f3a41"
FINGERPRINT = "a1b2c3d4e5f60718293a4b5c6d7e8f90"

FLAGS_INTAKE = Intake(
    product_area="feature_flags",
    playbook_id="feature_flags",
    identifiers=Identifiers(flag_keys=[FLAG], distinct_ids=[JANE_ID, "user_colleague"], emails=[JANE_EMAIL]),
    symptom_keywords=["feature flag", "identify", "false"],
    requester_email=JANE_EMAIL,
    requester_ids=[JANE_ID],
)


@pytest.fixture
async def inproc() -> AsyncIterator[PostHogMcpSource]:
    src = PostHogMcpSource(server=build_posthog_like_server(), project_id="84512")
    assert await src.start()
    yield src
    await src.aclose()


async def run_all(src: PostHogMcpSource, intake: Intake, playbook: Playbook) -> dict[str, Evidence]:
    out: dict[str, Evidence] = {}
    for t in src.plan(intake, playbook):
        [evidence] = await src.execute(t)
        out[t.key] = evidence
    return out


def only(*checks: McpCheck) -> Playbook:
    return Playbook(id="t", title="t", mcp_checks=list(checks))


# ---------------------------------------------------------------- the capability map is data on the contract


def test_every_capability_calls_pinned_read_tools_and_every_playbook_check_is_known() -> None:
    src = PostHogMcpSource(server=build_posthog_like_server())
    contract = posthog_contract()
    for spec in src.capabilities.values():
        for step in spec.candidates:
            for tool in step.tools():
                assert tool in contract.tools, (spec.name, tool)
                assert contract.tools[tool].read_only, (spec.name, tool)
    for book in bundled_playbooks().values():
        for check in book.mcp_checks:
            assert check.capability in src.capabilities, (book.id, check.capability)


async def test_every_capability_resolves_to_an_offered_guarded_tool(inproc: PostHogMcpSource) -> None:
    assert inproc.client.tools is not None
    for spec in inproc.capabilities.values():
        step = inproc._resolve(spec)
        assert step is not None, spec.name
        for tool in step.tools():
            assert inproc.client.guard.check(tool, inproc.client.tools) is None, spec.name


async def test_a_renamed_tool_falls_back_to_the_next_candidate() -> None:
    server = build_posthog_like_server(exclude_tools=("feature-flag-get-definition-by-key",))
    src = PostHogMcpSource(server=server)
    try:
        evidence = await run_all(
            src, FLAGS_INTAKE, only(McpCheck(capability="flag_definition", identifier="flag_keys"))
        )
    finally:
        await src.aclose()
    flag = evidence[f"posthog_mcp:flag_definition:{FLAG}"]
    assert [c.tool for c in server.calls] == ["feature-flag-get-all", "feature-flag-get-definition"]
    assert server.calls[1].arguments == {"id": 4521}  # by id, after finding the key in the trimmed list
    assert flag.tool == "feature-flag-get-definition"
    assert flag.summary == f"Flag {FLAG}: active, 1 release condition (plan = enterprise, 100%)"


async def test_a_tool_missing_from_tools_list_is_a_visible_row_naming_the_scope() -> None:
    server = build_posthog_like_server()
    server.scopes = {s for t in posthog_contract().tools.values() for s in t.required_scopes} - {
        "error_tracking:read"
    }
    src = PostHogMcpSource(server=server)
    intake = Intake(identifiers=Identifiers(error_messages=["TypeError"]))
    try:
        evidence = await run_all(
            src, intake, only(McpCheck(capability="error_issues", identifier="error_messages"))
        )
    finally:
        await src.aclose()
    [row] = evidence.values()
    assert row.status is EvidenceStatus.error
    assert row.summary.startswith("not available on this server: error_issues")
    assert "scope error_tracking:read" in row.summary
    assert server.calls == []


async def test_an_unknown_capability_is_a_visible_row(inproc: PostHogMcpSource) -> None:
    [row] = (await run_all(inproc, Intake(), only(McpCheck(capability="sdk_doctor")))).values()
    assert row.status is EvidenceStatus.error
    assert "unknown capability 'sdk_doctor'" in row.summary


def test_a_company_capability_map_from_its_playbooks_dir(tmp_path: Path) -> None:
    (tmp_path / CAPABILITIES_FILE).write_text(
        yaml.safe_dump(
            {
                "kb": {
                    "title": "KB",
                    "summary": "docs",
                    "candidates": [{"tool": "docs-search", "arguments": {"query": "{value}"}}],
                }
            }
        )
    )
    src = PostHogMcpSource(server=build_posthog_like_server(), capabilities_dir=tmp_path)
    assert set(src.capabilities) == {"kb"}
    assert src.client.guard.allowed == {"docs-search"}
    (tmp_path / CAPABILITIES_FILE).write_text(
        yaml.safe_dump({"kb": {"title": "KB", "summary": "nope", "candidates": []}})
    )
    with pytest.raises(ConfigError, match="unknown summariser kind"):
        PostHogMcpSource(server=build_posthog_like_server(), capabilities_dir=tmp_path)


async def test_arguments_the_pinned_schema_rejects_are_never_sent(tmp_path: Path) -> None:
    (tmp_path / CAPABILITIES_FILE).write_text(
        yaml.safe_dump(
            {
                "flag_by_id": {
                    "title": "Flag",
                    "summary": "flag",
                    "candidates": [
                        {
                            "tool": "feature-flag-get-definition",
                            "arguments": {"id": "{value}", "flagKey": "{value}"},
                        }
                    ],
                }
            }
        )
    )
    server = build_posthog_like_server()
    src = PostHogMcpSource(server=server, capabilities_dir=tmp_path)
    intake = Intake(identifiers=Identifiers(flag_keys=["new-checkout"]))
    try:
        [row] = (
            await run_all(src, intake, only(McpCheck(capability="flag_by_id", identifier="flag_keys")))
        ).values()
    finally:
        await src.aclose()
    assert row.status is EvidenceStatus.error
    assert "arguments rejected by the pinned schema of feature-flag-get-definition" in row.summary
    assert "flagKey" in row.summary and "id" in row.summary
    assert server.calls == []


# ---------------------------------------------------------------- planning and the requester scope


def test_plan_before_discovery_looks_up_only_the_requester() -> None:
    src = PostHogMcpSource(server=build_posthog_like_server())
    intake = FLAGS_INTAKE.model_copy(
        update={"identifiers": Identifiers(flag_keys=["a", "b", "c", "d"], distinct_ids=["x"])}
    )
    tasks = src.plan(intake, bundled_playbooks()["feature_flags"])
    keys = [t.key for t in tasks]
    assert [k for k in keys if ":flag_definition:" in k] == [
        f"posthog_mcp:flag_definition:{k}" for k in "abc"
    ]
    assert "posthog_mcp:person_by_email:requester" in keys
    assert f"posthog_mcp:person_by_distinct_id:{JANE_ID}" in keys
    assert not any(k.endswith(":x") or "user_colleague" in k for k in keys)
    docs = [t for t in tasks if t.tool == "docs-search"]
    assert [t.arguments["query"] for t in docs] == [
        "feature flag identify false",
        "feature flags troubleshooting",
        "feature flag local evaluation",
    ]
    assert all(not t.first_party for t in docs)
    assert all(t.first_party for t in tasks if t.tool != "docs-search")


async def test_people_other_than_the_requester_are_never_looked_up() -> None:
    fake = build_posthog_like_server()
    src = PostHogMcpSource(server=fake)
    intake = FLAGS_INTAKE.model_copy(update={"requester_ids": [], "requester_email": ""})
    try:
        await run_all(src, intake, bundled_playbooks()["feature_flags"])
    finally:
        await src.aclose()
    tools = {c.tool for c in fake.calls}
    assert not tools & {"persons-list", "persons-retrieve", "feature-flags-evaluation-reasons-retrieve"}
    assert all("user_colleague" not in str(c.arguments) for c in fake.calls)


def test_hogql_literals_are_escaped() -> None:
    assert hogql_string("order_placed") == "'order_placed'"
    assert hogql_string("x' OR 1=1 --\\") == "'x\\' OR 1=1 --\\\\'"
    assert hogql_string("a\nb") == "'ab'"


def test_url_headers_and_project_pin() -> None:
    url = server_url(EU_URL, ["docs-search", "execute-sql"])
    assert url == "https://mcp-eu.posthog.com/mcp?mode=tools&readonly=true&tools=docs-search,execute-sql"
    assert server_url("https://h/mcp?features=flags&mode=cli&readonly=false", ["a"]) == (
        "https://h/mcp?features=flags&mode=tools&readonly=true&tools=a"
    )
    headers = posthog_headers("phx_1", "84512")
    assert headers["x-posthog-read-only"] == "true"
    assert headers["x-posthog-project-id"] == "84512"
    assert "x-posthog-project-id" not in posthog_headers("phx_1")
    assert validate_project_id(" 84512 ") == "84512"
    for bad in ("my-project", "84512x", "${POSTHOG_PROJECT_ID}"):
        with pytest.raises(ConfigError, match="POSTHOG_PROJECT_ID must be the numeric project id"):
            PostHogMcpSource(EU_URL, "phx_1", project_id=bad)
    with pytest.raises(ConfigError, match="POSTHOG_API_KEY"):
        PostHogMcpSource(EU_URL, "")


# ---------------------------------------------------------------- every playbook capability, real-shaped


async def test_flags_release_conditions_evaluation_reasons_and_person(inproc: PostHogMcpSource) -> None:
    evidence = await run_all(inproc, FLAGS_INTAKE, bundled_playbooks()["feature_flags"])
    flag = evidence[f"posthog_mcp:flag_definition:{FLAG}"]
    assert flag.summary == f"Flag {FLAG}: active, 1 release condition (plan = enterprise, 100%)"
    assert flag.url == "https://us.posthog.com/project/84512/feature_flags/4521"
    assert flag.subject == f"flag_key:{FLAG}"
    activity = evidence[f"posthog_mcp:flag_activity:{FLAG}"]
    assert "2026-10-28 16:05:51 UTC: updated (filters)" in activity.summary
    reasons = evidence[f"posthog_mcp:flag_evaluation_reasons:{JANE_ID}"]
    assert f"{FLAG} → false (no_condition_match" in reasons.summary
    assert "beta-dashboard" not in reasons.summary  # scoped to the ticket's flag keys
    for key in (f"posthog_mcp:person_by_distinct_id:{JANE_ID}", "posthog_mcp:person_by_email:requester"):
        person = evidence[key]
        assert (
            person.tool == "persons-retrieve"
        )  # properties come from persons-retrieve, not the trimmed list
        assert "properties: company, email, plan" in person.summary
        assert "enterprise" not in person.summary and "Acme" not in person.summary  # keys, not values
        assert person.subject == "person:requester" and person.internal
    sdks = evidence["posthog_mcp:sdk_versions:-"]
    assert "posthog-js (web) 1.160.0 (98%" in sdks.summary
    for ev in evidence.values():
        assert ev.status is EvidenceStatus.ok, (ev.task_key, ev.summary)
        assert ev.internal is ev.first_party
        assert ev.first_party == bool(ev.subject) or ev.task_key.endswith("sdk_versions:-")
    docs = [e for e in evidence.values() if e.tool == "docs-search"]
    assert docs and all(e.url and e.url.startswith("https://posthog.com/docs/") for e in docs)
    assert all(JANE_EMAIL not in ev.model_dump_json() for ev in evidence.values())  # the email stays out
    tasks = inproc.plan(FLAGS_INTAKE, bundled_playbooks()["feature_flags"])
    assert all(JANE_EMAIL not in t.model_dump_json() for t in tasks)


async def test_events_and_sdk_versions(inproc: PostHogMcpSource) -> None:
    intake = Intake(
        identifiers=Identifiers(
            event_names=["order_placed"], sdks=[Sdk(name="posthog-python", version="3.6.0")]
        ),
        symptom_keywords=["events", "not showing up", "python"],
    )
    evidence = await run_all(inproc, intake, bundled_playbooks()["events_ingestion"])
    counts = evidence["posthog_mcp:event_counts:order_placed"]
    assert "0 events since 2026-11-19 14:00 UTC while other events kept arriving" in counts.summary
    assert counts.data["libs"] == ["posthog-python"] and counts.subject == "event:order_placed"
    sdks = evidence["posthog_mcp:sdk_versions:-"]
    assert "posthog-python 3.6.0" in sdks.summary and sdks.subject == "sdk:posthog-python@3.6.0"
    health = evidence["posthog_mcp:sdk_health:-"]
    assert "sdk_outdated" in health.summary and "posthog-python 3.6.0 7.2.0" in health.summary


async def test_error_issue_by_message_and_fingerprint(inproc: PostHogMcpSource) -> None:
    intake = Intake(identifiers=Identifiers(error_messages=["reading 'price'"], fingerprints=[FINGERPRINT]))
    evidence = await run_all(inproc, intake, bundled_playbooks()["error_tracking"])
    by_message = evidence["posthog_mcp:error_issues:reading 'price'"]
    assert by_message.summary.startswith("1 issue(s): TypeError (active, 1,842 occurrences, 311 users")
    issue = evidence[f"posthog_mcp:error_by_fingerprint:{FINGERPRINT}"]
    assert issue.tool == "query-error-tracking-issue"
    assert issue.subject == "error_issue:0193c0de-5e5e-7a1a-9b9b-111122223333"
    assert "latest release web@2026.11.14" in issue.summary
    events = evidence[f"posthog_mcp:error_events:{FINGERPRINT}"]
    assert "TypeError via web 1.160.0" in events.summary and events.data["session_ids"] == [SESSION]
    settings = evidence["posthog_mcp:project_settings:-"]
    assert "exception autocapture off" in settings.summary


async def test_survey_by_id_and_stats(inproc: PostHogMcpSource) -> None:
    intake = Intake(identifiers=Identifiers(survey_ids=[SURVEY]), language="es")
    evidence = await run_all(inproc, intake, bundled_playbooks()["surveys"])
    survey = evidence[f"posthog_mcp:survey_get:{SURVEY}"]
    assert "running since 2026-11-04 10:00 UTC; shown after event checkout_completed" in survey.summary
    assert "device types Desktop (exact)" in survey.summary and survey.subject == f"survey:{SURVEY}"
    stats = evidence[f"posthog_mcp:survey_stats:{SURVEY}"]
    assert "shown 1,204, dismissed 702, sent 233 (response rate 19.35%)" in stats.summary
    assert "surveys on" in evidence["posthog_mcp:project_settings:-"].summary


async def test_recordings_for_the_requester_and_a_linked_session(inproc: PostHogMcpSource) -> None:
    intake = Intake(
        identifiers=Identifiers(urls=[f"https://us.posthog.com/project/84512/replay/{SESSION}?t=12"]),
        requester_email="ops@shopfront.example",
        requester_ids=["0193a4c0-aa11-7b22-8c33-d44e55f66a77"],
        symptom_keywords=["blank", "recordings", "csp"],
    )
    evidence = await run_all(inproc, intake, bundled_playbooks()["session_replay"])
    signals = evidence["posthog_mcp:replay_signals:0193a4c0-aa11-7b22-8c33-d44e55f66a77"]
    assert "$recording_status active ×388, buffering ×24" in signals.summary
    assert "recorder script not loaded on 24 events (ad blocker or CSP)" in signals.summary
    mine = evidence["posthog_mcp:recordings_for_email:requester"]
    assert mine.summary.startswith("2 recording(s) in the last 7 days; console errors in 2")
    assert mine.subject == "person:requester"
    assert evidence["posthog_mcp:recordings_recent:-"].summary.startswith("3 recording(s)")
    session = evidence[f"posthog_mcp:recording_get:{SESSION}"]
    assert session.subject == f"session:{SESSION}" and "312 s" in session.summary
    settings = evidence["posthog_mcp:project_settings:-"]
    assert "replay on" in settings.summary and "1 authorized domain" in settings.summary
    docs = evidence["posthog_mcp:docs_search:blank recordings csp"]
    assert [h["url"] for h in docs.data["results"]] == [
        "https://posthog.com/docs/session-replay/troubleshooting",
        "https://posthog.com/docs/advanced/content-security-policy",  # utm_ and #fragment cleaned
        "https://posthog.com/docs/advanced/proxy",
    ]


async def test_billing_organization(inproc: PostHogMcpSource) -> None:
    evidence = await run_all(
        inproc, Intake(symptom_keywords=["invoice"]), bundled_playbooks()["billing_account"]
    )
    org = evidence["posthog_mcp:organization:-"]
    assert org.summary.startswith("Organization Acme Analytics: 1 project(s), 14 members")


async def test_not_found_is_empty_only_when_the_server_says_so(inproc: PostHogMcpSource) -> None:
    intake = Intake(identifiers=Identifiers(flag_keys=["no-such-flag"]), requester_ids=["nobody"])
    evidence = await run_all(
        inproc,
        intake,
        only(
            McpCheck(capability="flag_definition", identifier="flag_keys"),
            McpCheck(capability="person_by_distinct_id", identifier="requester_ids"),
        ),
    )
    assert evidence["posthog_mcp:flag_definition:no-such-flag"].status is EvidenceStatus.empty
    assert "was not found" in evidence["posthog_mcp:flag_definition:no-such-flag"].summary
    person = evidence["posthog_mcp:person_by_distinct_id:nobody"]
    assert person.status is EvidenceStatus.empty and "nothing matches" in person.summary


# ---------------------------------------------------------------- failure paths


async def test_garbage_is_error_never_empty_or_not_found() -> None:
    server = build_posthog_like_server()
    src = PostHogMcpSource(server=server)
    server.fail_next["feature-flag-get-definition-by-key"].append("garbage")
    server.fail_next["execute-sql"].append("garbage:Query failed: timeout while reading")
    try:
        evidence = await run_all(
            src,
            FLAGS_INTAKE,
            only(
                McpCheck(capability="flag_definition", identifier="flag_keys"),
                McpCheck(capability="sdk_versions"),
            ),
        )
    finally:
        await src.aclose()
    for row in evidence.values():
        assert row.status is EvidenceStatus.error, row.summary
        assert row.summary.startswith("unparseable result from ")


async def test_rate_limit_waits_once_for_retry_after_then_reports_rate_limited() -> None:
    server = build_posthog_like_server()
    src = PostHogMcpSource(server=server, max_rate_limit_wait_s=1)
    check = only(McpCheck(capability="flag_definition", identifier="flag_keys"))
    try:
        server.fail_next["feature-flag-get-definition-by-key"].append("rate_limit:0")
        first = await run_all(src, FLAGS_INTAKE, check)
        server.fail_next["feature-flag-get-definition-by-key"].extend(["rate_limit:0", "rate_limit:0"])
        second = await run_all(src, FLAGS_INTAKE, check)
        server.fail_next["feature-flag-get-definition-by-key"].append("rate_limit:30")  # beyond the budget
        third = await run_all(src, FLAGS_INTAKE, check)
    finally:
        await src.aclose()
    assert next(iter(first.values())).status is EvidenceStatus.ok  # one wait, then it worked
    limited = next(iter(second.values()))
    assert limited.status is EvidenceStatus.rate_limited and "429" in limited.summary
    late = next(iter(third.values()))
    assert late.status is EvidenceStatus.rate_limited and "retry after 30 s" in late.summary
    assert len([c for c in server.calls if c.tool == "feature-flag-get-definition-by-key"]) == 2 + 2 + 1


async def test_missing_scope_error_names_the_scope() -> None:
    server = build_posthog_like_server()
    server.fail_next["persons-list"].append("scope:person:read")
    src = PostHogMcpSource(server=server)
    try:
        evidence = await run_all(
            src, FLAGS_INTAKE, only(McpCheck(capability="person_by_email", identifier="requester_email"))
        )
    finally:
        await src.aclose()
    [row] = evidence.values()
    assert row.status is EvidenceStatus.error
    assert "Missing PostHog API scope: 'person:read'" in row.summary


async def test_a_wrong_key_is_a_401_naming_the_setting() -> None:
    with FakeMcpServer() as fake:
        src = PostHogMcpSource(fake.url, "phx_wrong", max_retries=0)
        try:
            assert not await src.start()
            with pytest.raises(RuntimeError, match="rejected POSTHOG_API_KEY \\(HTTP 401"):
                await src.check()
            [row] = (await run_all(src, FLAGS_INTAKE, only(McpCheck(capability="sdk_versions")))).values()
        finally:
            await src.aclose()
    assert row.status is EvidenceStatus.error and "POSTHOG_API_KEY" in row.summary


async def test_server_down_still_plans_and_reports_errors() -> None:
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


async def test_annotations_are_rechecked_after_tools_list_changed() -> None:
    with FakeMcpServer() as fake:
        src = PostHogMcpSource(fake.url, TOKEN, project_id="84512")
        try:
            assert (await src.client.call("docs-search", {"query": "flags"})).ok
            fake.server.set_annotations("docs-search", destructive_hint=True)
            assert (await src.client.call("docs-search", {"query": "flags"})).ok  # carries list_changed
            for _ in range(500):  # the notification is handled on its own task: wait until it has been
                if src.client.tools_stale:
                    break
                await asyncio.sleep(0.01)
            refused = await src.client.call("docs-search", {"query": "flags"})
        finally:
            await src.aclose()
    assert src.client.rechecks == 1
    assert refused.status is EvidenceStatus.refused and "destructive" in refused.error
    assert len(fake.tool_calls("docs-search")) == 2


async def test_http_end_to_end_with_read_only_pins() -> None:
    with FakeMcpServer() as fake:
        src = PostHogMcpSource(fake.url, TOKEN, project_id="84512")
        try:
            evidence = await run_all(src, FLAGS_INTAKE, bundled_playbooks()["feature_flags"])
        finally:
            await src.aclose()
        assert all(ev.status is EvidenceStatus.ok for ev in evidence.values())
        assert {r.headers.get("x-posthog-read-only") for r in fake.requests} == {"true"}
        assert {r.query.get("readonly") for r in fake.requests} == {"true"}
        assert fake.server.write_calls == []


# ---------------------------------------------------------------- other MCP servers


async def test_extra_mcp_source_over_http() -> None:
    with FakeMcpServer() as fake:
        config = ExtraMcpServer(
            name="kb",
            url=fake.url,
            headers={"Authorization": f"Bearer {TOKEN}"},
            allowed_tools=["docs-search"],
            calls={"docs-search": {"query": "{query}"}, "project-settings-update": {"id": 1}},
        )
        src = ExtraMcpSource(config, timeout_s=10)
        try:
            tasks = src.plan(
                Intake(symptom_keywords=["session", "replay", "csp"]), bundled_playbooks()["other"]
            )
            assert [t.key for t in tasks] == ["kb:docs-search", "kb:project-settings-update"]
            assert tasks[0].arguments == {"query": "session replay csp"}
            results = {t.tool: (await src.execute(t))[0] for t in tasks}
        finally:
            await src.aclose()
        assert results["docs-search"].status is EvidenceStatus.ok
        assert results["docs-search"].source == "kb"
        assert results["docs-search"].internal
        assert results["project-settings-update"].status is EvidenceStatus.refused
        assert fake.tool_calls("project-settings-update") == []
        assert fake.server.write_calls == []
        assert fake.requests[0].headers["authorization"] == f"Bearer {TOKEN}"


def test_extra_mcp_source_config_errors() -> None:
    with pytest.raises(ConfigError):
        ExtraMcpSource("no-url")
    with pytest.raises(ConfigError):
        ExtraMcpSource("bad:name", "http://127.0.0.1:1/mcp")
    assert ExtraMcpSource("ok", "http://127.0.0.1:1/mcp").plan(Intake(), Playbook(id="x", title="x")) == []


def test_bundled_capability_map_is_beside_the_playbooks() -> None:
    assert (BUNDLED_DIR / CAPABILITIES_FILE).is_file()


# ---------------------------------------------------------------- configuration: project pin, per-customer projects


def test_settings_refuse_a_non_numeric_project_and_bad_org_mappings(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from bot.settings import Settings

    monkeypatch.setenv("POSTHOG_PROJECT_ID", "YOUR_POSTHOG_PROJECT_ID")
    with pytest.raises(ValidationError, match="POSTHOG_PROJECT_ID must be the numeric project id"):
        Settings(_env_file=None)
    monkeypatch.setenv("POSTHOG_PROJECT_ID", "84512")
    monkeypatch.setenv("POSTHOG_ORG_PROJECTS", '{"Acme": "90210@mars"}')
    with pytest.raises(ValidationError, match="region must be us or eu"):
        Settings(_env_file=None)
    monkeypatch.setenv("POSTHOG_ORG_PROJECTS", '{"Acme": "90210@eu", "361204": "777"}')
    assert Settings(_env_file=None).posthog_org_projects == {"Acme": "90210@eu", "361204": "777"}


async def test_a_mapped_zendesk_organization_reads_its_own_project() -> None:
    with FakeMcpServer() as fake:
        src = PostHogMcpSource(fake.url, TOKEN, project_id="84512", org_projects={"Acme Analytics": "90210"})
        check = only(McpCheck(capability="sdk_versions"))
        try:
            await run_all(src, Intake(organization_refs=["42", "Acme Analytics"]), check)
            await run_all(src, Intake(organization_refs=["7", "Other Co"]), check)
        finally:
            await src.aclose()
    pins = [r.headers.get("x-posthog-project-id") for r in fake.requests if r.tool == "execute-sql"]
    assert pins == ["90210", "84512"]
    assert parse_org_projects({"Acme": "1@eu"}, EU_URL) == {"acme": ("1", EU_URL)}
    with pytest.raises(ConfigError, match="numeric project id"):
        parse_org_projects({"Acme": "project-1"}, EU_URL)


async def test_check_names_tools_the_key_does_not_get() -> None:
    server = build_posthog_like_server()
    server.scopes = {s for t in posthog_contract().tools.values() for s in t.required_scopes} - {
        "survey:read"
    }
    src = PostHogMcpSource(server=server)
    try:
        line = await src.check()
    finally:
        await src.aclose()
    assert "not offered: survey-get, survey-stats, surveys-get-all" in line
    assert line.endswith("(API key may lack scope survey:read)")
