"""The `triagebot` command line, end to end against local fakes that speak the real protocols."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.cli import main, parse_ticket_ref
from integrations.store import SqlStore
from tests.cli_support import CliFakes, cli_fakes, configure_cli
from tests.fakes.zendesk import FakeZendesk
from tests.slack_support import example
from triage.grading import subject_is_ticket
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
    code, out, err = run(capsys, "demo", "48291", "--format", "json", "--evidence-only")
    assert code == 0, err
    report = TriageReport.model_validate_json(out)
    assert report.mode is ReportMode.evidence_only and "ANTHROPIC_API_KEY" in report.degraded_reason
    assert report.product_area == "feature_flags"
    assert report.known_bug is not None and report.known_bug.fixed_in == "1.161.2"
    assert {s.source for s in report.sources} == {"posthog_mcp", "github", "registry"}
    # the requester exists in the recorded project: the look-up by their (redacted) email finds them, and no
    # PostHog row claims "not found" for data that is there
    people = [e for e in report.evidence if e.title.startswith("Person (requester)")]
    assert people and all(e.status == "ok" for e in people), [(e.status, e.summary) for e in people]
    assert not [
        e.summary for e in report.evidence if e.source == "posthog_mcp" and "nothing matches" in e.summary
    ]
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


def test_demo_json_for_several_tickets_is_one_array_and_render_reads_it(
    capsys: pytest.CaptureFixture[str], demo_tmp: Path
) -> None:
    code, out, err = run(capsys, "demo", "48291", "48302", "-q", "--format", "json")
    assert code == 0, err
    reports = [TriageReport.model_validate(item) for item in json.loads(out)]  # json.load-able, not jq-only
    assert [r.ticket.id for r in reports] == [48291, 48302]

    as_array, as_lines = demo_tmp / "reports.json", demo_tmp / "reports.jsonl"
    as_array.write_text(out)
    as_lines.write_text("\n".join(r.model_dump_json() for r in reports) + "\n")
    for path in (as_array, as_lines):
        code, text, err = run(capsys, "render", str(path), "--format", "json")
        assert code == 0, err
        assert [r["ticket"]["id"] for r in json.loads(text)] == [48291, 48302]
        code, text, err = run(capsys, "render", str(path), "--format", "text")
        assert code == 0 and "#48291" in text and "#48302" in text

    code, _, err = run(capsys, "demo", "48291", "--format", "json", "--packet")
    assert code == 2 and "--format text or markdown" in err


def test_demo_unknown_ticket(capsys: pytest.CaptureFixture[str], demo_tmp: Path) -> None:
    code, _, err = run(capsys, "demo", "99999", "-q")
    assert code == 1 and "#99999 was not found" in err and "Traceback" not in err


# ---------------------------------------------------------------- real integrations, every URL a setting


@pytest.fixture
def fakes() -> Iterator[CliFakes]:
    with cli_fakes() as started:
        yield started


@pytest.fixture
def configured(fakes: CliFakes, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    return configure_cli(fakes, monkeypatch, tmp_path / "cli.db")


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
    capsys: pytest.CaptureFixture[str], fakes: CliFakes, configured: str
) -> None:
    llm = fakes.anthropic
    llm.push_json(IntakeRefinement(product_area="feature_flags", language="en").model_dump(mode="json"))
    llm.push_json(synthesis_citing("E1"))

    code, out, err = run(capsys, "triage", "#48291", "--format", "json", "-q")
    assert code == 0, err
    report = TriageReport.model_validate_json(out)

    assert report.mode is ReportMode.llm
    assert report.ticket.id == 48291 and report.ticket.url.endswith("/agent/tickets/48291")
    first = report.evidence[0]
    assert first.source == "posthog_mcp" and first.first_party and first.status.value == "ok"
    # confirmed only when E1 is data about this ticket's own object (its subject names the ticket's flag)
    about_ticket = subject_is_ticket(first.subject, report.intake)
    expected = Confidence.confirmed if about_ticket else Confidence.likely
    assert report.root_cause is not None and report.root_cause.confidence is expected
    assert all("E999" not in f.evidence_ids for f in report.findings)  # grading removed the bad citation
    assert "<!channel>" not in report.summary
    assert report.usage.calls == 2 and report.usage.input_tokens > 0

    # the model saw the ticket only as delimited data, and no Slack markup leaked from the model
    prompt = json.dumps(llm.last_body())
    assert "<ticket_data>" in prompt and "</ticket_data>" in prompt
    # PostHog MCP: read-only header and tools mode reached the server; no write tool ever ran
    mcp = fakes.mcp
    assert all(r.headers.get("x-posthog-read-only") == "true" for r in mcp.requests)
    assert all(r.query.get("readonly") == "true" for r in mcp.requests)
    assert mcp.server.write_calls == []
    # Zendesk and GitHub were really called
    assert fakes.zendesk.calls("/api/v2/tickets/48291.json")
    assert fakes.github.calls("/search/issues")

    # the report is stored and reloads from the database
    store = SqlStore.from_url(configured)
    try:
        run_record = asyncio.run(store.latest_run(48291))
    finally:
        asyncio.run(store.close())
    assert run_record is not None and run_record.report is not None
    assert run_record.report.run_id == report.run_id


def test_triage_model_outage_gives_evidence_only(
    capsys: pytest.CaptureFixture[str], fakes: CliFakes, configured: str
) -> None:
    llm = fakes.anthropic
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
    fakes: CliFakes,
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


# ---------------------------------------------------------------- pasted tickets (stdin, text, .eml, Zendesk JSON)

PASTED = (
    "Hi, our feature flag new-checkout-flow returns false for enterprise users since we upgraded "
    "posthog-js to 1.160.0. Our key is phc_Zx81kLmQ2rT5vW9yB3nC6dF0gH4jK7pS1aE8uI2oL3.\nThanks, Jane\n"
)

EML = (
    "From: Jane Doe <jane@acme-analytics.io>\n"
    "To: support@posthog.example\n"
    "Subject: Flags broken after upgrade\n"
    "Date: Wed, 18 Nov 2026 09:12:00 +0000\n"
    "Message-ID: <m1@acme-analytics.io>\n"
    "MIME-Version: 1.0\n"
    'Content-Type: multipart/alternative; boundary="b1"\n'
    "\n"
    "--b1\n"
    "Content-Type: text/html; charset=utf-8\n"
    "\n"
    "<p>Our flag <b>new-checkout-flow</b> is false for enterprise users.</p><script>x()</script>\n"
    "--b1\n"
    "Content-Type: text/plain; charset=utf-8\n"
    "\n"
    "Our flag new-checkout-flow is false for enterprise users since posthog-js 1.160.0.\n"
    "--b1--\n"
)


def _stdin(monkeypatch: pytest.MonkeyPatch, data: bytes) -> None:
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))


def _stored(db: str, ticket_id: int) -> Any:
    store = SqlStore.from_url(db)
    try:
        return asyncio.run(store.latest_run(ticket_id))
    finally:
        asyncio.run(store.close())


def test_triage_stdin_runs_the_pipeline_without_zendesk(
    capsys: pytest.CaptureFixture[str],
    fakes: CliFakes,
    configured: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    llm = fakes.anthropic
    llm.push_json(IntakeRefinement(product_area="feature_flags", language="en").model_dump(mode="json"))
    llm.push_json(synthesis_citing("E1"))
    _stdin(monkeypatch, PASTED.encode())
    code, out, err = run(
        capsys, "triage", "-", "--requester-email", "jane@acme-analytics.io", "--format", "json"
    )
    assert code == 0, err
    report = TriageReport.model_validate_json(out)
    assert report.ticket.id < 0 and report.ticket.ref.startswith("pasted-") and report.ticket.url == ""
    assert report.ticket.ref in err and "no Zendesk call" in err
    assert report.ticket.subject.startswith("Hi, our feature flag new-checkout-flow")
    assert report.mode is ReportMode.llm and report.product_area == "feature_flags"
    assert "jane@acme-analytics.io" not in json.dumps(llm.bodies())  # redacted before the model
    assert "phc_Zx81kLmQ2rT5vW9yB3nC6dF0gH4jK7pS1aE8uI2oL3" not in out + json.dumps(llm.bodies())
    assert fakes.zendesk.requests == []
    assert fakes.github.calls("/search/issues")
    stored = _stored(configured, report.ticket.id)
    assert stored is not None and stored.report is not None and stored.report.run_id == report.run_id
    # the same text again is the same pasted ticket (a new run under the same reference)
    _stdin(monkeypatch, PASTED.encode())
    code, out2, err = run(capsys, "triage", "-", "-q", "--format", "json")
    assert code == 0, err
    assert TriageReport.model_validate_json(out2).ticket.id == report.ticket.id


def test_triage_text_file_with_subject(
    capsys: pytest.CaptureFixture[str], fakes: CliFakes, configured: str, tmp_path: Path
) -> None:
    path = tmp_path / "ticket.txt"
    path.write_text(PASTED)
    code, out, err = run(
        capsys, "triage", "--file", str(path), "--subject", "Checkout flag off", "-q", "--format", "markdown"
    )
    assert code == 0, err
    assert "Checkout flag off" in out and "pasted-" in out
    assert "phc_Zx81kLmQ2rT5vW9yB3nC6dF0gH4jK7pS1aE8uI2oL3" not in out


def test_triage_eml_file_uses_subject_from_and_text_body(
    capsys: pytest.CaptureFixture[str], fakes: CliFakes, configured: str, tmp_path: Path
) -> None:
    path = tmp_path / "mail.eml"
    path.write_text(EML)
    code, out, err = run(capsys, "triage", "--file", str(path), "-q", "--format", "json")
    assert code == 0, err
    report = TriageReport.model_validate_json(out)
    assert report.ticket.subject == "Flags broken after upgrade"
    assert report.ticket.requester == "Jane Doe"
    assert report.ticket.id < 0
    assert report.product_area == "feature_flags"
    assert "new-checkout-flow" in report.intake.identifiers.flag_keys


def test_triage_zendesk_json_as_the_api_returns_it(
    capsys: pytest.CaptureFixture[str], fakes: CliFakes, configured: str, tmp_path: Path
) -> None:
    zd: FakeZendesk = fakes.zendesk
    auth = {"Authorization": "Basic " + base64.b64encode(b"bot@example.com/token:zd-token").decode()}

    def get(path: str) -> Any:
        with urllib.request.urlopen(urllib.request.Request(zd.url + path, headers=auth)) as resp:
            return json.loads(resp.read())

    exported = {**get("/api/v2/tickets/48291.json"), **get("/api/v2/tickets/48291/comments.json")}
    path = tmp_path / "48291.json"
    path.write_text(json.dumps(exported))
    calls_before = len(zd.requests)
    code, out, err = run(capsys, "triage", "--file", str(path), "-q", "--format", "json")
    assert code == 0, err
    report = TriageReport.model_validate_json(out)
    assert report.ticket.subject == example(48291).subject
    assert report.ticket.id < 0 and report.ticket.id != 48291  # a pasted copy, never the Zendesk id
    assert len(zd.requests) == calls_before
    assert report.product_area == "feature_flags"


@pytest.mark.parametrize(
    ("name", "content", "needle"),
    [
        ("stdin", b"   \n\t\n", "is empty"),
        ("blob.bin", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "looks binary"),
        ("latin1.txt", "caf\xe9 cr\xe8me".encode("latin-1"), "not UTF-8"),
        ("huge.txt", b"a" * (300 * 1024), "over the 256 KB limit"),
        ("broken.eml", b"this is not an e-mail at all\njust words\n", "not a readable e-mail"),
        ("ticket.json", b'{"tickets": []}', "not a Zendesk ticket"),
        ("bad.json", b'{"ticket": ', "not valid JSON"),
        ("missing.txt", None, "cannot read"),
    ],
)
def test_triage_bad_pasted_input_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    name: str,
    content: bytes | None,
    needle: str,
) -> None:
    if name == "stdin":
        assert content is not None
        _stdin(monkeypatch, content)
        argv = ["triage", "-"]
    else:
        path = tmp_path / name
        if content is not None:
            path.write_bytes(content)
        argv = ["triage", "--file", str(path)]
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], err
    assert "Traceback" not in err


def test_triage_argument_mistakes(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert run(capsys, "triage")[0] == 2
    code, _, err = run(capsys, "triage", "48291", "--subject", "x")
    assert code == 2 and "for pasted tickets" in err
    code, _, err = run(capsys, "triage", "-", "--file", str(tmp_path / "x.txt"))
    assert code == 2 and "not both" in err
