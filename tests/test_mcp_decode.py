"""Decoding never lies: every capability reads the real shapes, and garbage is `error`, never `empty`."""

from __future__ import annotations

import logging

import pytest

from integrations.mcp_contract import argument_errors, posthog_contract
from integrations.mcp_decode import Unparseable, decode_document, decode_result, decode_table
from integrations.posthog_mcp import PostHogMcpSource
from integrations.posthog_mcp_replay import (
    build_posthog_like_server,
    format_response,
    load_recorded,
    pick_fields,
    sql_table,
)
from triage.models import EvidenceStatus, Identifiers, Intake, Sdk
from triage.playbooks import McpCheck, Playbook

# one identifier per capability, from the recorded demo project
VALUES: dict[str, tuple[str | None, str | None]] = {  # capability → (identifier source, value)
    "flag_definition": ("flag_keys", "new-checkout-flow"),
    "flag_activity": ("flag_keys", "new-checkout-flow"),
    "flag_evaluation_reasons": ("requester_ids", "user_8f3a2c"),
    "person_by_email": ("requester_email", "jane@acme-analytics.io"),
    "person_by_distinct_id": ("requester_ids", "user_8f3a2c"),
    "sdk_versions": (None, None),
    "sdk_versions_for_person": ("requester_ids", "user_8f3a2c"),
    "event_counts": ("event_names", "order_placed"),
    "replay_signals": ("requester_ids", "0193a4c0-aa11-7b22-8c33-d44e55f66a77"),
    "error_issues": ("error_messages", "TypeError"),
    "error_by_fingerprint": ("fingerprints", "a1b2c3d4e5f60718293a4b5c6d7e8f90"),
    "error_events": ("fingerprints", "a1b2c3d4e5f60718293a4b5c6d7e8f90"),
    "survey_get": ("survey_ids", "0193f2aa-7c1e-4b2f-9d55-2f1e8c3a9b10"),
    "survey_stats": ("survey_ids", "0193f2aa-7c1e-4b2f-9d55-2f1e8c3a9b10"),
    "survey_search": ("symptom", "checkout"),
    "recordings_for_person": ("requester_ids", "user_8f3a2c"),
    "recordings_for_email": ("requester_email", "ops@shopfront.example"),
    "recordings_recent": (None, None),
    "recording_get": (
        "urls",
        "https://us.posthog.com/project/84512/replay/0193a4c1-2d3e-7f40-8a1b-9c0d1e2f3a41",
    ),
    "sdk_health": (None, None),
    "project_settings": (None, None),
    "organization": (None, None),
    "docs_search": ("symptom", "session replay csp"),
}


def intake_for(source: str | None, value: str | None) -> Intake:
    ids = Identifiers(flag_keys=["new-checkout-flow"], sdks=[Sdk(name="posthog-js", version="1.160.0")])
    intake = Intake(identifiers=ids)
    if source in ("requester_ids", "requester_email"):
        return intake.model_copy(update={source: [value] if source == "requester_ids" else value})
    if source == "symptom":
        return intake.model_copy(update={"symptom_keywords": str(value).split()})
    if source is not None:
        return intake.model_copy(update={"identifiers": ids.model_copy(update={source: [value]})})
    return intake


def check_for(capability: str) -> Playbook:
    source, _ = VALUES[capability]
    return Playbook(
        id="t",
        title="t",
        mcp_checks=[McpCheck(capability=capability, identifier=source, limit=1)],
    )


def test_the_table_covers_every_capability() -> None:
    src = PostHogMcpSource(server=build_posthog_like_server())
    assert set(VALUES) == set(src.capabilities)


@pytest.mark.parametrize("capability", sorted(VALUES))
async def test_every_capability_reads_the_real_shapes(capability: str) -> None:
    server = build_posthog_like_server()
    src = PostHogMcpSource(server=server, project_id="84512")
    source, value = VALUES[capability]
    try:
        [task] = src.plan(intake_for(source, value), check_for(capability))
        [row] = await src.execute(task)
    finally:
        await src.aclose()
    assert row.status is EvidenceStatus.ok, (capability, row.summary)
    assert row.summary and "unparseable" not in row.summary
    assert server.calls, capability


@pytest.mark.parametrize("capability", sorted(VALUES))
@pytest.mark.parametrize("garbage", ["<html><body>502 Bad Gateway</body></html>", "hello world"])
async def test_every_capability_turns_garbage_into_an_error_row(capability: str, garbage: str) -> None:
    server = build_posthog_like_server()
    src = PostHogMcpSource(server=server, project_id="84512")
    source, value = VALUES[capability]
    first_tool = src.capabilities[capability].candidates[0].tool
    server.fail_next[first_tool].append(f"garbage:{garbage}")
    try:
        [task] = src.plan(intake_for(source, value), check_for(capability))
        [row] = await src.execute(task)
    finally:
        await src.aclose()
    assert row.status is EvidenceStatus.error, (capability, garbage, row.summary)
    assert row.summary.startswith(f"unparseable result from {first_tool}"), row.summary


