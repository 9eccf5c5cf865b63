"""GitHubSource against the GitHub-rules fake: planning, ranking, fix PR, fixed-in, failures, replay."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from integrations.github import GitHubSource
from integrations.github.offline import issue_item, load_recorded_world, offline_transport
from tests.fakes.github import GitHubFake, history_prs, history_releases
from triage.models import EvidenceStatus, Identifiers, Intake, ResearchTask, Sdk
from triage.playbooks import bundled_playbooks
from triage.protocols import ResearchSource

JS = "PostHog/posthog-js"
SURVEYS = bundled_playbooks()["surveys"]
FLAGS = bundled_playbooks()["feature_flags"]

SEED_ISSUE = issue_item(
    JS,
    2586,
    "Survey fails to display on second attempt after being closed",
    body="When using `posthog.displaySurvey()` to programmatically show a survey, it displays correctly the "
    "first time but fails to appear on subsequent attempts after being closed.",
    state="closed",
    labels=["bug", "feature/surveys"],
    created_at="2025-11-17T00:00:00Z",
    closed_at="2025-11-19T02:15:00Z",
    comments=["Workaround: remove the old `.PostHogSurvey-{id}` element before calling displaySurvey again."],
)
SEED_FIX = issue_item(
    JS,
    2595,
    "fix(surveys): clean up popover surveys from dom on close",
    body="Closes #2586.",
    state="closed",
    created_at="2025-11-18T18:00:00Z",
    merged_at="2025-11-19T02:15:00Z",
    merge_commit_sha="17d12f5dd076b46a732c2667a2a42429f8c77120",
)
DISTRACTOR = issue_item(
    "PostHog/posthog",
    24600,
    "Surveys no longer display if user closes popover without responding",
    body="The survey is displayed the first time; after the user closes the popover it no longer displays.",
    state="closed",
    labels=["bug", "feature/surveys"],
    created_at="2024-08-27T00:00:00Z",
    closed_at="2024-09-10T00:00:00Z",
)


def seed_intake(version: str = "1.290.1", **extra: Any) -> Intake:
    ids: dict[str, Any] = {
        "distinct_ids": ["user_12345"],
        "emails": ["jane@acme.io"],
        "flag_keys": ["new-feedback-flow"],
        "urls": ["https://app.acme.io/settings"],
        "hosts": ["app.acme.io"],
        "sdks": [Sdk(name="posthog-js", version=version, package="posthog-js", registry="npm")],
    }
    ids.update(extra)
    return Intake(
        product_area="surveys",
        symptom_keywords=["displaySurvey", "survey", "closing"],
        identifiers=Identifiers(**ids),
    )


@pytest.fixture
def fake() -> Iterator[GitHubFake]:
    """The seed case in the real posthog-js history: 3,306 releases, ~1,150 merged PRs as distractors."""
    server = GitHubFake().load(
        SEED_ISSUE, SEED_FIX, DISTRACTOR, *history_prs(JS), releases={JS: history_releases(JS)}
    )
    with server:
        yield server


def source(url: str, **kwargs: Any) -> GitHubSource:
    options: dict[str, Any] = {"timeout_s": 5, "max_retries": 1, "backoff_s": 0.01}
    options.update(kwargs)
    return GitHubSource(url, **options)


async def run(src: GitHubSource, intake: Intake, playbook: Any = SURVEYS) -> list[Any]:
    rows = []
    for task in src.plan(intake, playbook):
        rows += await src.execute(task)
    return rows


# ---------------------------------------------------------------- plan


def test_is_a_research_source() -> None:
    assert isinstance(GitHubSource(), ResearchSource)


def test_plan_groups_repos_with_or_and_sends_the_variants() -> None:
    tasks = GitHubSource().plan(seed_intake(), SURVEYS)
    assert [t.key for t in tasks] == ["github:known_bugs"]
    queries = {q["variant"]: q for q in tasks[0].arguments["queries"]}
    assert queries["symbol"]["q"] == f"displaySurvey repo:{JS} is:issue"
    scope = f"(repo:{JS} OR repo:PostHog/posthog) is:issue"
    assert queries["symbol_symptom"]["q"] == f"displaySurvey survey closing {scope}"
    assert queries["symptom"]["q"] == f"survey closing {scope}"
    assert queries["pr"]["q"].endswith("is:pr")
    assert queries["semantic"]["search_type"] == "semantic"
    for q in queries.values():
        assert "repo:PostHog/posthog-js repo:" not in q["q"]  # never AND-ed repo qualifiers


def test_error_message_core_is_quoted_without_customer_values() -> None:
    intake = seed_intake(
        error_messages=["Error: Survey 'user_12345' could not be rendered: container not found"]
    )
    queries = {q["variant"]: q["q"] for q in GitHubSource().plan(intake, SURVEYS)[0].arguments["queries"]}
    assert queries["error"].startswith('"could not be rendered container not found"')
    assert "user_12345" not in queries["error"]


def test_error_core_keeps_the_sdk_method_and_drops_generic_phrases() -> None:
    def error_query(message: str, symbols: list[str] | None = None) -> str:
        intake = seed_intake(error_messages=[message], code_symbols=symbols or [])
        queries = GitHubSource().plan(intake, SURVEYS)[0].arguments["queries"]
        return next((q["q"] for q in queries if q["variant"] == "error"), "")

    # a quoted word that is one of the ticket's public symbols is the SDK's method, not a customer value
    quoted = error_query("TypeError: Cannot read property 'getDistinctId' of undefined", ["getDistinctId"])
    assert quoted.startswith('"TypeError Cannot read property getDistinctId of undefined"')
    assert error_query("TypeError: posthog.loadToolbar is not a function").startswith(
        '"TypeError posthog.loadToolbar is not a function"'
    )
    # only generic words left: thousands of unrelated issues say this, so no error query
    assert error_query("TypeError: Cannot read properties of undefined (reading 'user_12345')") == ""
    assert error_query("TypeError: acme_12345.init is not a function") == ""


def test_the_symbol_named_in_the_error_is_tried_first_and_built_ins_never() -> None:
    intake = seed_intake(
        code_symbols=["PostHogProvider", "getDistinctId", "toolbarJSON"],
        error_messages=["TypeError: Cannot read property 'getDistinctId' of undefined"],
    ).model_copy(update={"symptom_keywords": ["TypeError", "identify", "displaySurvey"]})
    symbols = GitHubSource().plan(intake, SURVEYS)[0].arguments["symbols"]
    assert symbols[0] == "getDistinctId" and "TypeError" not in symbols


def test_legacy_repo_is_searched_for_node_and_react_native() -> None:
    intake = Intake(
        symptom_keywords=["getFeatureFlag", "timeout"],
        identifiers=Identifiers(sdks=[Sdk(name="posthog-node", version="3.1.0")]),
    )
    sdk_repos, all_repos = GitHubSource().repos(intake, FLAGS)
    assert sdk_repos == [JS, "PostHog/posthog-js-lite"]
    assert all_repos[:2] == sdk_repos and "PostHog/posthog" in all_repos
    symbol = next(
        q for q in GitHubSource().plan(intake, FLAGS)[0].arguments["queries"] if q["variant"] == "symbol"
    )
    assert symbol["q"] == f"getFeatureFlag (repo:{JS} OR repo:PostHog/posthog-js-lite) is:issue"


def test_model_queries_are_a_second_task_and_privacy_filtered() -> None:
    intake = seed_intake().model_copy(
        update={
            "search_queries": [
                "survey not shown again after close",
                "acme new-feedback-flow survey user_12345",
            ]
        }
    )
    tasks = GitHubSource().plan(intake, SURVEYS)
    assert [t.key for t in tasks] == ["github:known_bugs", "github:model_queries"]
    sent = [q["q"] for q in tasks[1].arguments["queries"]]
    assert sent[0].startswith("survey not shown again after close (")
    assert all("acme" not in q and "new-feedback-flow" not in q and "user_12345" not in q for q in sent)


async def test_nothing_searchable_is_a_visible_row_not_a_broad_search() -> None:
    intake = Intake(
        product_area="surveys",
        symptom_keywords=["new-feedback-flow", "help"],
        identifiers=Identifiers(flag_keys=["new-feedback-flow"]),
    )
    tasks = GitHubSource().plan(intake, SURVEYS)
    assert [t.key for t in tasks] == ["github:no_terms"]
    rows = await GitHubSource("http://127.0.0.1:9").execute(tasks[0])
    assert rows[0].status == EvidenceStatus.empty
    assert rows[0].title == "No GitHub search: no search terms could be formed"


# ---------------------------------------------------------------- the seed case, end to end


async def test_seed_display_survey_known_bug_fix_pr_and_fixed_in(fake: GitHubFake) -> None:
    rows = await run(source(fake.url), seed_intake())
    best = rows[0]
    assert best.url == f"https://github.com/{JS}/issues/2586"
    data = best.data
    assert data["match_signal"] == "exact_match" and data["exact_match"] is True
    assert data["state"] == "closed" and data["kind"] == "issue"
    assert data["fix_pr_url"] == f"https://github.com/{JS}/pull/2595" and data["fix_merged"] is True
    assert data["fix_basis"] == "closing_commit"
    assert data["fixed_in"] == "1.296.0" and data["fixed_in_basis"] == "changelog"
    assert data["fixed_in_tag"] == "posthog-js@1.296.0"
    assert data["customer_affected"] is True and data["upgrade_to"] == "1.296.0"
    assert "upgrade to ≥ 1.296.0" in best.summary
    assert "workaround" in data["workaround"].lower()
    # the fix is > 2,000 releases back: found by reading the pages around the merge, not page 1
    release_pages = [r.query.get("page", "1") for r in fake.calls() if r.path.endswith("/releases")]
    assert len(release_pages) > 2 and "1" in release_pages


async def test_a_fix_pr_found_directly_leads_to_the_issue_it_closes(fake: GitHubFake) -> None:
    # the reporter's words are the fix PR's ("popover", "dom"), not the issue's: the PR names the issue
    intake = seed_intake().model_copy(update={"symptom_keywords": ["popover", "dom", "cleanup"]})
    rows = await run(source(fake.url, semantic_search=False), intake)
    pull = next(r for r in rows if r.data.get("number") == 2595)
    assert pull.data["closes_issue_url"] == f"https://github.com/{JS}/issues/2586"
    issue = next(r for r in rows if r.data.get("number") == 2586)
    assert rows.index(issue) == rows.index(pull) + 1
    assert issue.data["kind"] == "issue" and issue.data["query_variant"] == "closed_by_found_pr"
    assert issue.data["found_via_pr_url"] == f"https://github.com/{JS}/pull/2595"
    assert issue.data["fix_pr_number"] == 2595 and issue.data["fixed_in"] == "1.296.0"
    assert issue.data["customer_affected"] is True
    assert "fixes_issue" not in pull.data and "fixes_issue" not in issue.data


async def test_customer_already_on_the_fix_is_not_told_to_upgrade(fake: GitHubFake) -> None:
    rows = await run(source(fake.url), seed_intake(version="1.300.0"))
    data = rows[0].data
    assert data["fixed_in"] == "1.296.0"
    assert data["customer_affected"] is False and data["upgrade_to"] is None
    assert "already has the fix" in rows[0].summary


async def test_searches_use_advanced_search_and_semantic_once(fake: GitHubFake) -> None:
    await run(source(fake.url), seed_intake())
    searches = fake.searches()
    assert sum(1 for s in searches if s.get("search_type") == "semantic") == 1
    assert all(s.get("advanced_search") == "true" for s in searches if "search_type" not in s)


# ---------------------------------------------------------------- failures


async def test_secondary_rate_limit_without_retry_after_is_rate_limited_fast(fake: GitHubFake) -> None:
    fake.fail("search", *["403-secondary"] * 6)
    src = source(fake.url, max_wait_s=20)
    started = time.monotonic()
    rows = await run(src, seed_intake())
    assert time.monotonic() - started < 5  # GitHub asks for ≥ 60 s: not waited for within the deadline
    limited = [r for r in rows if r.status == EvidenceStatus.rate_limited]
    assert limited and all(r.data["retry_after_s"] >= 55 for r in limited)
    before = len(fake.searches())
    again = await run(src, seed_intake())  # the block is remembered: GitHub is not asked again
    assert len(fake.searches()) == before
    assert all(r.status == EvidenceStatus.rate_limited for r in again)


async def test_retry_after_is_honoured_then_ok(fake: GitHubFake) -> None:
    fake.fail("search", "429")
    rows = await run(source(fake.url, max_wait_s=5), seed_intake())
    assert rows[0].status == EvidenceStatus.ok and rows[0].data["number"] == 2586


async def test_malformed_and_slow_searches_keep_the_other_hits(fake: GitHubFake) -> None:
    fake.fail("search", "malformed", "slow")
    fake.slow_s = 2.0
    rows = await run(source(fake.url, timeout_s=1, search_concurrency=1), seed_intake())
    statuses = {r.status for r in rows}
    assert EvidenceStatus.ok in statuses
    assert {EvidenceStatus.error, EvidenceStatus.timeout} <= statuses


async def test_follow_up_failure_keeps_the_hit(fake: GitHubFake) -> None:
    fake.fail("timeline", "500", "500", "500", "500")
    rows = await run(source(fake.url), seed_intake())
    issue = next(r for r in rows if r.data.get("number") == 2586)
    assert issue.status == EvidenceStatus.ok and issue.data["fixed_in"] is None
    assert "http_error" in issue.data["followup_error"]


async def test_semaphore_bounds_concurrent_searches(fake: GitHubFake) -> None:
    fake.search_delay_s = 0.05
    await run(source(fake.url, search_concurrency=1), seed_intake())
    assert fake.max_in_flight == 1


async def test_enterprise_base_url_keeps_path_prefix() -> None:
    with GitHubFake(prefix="/api/v3").load(SEED_ISSUE, SEED_FIX) as fake:
        rows = await run(source(f"{fake.url}/api/v3", semantic_search=False), seed_intake())
    assert rows[0].data["number"] == 2586
    assert all(r.path.startswith("/api/v3/") for r in fake.requests)
    assert all(r.headers.get("Accept") == "application/vnd.github+json" for r in fake.requests)
    assert not any("Authorization" in r.headers for r in fake.requests)


async def test_renamed_repo_redirect_is_followed() -> None:
    old = issue_item("PostHog/old-js", 7, "displaySurvey survey closing broken", state="open")
    with GitHubFake().load(old) as fake:
        fake.world.redirects["posthog/old-js"] = JS
        fake.world.add(issue_item(JS, 7, "displaySurvey survey closing broken", state="open"))
        async with httpx.AsyncClient(follow_redirects=True) as client:
            moved = await client.get(f"{fake.url}/repos/PostHog/old-js/issues/7/timeline")
        assert moved.history[0].status_code == 301 and moved.status_code == 200


async def test_execute_never_raises_on_unreachable_server() -> None:
    src = GitHubSource("http://127.0.0.1:9", timeout_s=1, max_retries=0)
    task = src.plan(seed_intake(), SURVEYS)[0]
    rows = await src.execute(task)
    assert rows and all(r.status == EvidenceStatus.error for r in rows)


# ---------------------------------------------------------------- offline demo


async def replay(intake: Intake, playbook: Any) -> list[Any]:
    return await run(GitHubSource(transport=offline_transport(load_recorded_world())), intake, playbook)


async def test_replay_seed_case() -> None:
    rows = await replay(seed_intake(), SURVEYS)
    assert rows[0].data["number"] == 2586 and rows[0].data["fixed_in"] == "1.296.0"


async def test_replay_48291_flags_known_bug() -> None:
    intake = Intake(
        product_area="feature_flags",
        symptom_keywords=["isFeatureEnabled", "posthog.identify()", "returns false"],
        identifiers=Identifiers(
            flag_keys=["new-checkout-flow"], sdks=[Sdk(name="posthog-js", version="1.160.0")]
        ),
    )
    rows = await replay(intake, FLAGS)
    assert rows[0].url == f"https://github.com/{JS}/issues/1534"
    assert rows[0].data["fixed_in"] == "1.161.2" and rows[0].data["fix_merged"] is True


async def test_replay_48317_react_native_fixed_in_340() -> None:
    intake = Intake(
        product_area="surveys",
        symptom_keywords=["survey not shown", "event"],
        identifiers=Identifiers(sdks=[Sdk(name="posthog-react-native", version="3.3.0")]),
    )
    rows = await replay(intake, SURVEYS)
    issue = next(r for r in rows if r.data.get("number") == 1387)
    assert issue.data["fixed_in"] == "3.4.0" and issue.data["customer_affected"] is True


async def test_replay_unknown_path_is_404() -> None:
    async with httpx.AsyncClient(transport=offline_transport(load_recorded_world())) as client:
        missing = await client.get("https://api.github.com/repos/PostHog/posthog-js/issues/999999")
    assert missing.status_code == 404


def test_task_arguments_are_json() -> None:
    task: ResearchTask = GitHubSource().plan(seed_intake(), SURVEYS)[0]
    assert ResearchTask.model_validate_json(task.model_dump_json()) == task


def test_closing_references_in_a_pr_body() -> None:
    from integrations.github.fixes import closed_issues

    body = (
        "Fixes #12. Also closes PostHog/posthog#3 and resolves https://github.com/PostHog/posthog-js/issues/4; "
        "see #99 (not closed). Fixes #12 again."
    )
    assert closed_issues(body, JS) == [(JS, 12), ("PostHog/posthog", 3), (JS, 4)]
