"""The `triagebot` command line, end to end against local fakes that speak the real protocols."""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.cli import main, parse_ticket_ref
from integrations.store import SqlStore
from tests.fakes.anthropic import FakeAnthropic
from tests.fakes.github import GitHubFake
from tests.fakes.mcp_server import TOKEN, FakeMcpServer
from tests.fakes.registries import RegistryFake
from tests.fakes.zendesk import FakeZendesk
from tests.slack_support import example, seed_ticket
from triage.intake import IntakeRefinement
from triage.models import Confidence, ReportMode, TriageReport
from triage.synthesis import SynthesisOutput


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# ---------------------------------------------------------------- pure commands and bad input


def test_parse_ticket_ref_forms() -> None:
    assert parse_ticket_ref("48291") == 48291
    assert parse_ticket_ref("#48291") == 48291
    assert parse_ticket_ref("https://acme.zendesk.com/agent/tickets/48291") == 48291
    assert parse_ticket_ref("https://acme.zendesk.com/api/v2/tickets/48291.json") == 48291


def test_schema_report(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "schema", "report")
    schema = json.loads(out)
    assert code == 0
    for key in ("intake", "product_area", "evidence", "root_cause", "known_bug", "escalation", "usage"):
        assert key in schema["properties"]


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["triage", "not-a-ticket"], "not a ticket id"),
        (["triage", "48291"], "Zendesk is not configured"),
        (["render", "/nonexistent/report.json"], "cannot read"),
        (["schema", "tickets"], "unknown schema"),
    ],
)
def test_bad_input_is_one_clear_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], needle: str
) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], err
    assert "Traceback" not in err


def test_invalid_setting_is_one_clear_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRIAGE_CONCURRENCY", "lots")
    code, _, err = run(capsys, "schema", "report")
    assert code == 2
    assert err.strip().startswith("triagebot: invalid setting TRIAGE_CONCURRENCY")