# ---------------------------------------------------------------- the decoders themselves


def test_toon_round_trip_with_query_json_spliced_in_like_the_server() -> None:
    data = {
        "results": [
            {"id": 1, "name": "Weekly, signups", "query": {"kind": "HogQLQuery", "query": "select 1"}}
        ],
        "count": 1,
    }
    text = format_response(data)
    assert '"kind": "HogQLQuery"' in text  # pretty JSON inside TOON, as services/mcp/src/lib/response.ts does
    decoded = decode_document(text)
    assert decoded.kind == "toon" and decoded.value == data


def test_json_and_structured_content() -> None:
    assert decode_document('{"results": []}').value == {"results": []}
    assert decode_result("ignored", {"a": 1}).kind == "structured"
    with pytest.raises(Unparseable):
        decode_result("x", "a string")


def test_pipe_table_nulls_numbers_lists_and_previews() -> None:
    text = sql_table(
        ["lib", "events", "libs", "note"], [["web", 12, ["a", "b"], None], ["py", 3, [], "(null)"]]
    )
    decoded = decode_table(text + "\n[SQL result preview: Showing 2 of 9 returned rows. Omitted rows …]")
    assert decoded.columns == ["lib", "events", "libs", "note"]
    assert decoded.value == [
        {"lib": "web", "events": 12, "libs": ["a", "b"], "note": None},
        {"lib": "py", "events": 3, "libs": [], "note": "(null)"},
    ]
    assert decoded.truncated
    assert decode_table("lib|events").value == []  # a header without rows: the query found nothing
    for garbage in ("", "Query failed: syntax error near FROM", "a|b\n1", "[SQL result preview: …]"):
        with pytest.raises(Unparseable):
            decode_table(garbage)


@pytest.mark.parametrize("garbage", ["", "   ", "just words", "42", "<html>oops</html>", "key: [2]: 1"])
def test_documents_that_are_not_objects_are_unparseable(garbage: str) -> None:
    with pytest.raises(Unparseable):
        decoded = decode_document(garbage)
        if not isinstance(decoded.value, dict) or "key" in decoded.value:
            raise Unparseable("not an object we asked for")


def test_pick_response_fields_like_the_server() -> None:
    person = {"id": 1, "uuid": "u", "properties": {"email": "a@b", "plan": "x"}, "distinct_ids": ["d"]}
    assert pick_fields(person, ["id", "properties.email"]) == {"id": 1, "properties": {"email": "a@b"}}
    org = {"id": "o", "teams": [{"id": 1, "name": "t", "api_token": "phc"}]}
    assert pick_fields(org, ["teams.*.id"]) == {"teams": [{"id": 1}]}


def test_pinned_schemas_reject_what_the_real_server_rejects() -> None:
    tools = posthog_contract().tools
    assert argument_errors(tools["feature-flag-get-definition"].input_schema, {"id": 4521}) == []
    assert argument_errors(tools["feature-flag-get-definition"].input_schema, {"id": "4521"}) == []
    assert argument_errors(
        tools["feature-flag-get-definition"].input_schema, {"flagKey": "x"}
    )  # the old shape
    assert argument_errors(tools["survey-get"].input_schema, {"surveyId": "x"})  # the old shape
    assert argument_errors(tools["query-session-recordings-list"].input_schema, {"distinct_ids": ["x"]})
    assert argument_errors(tools["query-error-tracking-issues-list"].input_schema, {"status": "open"})
    assert argument_errors(tools["execute-sql"].input_schema, {}) == [
        "arguments: 'query' is a required property"
    ]


async def test_a_recording_without_evaluation_reasons_is_an_error_row_not_a_handler_crash(
    caplog: pytest.LogCaptureFixture,
) -> None:
    data = {k: v for k, v in load_recorded().items() if k != "evaluation_reasons"}  # like most golden cases
    server = build_posthog_like_server(data)
    src = PostHogMcpSource(server=server, project_id="84512")
    source, value = VALUES["flag_evaluation_reasons"]
    try:
        [task] = src.plan(intake_for(source, value), check_for("flag_evaluation_reasons"))
        [row] = await src.execute(task)
    finally:
        await src.aclose()
    # as for a distinct id the recording lacks: nothing recorded is no answer, never "not found"
    assert row.status is EvidenceStatus.error, row.summary
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]  # no traceback from the handler
