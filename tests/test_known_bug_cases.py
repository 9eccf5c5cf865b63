"""The labelled known-bug case set of bench/known_bug_recall.py is well-formed."""

from __future__ import annotations

import json
from pathlib import Path

from triage.playbooks import bundled_playbooks

CASES = Path(__file__).resolve().parents[1] / "bench" / "data" / "known_bug_cases.json"


def test_case_set_is_real_labelled_and_split() -> None:
    data = json.loads(CASES.read_text("utf-8"))
    cases, issues = data["cases"], data["issues"]
    assert len(cases) >= 40 and len({c["id"] for c in cases}) == len(cases)
    assert {c["split"] for c in cases} == {"tuned", "untuned"}
    assert {c["area"] for c in cases} <= set(bundled_playbooks()) and len({c["area"] for c in cases}) >= 8
    assert sum(c["language"] != "en" for c in cases) >= 5
    fixes = {(f["repo"], f["fixes"]): f for f in data["fixes"]}
    for case in cases:
        truth = case["truth"]
        assert truth["known_issue"] in issues, case["id"]
        assert set(truth["identifiers"]) == {
            "error_messages",
            "event_names",
            "flag_keys",
            "versions",
            "code_symbols",
        }
        if truth["fix_pr"]:
            repo, number = truth["known_issue"].split("#")
            fix = fixes[(repo, int(number))]
            assert (fix["number"], fix["fixed_in"]) == (truth["fix_pr"], truth["fixed_in"]), case["id"]
    seed = next(c for c in cases if c["id"] == "surveys-display-twice")["truth"]
    assert (seed["known_issue"], seed["fix_pr"], seed["fixed_in"]) == (
        "PostHog/posthog-js#2586",
        2595,
        "1.296.0",
    )
