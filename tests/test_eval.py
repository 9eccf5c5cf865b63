"""`triagebot eval`: golden cases load, scorers judge what they should, a few cases run end to end offline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.cli import main
from bot.evals import CaseResult, EvalRun, compare, load_cases, render_text, run_eval
from bot.settings import Settings
from triage.golden import GoldenCase, Truth, score_report
from triage.models import (
    Confidence,
    Escalation,
    Evidence,
    EvidenceStatus,
    Finding,
    KnownBug,
    TicketSummary,
    TriageReport,
)

PR = "https://github.com/PostHog/posthog-js/pull/4451"


def test_bundled_golden_set_is_valid_and_big_enough() -> None:
    cases = load_cases()
    assert len(cases) >= 30 and len({c.id for c in cases}) == len(cases)
    for case in cases:
        assert case.recorded["github"]["routes"], case.id  # recorded GitHub answers in the REST shape
        assert {"intake", "synthesis", "judge"} <= set(case.model), case.id
        assert case.source.startswith("https://github.com/PostHog/"), case.id


def report(**kw: object) -> TriageReport:
    base = TriageReport(
        ticket=TicketSummary(id=1, url="https://acme.zendesk.com/agent/tickets/1"),
        product_area="session_replay",
        evidence=[
            Evidence(
                id="E1",
                source="posthog_mcp",
                status=EvidenceStatus.ok,
                first_party=True,
                url="https://us.posthog.com/project/1/replay/abc",
            ),
            Evidence(
                id="E2",
                source="github",
                status=EvidenceStatus.ok,
                url="https://github.com/PostHog/posthog-js/issues/1",
            ),
            Evidence(id="E3", source="github", status=EvidenceStatus.ok, url=PR),
        ],
        root_cause=Finding(statement="hover TypeError", confidence=Confidence.likely, evidence_ids=["E3"]),
        known_bug=KnownBug(issue_url=PR, fix_pr_url=PR, fixed_in="1.418.10"),
        customer_reply_draft=f"Hi Sam, this is a known issue fixed in 1.418.10 ({PR}). Please upgrade.",
    )
    return base.model_copy(update=kw)


TRUTH = Truth(
    area="session_replay",
    known_issue_url=PR,
    fix_pr_url=PR,
    fixed_in="1.418.10",
    grade_ceiling=Confidence.likely,
    key_facts=["hover handling threw a TypeError"],
)


def test_scorers_pass_a_correct_report() -> None:
    scores = score_report(report(), TRUTH)
    assert all(s.passed for s in scores.values()), {k: v.reason for k, v in scores.items() if not v.passed}
    assert scores["known_issue"].value == 2  # second GitHub row


def test_scorers_catch_each_kind_of_mistake() -> None:
    wrong = report(
        product_area="feature_flags",
        known_bug=None,
        root_cause=Finding(statement="x", confidence=Confidence.confirmed, evidence_ids=["E1"]),
        escalation=Escalation(needed=True),
        customer_reply_draft="Hola Sam, el problema está en E1, mira https://evil.example/x y https://us.posthog.com/project/1/replay/abc para más información.",
    )
    scores = score_report(wrong, TRUTH)
    failed = {k for k, v in scores.items() if not v.passed}
    assert failed == set(scores)  # every scorer notices its own mistake
    assert "evil.example" in scores["links_in_evidence"].reason


def test_none_truth_wants_no_known_bug() -> None:
    truth = TRUTH.model_copy(update={"known_issue_url": None, "fix_pr_url": None, "fixed_in": None})
    assert not score_report(report(), truth)["known_issue"].passed
    assert score_report(report(known_bug=None), truth)["known_issue"].passed


async def test_cases_run_offline_through_the_pipeline(tmp_path: Path) -> None:
    cases = [c for c in load_cases() if c.id in ("js-4451", "posthog-python-58")]
    run = await run_eval(Settings(), cases, judge=True, progress=False, concurrency=2)
    by_id = {c.id: c for c in run.cases}
    hover = by_id["js-4451"]
    assert not hover.error and hover.scores["area"] and hover.scores["known_issue"]
    assert hover.known_issue_rank == 1 and hover.judge == 100 and hover.cost_usd > 0
    assert set(run.totals) >= {"area", "known_issue", "judge", "all_scorers"}
    text = render_text(run)
    assert "js-4451" in text and "pass rate" in text


def test_baseline_compare_lists_regressions_and_improvements() -> None:
    old_case = CaseResult(id="a", scores={"area": True, "escalation": False}, judge=65)
    old = EvalRun(model="recorded", sources="recorded", judge=False, cases=[old_case])
    new_case = old_case.model_copy(update={"scores": {"area": False, "escalation": True}, "judge": 100})
    new = old.model_copy(update={"cases": [new_case]})
    diff = compare(new, old)
    assert diff["regressions"] == ["a: area"]
    assert diff["improvements"] == ["a: escalation", "a: judge 65 → 100"]


def test_eval_command_json_and_baseline(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    folder = tmp_path / "cases"
    folder.mkdir()
    case: GoldenCase = next(c for c in load_cases() if c.id == "js-4555")
    (folder / "one.json").write_text(case.model_dump_json())
    assert main(["eval", str(folder), "--format", "json"]) == 0
    out = capsys.readouterr().out
    payload = json.loads(out)
    assert payload["cases"][0]["id"] == "js-4555" and "area" in payload["totals"]
    saved = tmp_path / "base.json"
    saved.write_text(out)
    assert main(["eval", str(folder), "--baseline", str(saved), "-q"]) == 0
    assert "vs baseline: 0 regressions" in capsys.readouterr().out
    assert main(["eval", str(tmp_path / "missing")]) == 2
    assert "is not a folder" in capsys.readouterr().err
