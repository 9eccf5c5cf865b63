"""GitHubSource: planning, search → evidence, fix follow-up, failures, concurrency, GHE, replay."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest

from integrations.github import (
    GitHubSource,
    _fixing_pr,
    _parse_time,
    _release_after,
    build_query,
    score_hit,
)
from integrations.http_replay import load_recorded, replay_transport
from tests.fakes.github import GitHubFake, cross_reference, make_issue, make_release
from triage.models import EvidenceStatus, Identifiers, Intake, ResearchTask, Sdk
from triage.playbooks import Playbook
from triage.protocols import ResearchSource

JS = "PostHog/posthog-js"
PLAYBOOK = Playbook(
    id="feature_flags",
    title="Feature flags",
    github_repos=["PostHog/posthog"],
    sdk_repos={"posthog-js": JS, "posthog-react-native": JS, "posthog-python": "PostHog/posthog-python"},
    search_terms=["feature flag"],
)


def flags_intake(**overrides: Any) -> Intake:
    data: dict[str, Any] = {
        "product_area": "feature_flags",
        "symptom_keywords": ["isFeatureEnabled", "posthog.identify()", "returns false", "new-checkout-flow"],
        "identifiers": Identifiers(
            distinct_ids=["user_8f3a2c"],
            emails=["jane@acme-analytics.io"],
            flag_keys=["new-checkout-flow"],
            error_messages=["Flags response errorsWhileComputingFlags user_8f3a2c"],
            sdks=[Sdk(name="posthog-js", version="1.160.0", package="posthog-js", registry="npm")],
        ),
    }
    data.update(overrides)
    return Intake(**data)


ISSUE = make_issue(
    JS,
    1534,
    "isFeatureEnabled returns false right after identify() in 1.160.0",
    state="closed",
    body="Since posthog-js 1.160.0 isFeatureEnabled is false after identify.",
    labels=["bug", "feature/flags"],
    closed_at="2026-11-12T16:41:02Z",
)
UNRELATED = make_issue(JS, 1498, "Bootstrap values overwritten by stale cache", body="bootstrap only")
FIX_PR = make_issue(
    JS,
    1541,
    "fix(flags): reload flags after identify with new person properties",
    state="closed",
    body="Fixes #1534.",
    merged_at="2026-11-12T16:38:27Z",
)
OTHER_PR = make_issue(JS, 1537, "chore: refactor flags", state="closed", body="Related to #1534", pull=True)
RELEASES = [
    make_release("posthog-js@1.162.0", "2026-11-14T09:30:00Z", "- feat: other (#1549)"),
    make_release("posthog-js@1.161.2", "2026-11-13T09:00:00Z", "- fix(flags): reload flags (#1541)"),
    make_release("posthog-node@4.3.0", "2026-11-12T18:00:00Z", "- feat: cohorts"),
    make_release("posthog-js@1.161.1", "2026-11-10T08:00:00Z", "- fix: toolbar (#1536)"),
]


def seed(fake: GitHubFake) -> GitHubFake:
    fake.search_rules = [
        (["is:pr"], [FIX_PR]),
        ([f"repo:{JS.lower()}"], [ISSUE, UNRELATED]),
    ]
    fake.issues = {f"{JS}#1534": ISSUE}
    fake.timelines = {
        f"{JS}#1534": [
            {"event": "labeled", "label": {"name": "bug"}},
            cross_reference(OTHER_PR),
            cross_reference(FIX_PR),
            {"event": "closed", "commit_id": "abc"},
        ]
    }
    fake.releases = {JS: RELEASES}
    return fake


@pytest.fixture
def fake() -> Iterator[GitHubFake]:
    with seed(GitHubFake()) as server:
        yield server


def source(url: str, **kwargs: Any) -> GitHubSource:
    options: dict[str, Any] = {"timeout_s": 5, "max_retries": 2, "backoff_s": 0.01}
    options.update(kwargs)
    return GitHubSource(url, **options)


def sdk_task(src: GitHubSource, intake: Intake | None = None) -> ResearchTask:
    tasks = src.plan(intake or flags_intake(), PLAYBOOK)
    return next(t for t in tasks if t.key == f"github:{JS}")


# ---------------------------------------------------------------- plan


def test_is_a_research_source() -> None:
    assert isinstance(GitHubSource(), ResearchSource)
    assert GitHubSource().name == "github"


def test_plan_variants_and_repo_scoping() -> None:
    tasks = GitHubSource().plan(flags_intake(), PLAYBOOK)
    assert 2 <= len(tasks) <= 4
    assert [t.key for t in tasks] == [f"github:{JS}", "github:PostHog/posthog", "github:pulls"]
    queries = [q for t in tasks for q in t.arguments["queries"]]
    assert len(queries) >= 2
    for task in tasks:
        assert task.source == "github"
        for q in task.arguments["queries"]:
            assert len(q) <= 256
            repos = [tok for tok in q.split() if tok.startswith("repo:")]
            assert repos, q
            assert set(repos) <= {f"repo:{JS}", "repo:PostHog/posthog"}
            assert ("is:issue" in q) != ("is:pr" in q)
    sdk = tasks[0].arguments["queries"]
    assert len(sdk) >= 2
    assert any("isFeatureEnabled" in q and "identify" in q for q in sdk)
    assert any('"1.160.0"' in q for q in sdk)
    assert all(f"repo:{JS}" in q and "is:issue" in q for q in sdk)
    assert all("repo:PostHog/posthog " in q + " " for q in tasks[1].arguments["queries"])
    pr = tasks[2].arguments["queries"][0]
    assert f"repo:{JS}" in pr and "repo:PostHog/posthog" in pr and "is:pr" in pr


def test_plan_never_sends_customer_identifiers() -> None:
    tasks = GitHubSource().plan(flags_intake(), PLAYBOOK)
    text = " ".join(q for t in tasks for q in t.arguments["queries"])
    for private in ("user_8f3a2c", "jane@acme", "new-checkout-flow", "checkout"):
        assert private not in text
    assert "errorsWhileComputingFlags" in text  # the error text itself is kept


def test_plan_caps_query_length_and_tasks() -> None:
    long_words = [f"symptomword{i} " * 8 for i in range(10)]
    intake = flags_intake(
        symptom_keywords=[w.strip()[:40] for w in long_words],
        identifiers=Identifiers(
            error_messages=["TypeError: " + "cannot read properties of undefined " * 20],
            sdks=[Sdk(name="posthog-js", version="1.160.0"), Sdk(name="posthog-python", version="3.6.0")],
        ),
    )
    playbook = PLAYBOOK.model_copy(update={"github_repos": ["PostHog/posthog", "PostHog/a", "PostHog/b"]})
    tasks = GitHubSource().plan(intake, playbook)
    assert len(tasks) <= 4
    for task in tasks:
        assert all(len(q) <= 256 for q in task.arguments["queries"])
    assert build_query(["x" * 300], ["repo:a/b", "is:issue"]) == "repo:a/b is:issue"


def test_plan_without_repos_or_terms_is_empty() -> None:
    assert GitHubSource().plan(flags_intake(), Playbook(id="x", title="X")) == []
    empty = Intake(product_area="other")
    assert GitHubSource().plan(empty, PLAYBOOK.model_copy(update={"search_terms": []})) == []


# ---------------------------------------------------------------- execute


async def test_strong_match_follows_fix_pr_and_release(fake: GitHubFake) -> None:
    src = source(fake.url, token="ghp_test")
    rows = await src.execute(sdk_task(src))
    assert [r.status for r in rows] == [EvidenceStatus.ok, EvidenceStatus.ok]  # deduped across queries
    top = rows[0]
    assert top.title == f"{JS}#1534 isFeatureEnabled returns false right after identify() in 1.160.0"
    assert top.url == f"https://github.com/{JS}/issues/1534"
    assert top.data["issue_state"] == "closed"
    assert top.data["labels"] == ["bug", "feature/flags"]
    assert top.data["fix_pr_url"] == f"https://github.com/{JS}/pull/1541"
    assert top.data["fix_merged"] is True
    assert top.data["fixed_in"] == "1.161.2"
    assert top.data["exact_match"] is True
    assert {"isFeatureEnabled", "identify", "1.160.0"} <= set(top.data["matched_terms"])
    assert top.data["customer_affected"] is True
    assert "1.161.2" in top.summary
    other = rows[1]
    assert other.data["strong_match"] is False and other.data["fix_pr_url"] is None
    # follow-up happened once, for the strong match only
    assert len(fake.calls(f"/repos/{JS}/issues/1534")) == 1
    assert len(fake.calls(f"/repos/{JS}/issues/1534/timeline")) == 1
    assert len(fake.calls(f"/repos/{JS}/releases")) == 1
    search = fake.calls("/search/issues")
    assert len(search) == len(sdk_task(src).arguments["queries"])
    assert all(r.headers.get("Authorization") == "Bearer ghp_test" for r in fake.requests)
    assert all(r.headers.get("Accept") == "application/vnd.github+json" for r in fake.requests)


async def test_no_token_sends_no_authorization(fake: GitHubFake) -> None:
    src = source(fake.url)
    await src.execute(sdk_task(src))
    assert fake.requests and all("Authorization" not in r.headers for r in fake.requests)


async def test_at_most_three_hits_per_query(fake: GitHubFake) -> None:
    fake.search_rules = [([], [make_issue(JS, n, f"unrelated {n}") for n in range(1, 8)])]
    src = source(fake.url)
    task = ResearchTask(key="k", source="github", tool="search_issues", arguments={"queries": ["a is:issue"]})
    rows = await src.execute(task)
    assert [r.data["number"] for r in rows] == [1, 2, 3]
    assert fake.calls(f"/repos/{JS}/issues/1") == []  # no strong match → no follow-up


async def test_pr_hits_carry_merged_state(fake: GitHubFake) -> None:
    src = source(fake.url)
    task = next(t for t in src.plan(flags_intake(), PLAYBOOK) if t.key == "github:pulls")
    rows = await src.execute(task)
    assert len(rows) == 1
    assert rows[0].data["is_pr"] is True
    assert rows[0].data["fix_merged"] is True
    assert rows[0].data["fix_pr_url"] == f"https://github.com/{JS}/pull/1541"
    assert rows[0].data["strong_match"] is False
    assert fake.calls(f"/repos/{JS}/releases") == []


async def test_strong_merged_pr_hit_gets_its_release(fake: GitHubFake) -> None:
    strong_pr = make_issue(
        JS,
        1541,
        "fix: isFeatureEnabled false after identify",
        body="Regression from posthog-js 1.160.0.",
        state="closed",
        merged_at="2026-11-12T16:38:27Z",
    )
    fake.search_rules = [(["is:pr"], [strong_pr])]
    src = source(fake.url)
    task = next(t for t in src.plan(flags_intake(), PLAYBOOK) if t.key == "github:pulls")
    rows = await src.execute(task)
    assert rows[0].data["strong_match"] is True
    assert rows[0].data["fixed_in"] == "1.161.2"
    assert rows[0].data["fix_merged"] is True


async def test_no_hits_is_empty_evidence(fake: GitHubFake) -> None:
    fake.search_rules = []
    src = source(fake.url)
    rows = await src.execute(sdk_task(src))
    assert [r.status for r in rows] == [EvidenceStatus.empty]
    assert "is:issue" in rows[0].query


async def test_429_retry_after_honoured_then_ok(fake: GitHubFake) -> None:
    fake.fail("search", "429")
    src = source(fake.url)
    task = ResearchTask(key="k", source="github", tool="search_issues", arguments={"queries": ["x is:issue"]})
    rows = await src.execute(task)
    assert [r.status for r in rows] == [EvidenceStatus.empty]  # answered (no hits), not failed
    assert len(fake.search_times) == 2
    assert fake.search_times[1] - fake.search_times[0] >= 0.9


async def test_rate_limit_longer_than_cap_is_error_evidence(fake: GitHubFake) -> None:
    fake.fail("search", "429-long")
    src = source(fake.url, max_wait_s=5)
    task = ResearchTask(key="k", source="github", tool="search_issues", arguments={"queries": ["x is:issue"]})
    rows = await src.execute(task)
    assert rows[0].status == EvidenceStatus.error
    assert rows[0].data["error_kind"] == "rate_limited"
    assert "120" in rows[0].summary


async def test_500_retried_then_error_evidence(fake: GitHubFake) -> None:
    fake.fail("search", "500", "500", "500")
    src = source(fake.url, max_retries=2)
    task = ResearchTask(key="k", source="github", tool="search_issues", arguments={"queries": ["x is:issue"]})
    rows = await src.execute(task)
    assert [r.status for r in rows] == [EvidenceStatus.error]
    assert rows[0].data["error_kind"] == "http_error"
    assert len(fake.search_times) == 3


async def test_malformed_body_is_error_evidence(fake: GitHubFake) -> None:
    fake.fail("search", "malformed")
    src = source(fake.url)
    task = ResearchTask(key="k", source="github", tool="search_issues", arguments={"queries": ["x is:issue"]})
    rows = await src.execute(task)
    assert rows[0].status == EvidenceStatus.error
    assert rows[0].data["error_kind"] == "malformed"


async def test_slow_search_is_timeout_evidence(fake: GitHubFake) -> None:
    fake.fail("search", "slow")
    src = source(fake.url, timeout_s=0.2)
    task = ResearchTask(key="k", source="github", tool="search_issues", arguments={"queries": ["x is:issue"]})
    rows = await src.execute(task)
    assert rows[0].status == EvidenceStatus.timeout


async def test_one_failed_query_keeps_the_other_hits(fake: GitHubFake) -> None:
    fake.fail("search", "403-plain")
    src = source(fake.url)
    task = sdk_task(src)
    rows = await src.execute(task)
    statuses = [r.status for r in rows]
    assert EvidenceStatus.error in statuses and EvidenceStatus.ok in statuses


async def test_follow_up_failure_keeps_the_hit(fake: GitHubFake) -> None:
    fake.fail("timeline", "500", "500", "500")
    src = source(fake.url)
    rows = await src.execute(sdk_task(src))
    assert rows[0].status == EvidenceStatus.ok
    assert rows[0].data["strong_match"] is True
    assert rows[0].data["fixed_in"] is None
    assert "followup_error" in rows[0].data


async def test_semaphore_bounds_concurrent_searches(fake: GitHubFake) -> None:
    fake.search_delay_s = 0.15
    src = source(fake.url, search_concurrency=2)
    tasks = src.plan(flags_intake(), PLAYBOOK)
    total = sum(len(t.arguments["queries"]) for t in tasks)
    assert total >= 5
    await asyncio.gather(*(src.execute(t) for t in tasks))
    assert len(fake.search_times) == total
    assert fake.max_in_flight == 2


async def test_enterprise_base_url_keeps_path_prefix() -> None:
    with seed(GitHubFake(prefix="/api/v3")) as ghe:
        src = source(f"{ghe.url}/api/v3/")
        rows = await src.execute(sdk_task(src))
        assert rows[0].data["fixed_in"] == "1.161.2"
        assert ghe.requests
        assert all(r.path.startswith("/api/v3/") for r in ghe.requests)
        assert ghe.calls(f"/api/v3/repos/{JS}/issues/1534/timeline")


async def test_execute_never_raises_on_unreachable_server() -> None:
    src = GitHubSource("http://127.0.0.1:9", timeout_s=1, max_retries=0)
    task = ResearchTask(key="k", source="github", tool="search_issues", arguments={"queries": ["x is:issue"]})
    rows = await src.execute(task)
    assert rows[0].status == EvidenceStatus.error


# ---------------------------------------------------------------- rules


def test_score_rule() -> None:
    sdks = [{"name": "posthog-js", "version": "1.160.0"}]
    terms = ["isFeatureEnabled", "identify", "returns false"]
    strong = score_hit(ISSUE["title"], ISSUE["body"], terms, sdks, ["feature flag"])
    assert strong.strong and strong.exact and strong.version_mentioned
    weak = score_hit("Session replay: canvas drops frames", "", ["blank"], sdks, ["session replay"])
    assert not weak.strong
    area_only = score_hit("feature flag feature flag", "", [], sdks, ["feature flag"])
    assert not area_only.strong
    # the version must not match inside a longer version
    assert not score_hit("broken in 11.160.0", "", terms, sdks).version_mentioned


def test_fixing_pr_prefers_merged_closing_pr() -> None:
    timeline = [cross_reference(OTHER_PR), cross_reference(FIX_PR), {"event": "commented", "body": "hi"}]
    fix = _fixing_pr(timeline, JS, 1534)
    assert fix is not None and fix["number"] == 1541 and fix["merged_at"]
    assert _fixing_pr([{"event": "commented"}], JS, 1534) is None


def test_release_after_merge() -> None:
    sdks = [{"name": "posthog-js", "version": "1.160.0"}]
    merged = _parse_time("2026-11-12T16:38:27Z")
    assert _release_after(RELEASES, 1541, merged, sdks)["tag_name"] == "posthog-js@1.161.2"  # type: ignore[index]
    # no release mentions the PR → the first release (of that package) after the merge
    plain = [make_release(r["tag_name"], r["published_at"]) for r in RELEASES]
    assert _release_after(plain, 1541, merged, sdks)["tag_name"] == "posthog-js@1.161.2"  # type: ignore[index]
    single = [make_release("v2.0.0", "2026-11-20T00:00:00Z"), make_release("v1.9.0", "2026-11-01T00:00:00Z")]
    assert _release_after(single, 7, merged, [])["tag_name"] == "v2.0.0"  # type: ignore[index]
    assert _release_after(single[1:], 7, merged, []) is None


# ---------------------------------------------------------------- replay (demo data)


REPLAY_PLAYBOOKS = {
    "flags": PLAYBOOK,
    "replay": PLAYBOOK.model_copy(update={"search_terms": ["session replay", "recording"]}),
    "surveys": PLAYBOOK.model_copy(update={"search_terms": ["survey"]}),
    "ingestion": PLAYBOOK.model_copy(update={"search_terms": ["events", "ingestion"]}),
}


async def _replay(intake: Intake, playbook: Playbook) -> list[Any]:
    src = GitHubSource(transport=replay_transport(load_recorded("github")))
    rows = []
    for task in src.plan(intake, playbook):
        rows += await src.execute(task)
    return rows


async def test_replay_48291_known_bug() -> None:
    rows = await _replay(flags_intake(), REPLAY_PLAYBOOKS["flags"])
    strong = [r for r in rows if r.data.get("strong_match") and not r.data.get("is_pr")]
    assert strong[0].url == "https://github.com/PostHog/posthog-js/issues/1534"
    assert strong[0].data["fixed_in"] == "1.161.2"
    assert strong[0].data["fix_merged"] is True
    assert any(r.data.get("number") == 1498 and r.data["issue_state"] == "open" for r in rows)


async def test_replay_48302_open_issue_with_workaround() -> None:
    intake = Intake(
        product_area="session_replay",
        symptom_keywords=["blank", "white screen", "CSP"],
        identifiers=Identifiers(sdks=[Sdk(name="posthog-js", version="1.150.1")]),
    )
    rows = await _replay(intake, REPLAY_PLAYBOOKS["replay"])
    issue = next(r for r in rows if r.data.get("number") == 1452)
    assert issue.data["issue_state"] == "open"
    assert issue.data["fix_merged"] is False and issue.data["fixed_in"] is None
    assert "workaround" in issue.data["workaround"].lower()


async def test_replay_48317_react_native_fixed_in_340() -> None:
    intake = Intake(
        product_area="surveys",
        symptom_keywords=["survey not shown"],
        identifiers=Identifiers(sdks=[Sdk(name="posthog-react-native", version="3.3.0")]),
    )
    rows = await _replay(intake, REPLAY_PLAYBOOKS["surveys"])
    issue = next(r for r in rows if r.data.get("number") == 1387)
    assert issue.data["issue_state"] == "closed"
    assert issue.data["fixed_in"] == "3.4.0"


async def test_replay_48330_no_strong_match() -> None:
    intake = Intake(
        product_area="events_ingestion",
        symptom_keywords=["events not showing", "stopped appearing"],
        identifiers=Identifiers(
            sdks=[Sdk(name="posthog-python", version="3.6.0", package="posthog", registry="pypi")]
        ),
    )
    rows = await _replay(intake, REPLAY_PLAYBOOKS["ingestion"])
    assert rows and not any(r.data.get("strong_match") for r in rows)
    assert {r.data.get("number") for r in rows if r.status == EvidenceStatus.ok} == {178, 165}


async def test_replay_unmatched_search_is_empty_and_unknown_path_404() -> None:
    import httpx

    transport = replay_transport(load_recorded("github"))
    async with httpx.AsyncClient(transport=transport) as client:
        search = await client.get(
            "https://api.github.com/search/issues", params={"q": "zzz repo:x/y is:issue"}
        )
        assert search.json()["items"] == []
        missing = await client.get("https://api.github.com/repos/x/y/issues/1")
        assert missing.status_code == 404
        started = time.monotonic()
        ghe = await client.get("https://ghe.example.com/api/v3/repos/PostHog/posthog-js/releases")
        assert ghe.status_code == 200 and isinstance(ghe.json(), list)
        assert time.monotonic() - started < 5
