"""The offline GitHub (demo replay and test fake) follows GitHub's own search rules and REST shapes.

Each rule's source is noted in integrations/github/offline.py. A query real GitHub answers with
nothing must answer nothing here too.
"""

from __future__ import annotations

import httpx
import pytest

from integrations.github.offline import OfflineGitHub, QueryError, issue_item, offline_transport, release_item
from tests.fakes.github import GitHubFake, history_releases

JS, MONO = "PostHog/posthog-js", "PostHog/posthog"


def world() -> OfflineGitHub:
    return OfflineGitHub().add(
        issue_item(
            JS,
            1,
            "Survey fails to display after being closed",
            body="posthog.displaySurvey() twice",
            state="closed",
            labels=["bug", "feature/surveys"],
            updated_at="2026-01-02T00:00:00Z",
        ),
        issue_item(JS, 2, "Flags reload", body="isFeatureEnabled is false after identify", labels=["bug"]),
        issue_item(MONO, 3, "Survey popover styling", body="the survey popover ignores dark mode"),
        issue_item(
            JS,
            4,
            "fix(surveys): clean up popover surveys from dom on close",
            body="Closes #1.",
            state="closed",
            merged_at="2026-01-03T00:00:00Z",
            merge_commit_sha="a" * 40,
        ),
    )


def numbers(body: dict) -> list[int]:
    return [item["number"] for item in body["items"]]


def test_every_bare_term_must_match_title_or_body_case_insensitively() -> None:
    w = world()
    assert numbers(w.search("SURVEY closed")) == [1]
    assert numbers(w.search("survey reload")) == []
    assert numbers(w.search("displaysurvey")) == [1]  # a word of "posthog.displaySurvey()"
    assert numbers(w.search("display")) == [1]  # a word of the title, not a substring
    assert numbers(w.search("displ")) == []  # GitHub matches words, not substrings


def test_in_title_quoted_phrase_and_negation() -> None:
    w = world()
    assert numbers(w.search("displaySurvey in:title")) == []
    assert numbers(w.search("survey in:title is:issue")) == [3, 1] or numbers(
        w.search("survey in:title is:issue")
    ) == [1, 3]
    assert numbers(w.search('"after being closed"')) == [1]
    assert numbers(w.search('"closed being after"')) == []
    assert numbers(w.search("survey -popover is:issue")) == [1]


def test_repeated_repo_qualifiers_are_anded_unless_grouped_with_or() -> None:
    w = world()
    assert numbers(w.search(f"survey repo:{JS} repo:{MONO}")) == []
    assert sorted(numbers(w.search(f"survey (repo:{JS} OR repo:{MONO}) is:issue"))) == [1, 3]
    assert numbers(w.search(f"survey repo:{MONO}")) == [3]


def test_is_type_state_and_label_qualifiers() -> None:
    w = world()
    assert numbers(w.search("survey is:issue is:pr")) == []
    assert numbers(w.search("surveys is:pr")) == [4]
    assert numbers(w.search("survey is:issue is:closed")) == [1]
    assert numbers(w.search("survey is:open")) == [3]
    assert numbers(w.search("label:bug label:feature/surveys")) == [1]
    assert sorted(numbers(w.search("label:feature/surveys,enhancement is:issue"))) == [1]
    assert sorted(numbers(w.search("is:issue -label:bug"))) == [3]


def test_response_shape_and_best_match_first() -> None:
    body = world().search("survey popover")
    assert set(body) == {"total_count", "incomplete_results", "items"}
    assert body["total_count"] == 2 and body["incomplete_results"] is False
    item = body["items"][0]
    for key in (
        "url",
        "repository_url",
        "html_url",
        "number",
        "title",
        "state",
        "state_reason",
        "labels",
        "user",
        "comments",
        "created_at",
        "updated_at",
        "closed_at",
        "body",
        "score",
    ):
        assert key in item
    assert {"pull_request" in i for i in body["items"]} == {True, False}
    assert not any(k.startswith("_") for i in body["items"] for k in i)
    ranked = OfflineGitHub().add(
        issue_item(JS, 10, "Dark mode", body="the popover", updated_at="2026-05-01T00:00:00Z"),
        issue_item(JS, 11, "Popover is dark", body="", updated_at="2026-01-01T00:00:00Z"),
    )
    assert numbers(ranked.search("popover dark")) == [11, 10]  # title hits first, then recency


def test_validation_failed_like_github() -> None:
    w = world()
    with pytest.raises(QueryError):
        w.search("x" * 257)
    with pytest.raises(QueryError):
        w.search("a OR b OR c OR d OR e OR f OR g")
    with pytest.raises(QueryError):
        w.search("survey repo:nobody/nothing")
    with pytest.raises(QueryError):
        w.search("(survey")


def test_semantic_search_ranks_by_overlap_and_keeps_qualifiers() -> None:
    w = world()
    assert numbers(w.search("survey closed reload", search_type="")) == []
    ranked = numbers(w.search("survey closed reload is:issue", search_type="semantic"))
    assert ranked[0] == 1 and 2 in ranked and 4 not in ranked


async def test_pagination_link_headers_and_redirect_for_renamed_repo() -> None:
    w = OfflineGitHub().add_releases(JS, history_releases(JS)[:250])
    w.redirects["posthog/old-js"] = JS
    async with httpx.AsyncClient(transport=offline_transport(w), follow_redirects=True) as client:
        first = await client.get(f"https://api.github.com/repos/{JS}/releases", params={"per_page": 100})
        assert len(first.json()) == 100
        links = first.headers["link"]
        assert 'rel="next"' in links and 'rel="last"' in links and "page=3" in links
        third = await client.get(
            f"https://api.github.com/repos/{JS}/releases", params={"per_page": 100, "page": 3}
        )
        assert len(third.json()) == 50 and 'rel="next"' not in third.headers["link"]
        moved = await client.get("https://api.github.com/repos/PostHog/old-js/releases")
        assert moved.history and moved.history[0].status_code == 301 and moved.status_code == 200


def test_fake_serves_the_same_rules_over_http() -> None:
    fake = GitHubFake().load(
        *world().items.values(), releases={JS: [release_item(JS, "posthog-js@1.0.0", "2026-01-04T00:00:00Z")]}
    )
    with fake:
        r = httpx.get(f"{fake.url}/search/issues", params={"q": f"survey repo:{JS} repo:{MONO}"})
        assert r.status_code == 200 and r.json()["items"] == []
        r = httpx.get(f"{fake.url}/search/issues", params={"q": "survey repo:nobody/nothing"})
        assert r.status_code == 422 and r.json()["message"] == "Validation Failed"
        timeline = httpx.get(f"{fake.url}/repos/{JS}/issues/1/timeline").json()
        assert [e["event"] for e in timeline] == ["cross-referenced", "closed"]
        assert timeline[1]["commit_id"] == "a" * 40
        pulls = httpx.get(f"{fake.url}/repos/{JS}/commits/{'a' * 40}/pulls").json()
        assert pulls[0]["number"] == 4 and pulls[0]["merged_at"]
