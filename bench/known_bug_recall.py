"""Benchmark: does a triage find the known bug on real tickets? (issue #8's honest measurement)

Runs the labelled cases of bench/data/known_bug_cases.json – tickets written as customers write them, from
real public PostHog GitHub issues (some translated) – through the production intake (`rule_intake`, the
rules-only path; plus `refine_intake` with the configured model when ANTHROPIC_API_KEY is set) and, when
the GitHub-semantics fake is available (`integrations.github.offline.OfflineGitHub`), through the GitHub
research source against that fake loaded with the cases' issues, realistic distractors (other real PostHog
issues and PRs, and the real merged-PR titles and releases of ../shared/data/github/posthog-sdk-history.json).

Prints, split into the tuned and the untuned part (the untuned part is never used to tune):
routing accuracy; identifier recall and precision per type; the known issue in the evidence and in the top
3; the fix PR found; fixed-in correct (of the cases where the issue was found and a fix exists).

    .venv/bin/python bench/known_bug_recall.py [--cases PATH] [--show-misses]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from triage.intake import refine_intake, rule_intake
from triage.models import Intake, Ticket
from triage.playbooks import bundled_playbooks
from triage.redaction import Redactor

CASES = Path(__file__).resolve().parent / "data" / "known_bug_cases.json"
ID_TYPES = ("error_messages", "event_names", "flag_keys", "versions", "code_symbols")


def _norm(text: str) -> str:
    return " ".join(text.lower().split()).rstrip(".")


@dataclass
class Tally:
    cases: int = 0
    routed: int = 0
    hits: dict[str, list[int]] = field(default_factory=lambda: {t: [0, 0, 0, 0] for t in ID_TYPES})
    # per type: [truth found, truth total, extracted correct, extracted total]
    in_evidence: int = 0
    in_top3: int = 0
    fix_expected: int = 0
    fix_found: int = 0
    fixed_in_checked: int = 0
    fixed_in_correct: int = 0
    searched: int = 0
    misses: list[str] = field(default_factory=list)


def score_identifiers(intake: Intake, truth: dict[str, Any], tally: Tally, case_id: str) -> None:
    ids = intake.identifiers
    extracted: dict[str, list[str]] = {
        "error_messages": [_norm(e) for e in ids.error_messages],
        "event_names": [e.lower() for e in ids.event_names],
        "flag_keys": [f.lower() for f in ids.flag_keys],
        "versions": [f"{s.name} {s.version}" for s in ids.sdks if s.version],
        "code_symbols": [s.lower() for s in ids.code_symbols],
    }
    expected: dict[str, list[str]] = {
        "error_messages": [_norm(e) for e in truth["error_messages"]],
        "event_names": [e.lower() for e in truth["event_names"]],
        "flag_keys": [f.lower() for f in truth["flag_keys"]],
        "versions": [f"{sdk} {version}" for sdk, version in truth["versions"]],
        "code_symbols": [s.lower() for s in truth["code_symbols"]],
    }
    for kind in ID_TYPES:
        got, want = extracted[kind], expected[kind]
        if kind == "error_messages":  # truth = a key substring of the message
            found = [w for w in want if any(w in g for g in got)]
            correct = [g for g in got if any(w in g for w in want)]
        else:
            found = [w for w in want if w in got]
            correct = [g for g in got if g in want]
        row = tally.hits[kind]
        row[0] += len(found)
        row[1] += len(want)
        row[2] += len(correct)
        row[3] += len(got)
        for w in want:
            if w not in found:
                tally.misses.append(f"{case_id}: {kind} missed {w!r} (got {got})")
        for g in got:
            if g not in correct:
                tally.misses.append(f"{case_id}: {kind} extra {g!r}")


def _pct(a: int, b: int) -> str:
    return f"{a}/{b} ({100 * a / b:.0f}%)" if b else "–"


def print_table(tallies: dict[str, Tally], github: bool) -> None:
    parts = list(tallies)
    head = f"| {'metric':<34} | " + " | ".join(f"{p:<16}" for p in parts) + " |"
    print(head)
    print("|" + "-" * 36 + "|" + "|".join("-" * 18 for _ in parts) + "|")

    def row(name: str, values: list[str]) -> None:
        print(f"| {name:<34} | " + " | ".join(f"{v:<16}" for v in values) + " |")

    row("cases", [str(t.cases) for t in tallies.values()])
    row("routing accuracy", [_pct(t.routed, t.cases) for t in tallies.values()])
    for kind in ID_TYPES:
        row(f"{kind} recall", [_pct(t.hits[kind][0], t.hits[kind][1]) for t in tallies.values()])
        row(f"{kind} precision", [_pct(t.hits[kind][2], t.hits[kind][3]) for t in tallies.values()])
    if github:
        row("known issue in evidence", [_pct(t.in_evidence, t.cases) for t in tallies.values()])
        row("known issue in top 3", [_pct(t.in_top3, t.cases) for t in tallies.values()])
        row(
            "fix PR found (of cases with a fix)",
            [_pct(t.fix_found, t.fix_expected) for t in tallies.values()],
        )
        row(
            "fixed-in correct (found, has fix)",
            [_pct(t.fixed_in_correct, t.fixed_in_checked) for t in tallies.values()],
        )


async def _intake(case: dict[str, Any], model: Any) -> Intake:
    books = bundled_playbooks()
    ticket = Ticket(id=1, subject=case["ticket"]["subject"], description=case["ticket"]["description"])
    clean = Redactor().redact_ticket(ticket)
    base = rule_intake(clean, books)
    if model is None:
        return base
    refined, _ = await refine_intake(model, clean, base, books)
    return refined


def _model() -> Any:
    if not os.environ.get("ANTHROPIC_API_KEY"):
        return None
    from bot.settings import Settings
    from bot.wiring import build_model

    return build_model(Settings())


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cases", type=Path, default=CASES)
    parser.add_argument("--show-misses", action="store_true")
    args = parser.parse_args()
    data = json.loads(args.cases.read_text("utf-8"))
    from bench.known_bug_github import GitHubBench  # the GitHub-semantics fake (None when absent)

    github = GitHubBench.create(data)
    paths = [("rules-only", None)]
    if (model := _model()) is not None:
        paths.append(("model", model))
    for label, model_or_none in paths:
        tallies = {"tuned": Tally(), "untuned": Tally(), "all": Tally()}
        for case in data["cases"]:
            intake = await _intake(case, model_or_none)
            truth = case["truth"]
            for part in (case["split"], "all"):
                tally = tallies[part]
                tally.cases += 1
                tally.routed += intake.product_area == case["area"]
                score_identifiers(intake, truth["identifiers"], tally, case["id"])
            if github is not None:
                outcome = await github.run(case, intake)
                for part in (case["split"], "all"):
                    github.score(outcome, truth, tallies[part], case["id"])
        print(f"\n### {label} ({len(data['cases'])} cases)\n")
        print_table(tallies, github is not None)
        if github is None:
            print(
                "\n(known-bug rows need the GitHub-semantics fake integrations.github.offline – not available)"
            )
        if args.show_misses:
            print("\nmisses (tuned part only; the untuned part is not looked at while tuning):")
            for line in tallies["tuned"].misses:
                print("  " + line)


if __name__ == "__main__":
    asyncio.run(main())