def test_render_rejects_a_non_report(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "r.json"
    bad.write_text('{"hello": 1}')
    code, _, err = run(capsys, "render", str(bad))
    assert code == 2 and "is not a triage report" in err and len(err.strip().splitlines()) == 1


# ---------------------------------------------------------------- demo (offline, bundled)


@pytest.fixture
def demo_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def test_demo_json_then_render_every_format(capsys: pytest.CaptureFixture[str], demo_tmp: Path) -> None:
    code, out, err = run(capsys, "demo", "48291", "--format", "json")
    assert code == 0, err
    report = TriageReport.model_validate_json(out)
    assert report.mode is ReportMode.evidence_only and "ANTHROPIC_API_KEY" in report.degraded_reason
    assert report.product_area.value == "feature_flags"
    assert report.known_bug is not None and report.known_bug.fixed_in == "1.161.2"
    assert {s.source for s in report.sources} == {"posthog_mcp", "github", "registry"}
    assert "research" in err and "done" in err  # live progress on stderr
    assert (demo_tmp / "triagebot-demo" / "demo.db").exists()

    saved = demo_tmp / "report.json"
    saved.write_text(out)
    for fmt in ("text", "markdown", "blocks"):
        code, rendered, err = run(capsys, "render", str(saved), "--format", fmt)
        assert code == 0, err
        assert "48291" in rendered
    blocks = json.loads(run(capsys, "render", str(saved), "--format", "blocks")[1])
    assert blocks["parent"]["blocks"] and blocks["thread"]


def test_demo_all_tickets_with_drafts(capsys: pytest.CaptureFixture[str], demo_tmp: Path) -> None:
    code, out, err = run(capsys, "demo", "-q", "--packet", "--kb", "--reply")
    assert code == 0, err
    for ticket_id in ("48291", "48302", "48317", "48330"):
        assert f"#{ticket_id}" in out
    # secrets from the bundled tickets never reach the output
    assert "phc_Zx81kLmQ2rT5vW9yB3nC6dF0gH4jK7pS1aE8uI2oL3" not in out
    assert "ghp_a1B2c3D4e5F6g7H8i9J0kLmNoPqRsTuVwXyZ12" not in out
    assert "Escalation" in out and "## Draft reply" in out


def test_demo_unknown_ticket(capsys: pytest.CaptureFixture[str], demo_tmp: Path) -> None:
    code, _, err = run(capsys, "demo", "99999", "-q")
    assert code == 1 and "#99999 was not found" in err and "Traceback" not in err


# ---------------------------------------------------------------- real integrations, every URL a setting


@pytest.fixture
def fakes() -> Iterator[dict[str, Any]]:
    zd = FakeZendesk().start()
    gh = GitHubFake().start()
    reg = RegistryFake(npm={"posthog-js": "1.165.0"}, pypi={"posthog": "3.7.4"}).start()
    llm = FakeAnthropic().start()
    mcp = FakeMcpServer().start()
    seed_ticket(zd, example(48291))
    try:
        yield {"zendesk": zd, "github": gh, "registry": reg, "anthropic": llm, "mcp": mcp}
    finally:
        for fake in (zd, gh, reg, llm, mcp):
            fake.stop()


@pytest.fixture
def configured(fakes: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    env = {
        "ZENDESK_URL": fakes["zendesk"].url,
        "ZENDESK_EMAIL": "bot@example.com",
        "ZENDESK_API_TOKEN": "zd-token",
        "POSTHOG_MCP_URL": fakes["mcp"].url,
        "POSTHOG_API_KEY": TOKEN,
        "GITHUB_API_URL": fakes["github"].url,
        "NPM_REGISTRY_URL": f"{fakes['registry'].url}/npm",
        "PYPI_URL": fakes["registry"].url,
        "ANTHROPIC_BASE_URL": fakes["anthropic"].url,
        "ANTHROPIC_API_KEY": fakes["anthropic"].api_key,
        "ANTHROPIC_MAX_RETRIES": "0",
        "DATABASE_URL": db,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return db


def synthesis_citing(first_party_id: str) -> dict[str, Any]:
    return SynthesisOutput.model_validate(
        {
            "summary": "Flags evaluate before person properties are set <!channel>.",
            "root_cause": {
                "statement": f"The flag was evaluated before plan=enterprise was set ({first_party_id})",
                "confidence": "confirmed",
                "evidence_ids": [first_party_id],
            },
            "known_bug": None,
            "findings": [{"statement": "Made-up claim", "confidence": "confirmed", "evidence_ids": ["E999"]}],
            "ruled_out": [],
            "next_steps": ["Upgrade posthog-js"],
            "questions_for_customer": [],
            "customer_reply_draft": "Hi Jane, we are on it.",
            "escalation": {"needed": False, "reason": "", "team": "", "urgency": "P2"},
            "injection_noticed": False,
        }
    ).model_dump(mode="json")


def test_triage_real_ticket_through_every_integration(
    capsys: pytest.CaptureFixture[str], fakes: dict[str, Any], configured: str
) -> None:
    llm: FakeAnthropic = fakes["anthropic"]
    llm.push_json(IntakeRefinement(product_area="feature_flags", language="en").model_dump(mode="json"))
    llm.push_json(synthesis_citing("E1"))

    code, out, err = run(capsys, "triage", "#48291", "--format", "json", "-q")
    assert code == 0, err
    report = TriageReport.model_validate_json(out)

    assert report.mode is ReportMode.llm
    assert report.ticket.id == 48291 and report.ticket.url.endswith("/agent/tickets/48291")
    first = report.evidence[0]
    assert first.source == "posthog_mcp" and first.first_party and first.status.value == "ok"
    assert report.root_cause is not None and report.root_cause.confidence is Confidence.confirmed
    assert all("E999" not in f.evidence_ids for f in report.findings)  # grading removed the bad citation
    assert "<!channel>" not in report.summary
    assert report.usage.calls == 2 and report.usage.input_tokens > 0

    # the model saw the ticket only as delimited data, and no Slack markup leaked from the model
    prompt = json.dumps(llm.last_body())
    assert "<ticket_data>" in prompt and "</ticket_data>" in prompt
    # PostHog MCP: read-only header and tools mode reached the server; no write tool ever ran
    mcp: FakeMcpServer = fakes["mcp"]
    assert any(r.headers.get("x-posthog-readonly") == "true" for r in mcp.requests)
    assert mcp.server.write_calls == []
    # Zendesk and GitHub were really called
    assert fakes["zendesk"].calls("/api/v2/tickets/48291.json")
    assert fakes["github"].calls("/search/issues")

    # the report is stored and reloads from the database
    store = SqlStore.from_url(configured)
    try:
        run_record = asyncio.run(store.latest_run(48291))
    finally:
        asyncio.run(store.close())
    assert run_record is not None and run_record.report is not None
    assert run_record.report.run_id == report.run_id


def test_triage_model_outage_gives_evidence_only(
    capsys: pytest.CaptureFixture[str], fakes: dict[str, Any], configured: str
) -> None:
    llm: FakeAnthropic = fakes["anthropic"]
    for _ in range(4):
        llm.push_error(529)
    code, out, err = run(capsys, "triage", "48291", "--format", "json", "-q")
    assert code == 0, err
    report = TriageReport.model_validate_json(out)
    assert report.mode is ReportMode.evidence_only and report.root_cause is None
    assert report.degraded_reason.startswith("model unavailable")


def test_triage_unknown_ticket(capsys: pytest.CaptureFixture[str], configured: str) -> None:
    code, out, err = run(capsys, "triage", "777", "-q")
    assert code == 1 and out == ""
    assert "#777 was not found" in err and len(err.strip().splitlines()) == 1


def test_check_all_ok_then_one_fail(
    capsys: pytest.CaptureFixture[str],
    fakes: dict[str, Any],
    configured: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    code, out, err = run(capsys, "check")
    lines = out.strip().splitlines()
    assert code == 0, out + err
    names = {line.split()[1] for line in lines}
    assert {"database", "zendesk", "anthropic", "posthog_mcp", "github", "registry"} <= names
    assert all(line.startswith("OK") for line in lines), out

    monkeypatch.setenv("GITHUB_API_URL", "http://127.0.0.1:9")  # nothing listens there
    code, out, _ = run(capsys, "check")
    assert code == 1
    failing = [line for line in out.splitlines() if line.startswith("FAIL")]
    assert len(failing) == 1 and "github" in failing[0]
