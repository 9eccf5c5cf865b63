"""A fake GitHub REST API on 127.0.0.1: `OfflineGitHub` (GitHub's search rules, pagination, redirects)
served over HTTP, plus scripted failures and request counters.

The rules and their sources are in `integrations/github/offline.py`; this file only adds HTTP and
failures. Repositories that exist: the ones that hold loaded issues or releases, plus every repository
the bundled SDK catalogue and playbooks name (they are real PostHog repositories); a `repo:` naming
anything else gets GitHub's 422 "Validation Failed".

Load a labelled set (issues, fix PRs and distractors) with `load(...)` or `GitHubFake.from_data(...)`
(the format of `integrations/recorded/github.json`); `history_releases(repo)` gives the real release
history of a PostHog SDK repo from ../shared/data/github/posthog-sdk-history.json.

Scripted failures are queued per endpoint kind ("search", "issue", "timeline", "releases", "pulls")
and consumed one per request:

    "429"           429 with Retry-After: 1
    "429-long"      429 with Retry-After: 120 (longer than any sane cap)
    "403"           403 primary limit: x-ratelimit-remaining 0, x-ratelimit-reset = now + 2 s
    "403-secondary" 403 secondary limit: "You have exceeded a secondary rate limit", no Retry-After,
                    x-ratelimit-remaining > 0 (GitHub's docs: then wait at least one minute)
    "403-plain"     403 without any rate-limit signal (a permissions problem)
    "500"           500 Internal Server Error
    "malformed"     200 with a body that is not JSON
    "slow"          answers normally after `slow_s` seconds
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from aiohttp import web

from integrations.github.offline import OfflineGitHub, issue_item, release_item
from tests.fakes.http import FakeServer, json_response
from triage.playbooks import bundled_playbooks, bundled_sdk_catalogue

HISTORY = Path(__file__).resolve().parents[1] / "data" / "github_history.json"


def known_repos() -> set[str]:
    names = {r for spec in bundled_sdk_catalogue() for r in spec.all_repos()}
    for book in bundled_playbooks().values():
        names |= set(book.github_repos) | set(book.sdk_repos.values())
    return {n.lower() for n in names}


@cache
def _history() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(HISTORY.read_text("utf-8"))
    return data


def history_releases(repo: str) -> list[dict[str, Any]]:
    """The real releases of a PostHog SDK repo (tag, date, the PRs its CHANGELOG section names), newest
    first; the body is rebuilt as a changesets-style section naming those PRs."""
    out = []
    for tag, published_at, prerelease, prs in _history()["releases"].get(repo, []):
        version = tag.rsplit("@", 1)[-1].lstrip("v")
        lines = [f"- [#{n}](https://github.com/{repo}/pull/{n})" for n in prs]
        body = "\n".join([f"## {version}", "", "### Patch Changes", "", *lines])
        out.append(release_item(repo, tag, published_at, body, prerelease=prerelease))
    return out


def history_prs(repo: str) -> list[dict[str, Any]]:
    """Real merged PRs of a PostHog SDK repo (squash subjects, no body): realistic search distractors."""
    return [
        issue_item(
            r,
            int(number),
            title,
            state="closed",
            user="posthogbot",
            created_at=merged_at,
            merged_at=merged_at,
            merge_commit_sha=sha,
        )
        for r, number, title, merged_at, sha in _history()["merged_prs"]
        if r == repo and merged_at
    ]


@dataclass
class GitHubFake(FakeServer):
    prefix: str = ""
    world: OfflineGitHub = field(default_factory=lambda: OfflineGitHub(repos=known_repos()))
    failures: dict[str, list[str]] = field(default_factory=dict)  # endpoint kind → scripted failures
    search_delay_s: float = 0.0
    slow_s: float = 1.0
    in_flight: int = 0
    max_in_flight: int = 0
    search_times: list[float] = field(default_factory=list)

    @classmethod
    def from_data(cls, data: dict[str, Any], **kwargs: Any) -> GitHubFake:
        fake = cls(**kwargs)
        loaded = OfflineGitHub.from_data(data)
        fake.world.add(*loaded.items.values())
        for repo, releases in loaded.releases.items():
            fake.world.add_releases(repo, releases)
        fake.world.timelines.update(loaded.timelines)
        fake.world.redirects.update(loaded.redirects)
        fake.world.repos |= loaded.repos
        return fake

    def load(
        self, *items: dict[str, Any], releases: dict[str, list[dict[str, Any]]] | None = None
    ) -> GitHubFake:
        """Add issues/PRs (`issue_item` dicts) and releases (`release_item` dicts, per repo)."""
        self.world.add(*items)
        for repo, rows in (releases or {}).items():
            self.world.add_releases(repo, rows)
        return self

    def routes(self, app: web.Application) -> None:
        app.router.add_get(f"{self.prefix}/{{tail:.*}}", self._handle)

    def fail(self, kind: str, *failures: str) -> None:
        self.failures.setdefault(kind, []).extend(failures)

    def searches(self) -> list[dict[str, str]]:
        """The query parameters of every search request received."""
        return [r.query for r in self.calls() if r.path.endswith("/search/issues")]

    @staticmethod
    def _kind(path: str) -> str:
        if path.endswith("/search/issues"):
            return "search"
        if path.endswith("/timeline"):
            return "timeline"
        if path.endswith("/releases"):
            return "releases"
        if "/pulls" in path:
            return "pulls"
        return "issue"

    async def _scripted(self, kind: str) -> web.Response | None:
        queue = self.failures.get(kind) or []
        if not queue:
            return None
        failure = queue.pop(0)
        if failure == "429":
            return json_response({"message": "slow down"}, 429, {"Retry-After": "1"})
        if failure == "429-long":
            return json_response({"message": "slow down"}, 429, {"Retry-After": "120"})
        if failure == "403":
            headers = {
                "x-ratelimit-limit": "30",
                "x-ratelimit-remaining": "0",
                "x-ratelimit-reset": str(int(time.time()) + 2),
                "x-ratelimit-resource": "search",
            }
            return json_response({"message": "API rate limit exceeded"}, 403, headers)
        if failure == "403-secondary":
            headers = {
                "x-ratelimit-limit": "30",
                "x-ratelimit-remaining": "17",
                "x-ratelimit-resource": "search",
            }
            body = {
                "message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
                "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api",
            }
            return json_response(body, 403, headers)
        if failure == "403-plain":
            return json_response({"message": "Resource not accessible by integration"}, 403)
        if failure == "500":
            return json_response({"message": "Server Error"}, 500)
        if failure == "malformed":
            return web.Response(
                status=200, text='{"total_count": 1, "items": [', content_type="application/json"
            )
        if failure == "slow":
            await asyncio.sleep(self.slow_s)
            return None
        raise AssertionError(f"unknown scripted failure {failure!r}")

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        kind = self._kind(request.path)
        if kind == "search":
            return await self._search(request)
        failed = await self._scripted(kind)
        return failed if failed is not None else self._answer(request)

    async def _search(self, request: web.Request) -> web.StreamResponse:
        """`GET /search/issues` (a hook: subclasses add latency or gates around it)."""
        self.search_times.append(time.monotonic())
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.search_delay_s:
                await asyncio.sleep(self.search_delay_s)
            failed = await self._scripted("search")
            return failed if failed is not None else self._answer(request)
        finally:
            self.in_flight -= 1

    def _answer(self, request: web.Request) -> web.StreamResponse:
        url = str(request.url).replace(f"{self.url}{self.prefix}", "https://api.github.com", 1)
        status, headers, body = self.world.handle("GET", url)
        public = f"{self.url}{self.prefix}"
        headers = {k: v.replace("https://api.github.com", public) for k, v in headers.items()}
        return json_response(body, status, headers)
