"""A fake GitHub REST API (search/issues, issue, timeline, releases) with scripted failures.

Serve it under a path prefix (`prefix="/api/v3"`) to act like GitHub Enterprise. Scripted failures are
queued per endpoint kind ("search", "issue", "timeline", "releases") and consumed one per request:

    "429"        429 with Retry-After: 1
    "429-long"   429 with Retry-After: 120 (longer than any sane cap)
    "403"        403 rate limit: x-ratelimit-remaining 0, x-ratelimit-reset = whole second now + 2
    "403-plain"  403 without any rate-limit signal (a permissions problem)
    "500"        500 Internal Server Error
    "malformed"  200 with a body that is not JSON
    "slow"       answers normally after `slow_s` seconds

The fake counts concurrent search requests (`max_in_flight`) and records when each search arrived.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.http import FakeServer, json_response

API = "https://api.github.com"
WEB = "https://github.com"


def make_issue(
    repo: str,
    number: int,
    title: str,
    *,
    state: str = "open",
    body: str = "",
    labels: list[str] | None = None,
    merged_at: str | None = None,
    pull: bool = False,
    closed_at: str | None = None,
) -> dict[str, Any]:
    """An item shaped like GitHub's search/issue JSON (a PR when `pull` or `merged_at` is given)."""
    is_pull = pull or merged_at is not None
    item: dict[str, Any] = {
        "url": f"{API}/repos/{repo}/issues/{number}",
        "repository_url": f"{API}/repos/{repo}",
        "html_url": f"{WEB}/{repo}/{'pull' if is_pull else 'issues'}/{number}",
        "number": number,
        "title": title,
        "state": state,
        "state_reason": "completed" if state == "closed" else None,
        "labels": [{"name": name, "color": "ededed"} for name in labels or []],
        "user": {"login": "dev"},
        "comments": 1,
        "created_at": "2026-11-01T10:00:00Z",
        "updated_at": closed_at or "2026-11-01T10:00:00Z",
        "closed_at": closed_at,
        "body": body,
    }
    if is_pull:
        item["pull_request"] = {
            "url": f"{API}/repos/{repo}/pulls/{number}",
            "html_url": f"{WEB}/{repo}/pull/{number}",
            "merged_at": merged_at,
        }
    return item


def cross_reference(pr: dict[str, Any]) -> dict[str, Any]:
    return {
        "event": "cross-referenced",
        "created_at": "2026-11-10T00:00:00Z",
        "source": {"type": "issue", "issue": pr},
    }


def make_release(tag: str, published_at: str, body: str = "", *, draft: bool = False) -> dict[str, Any]:
    return {
        "tag_name": tag,
        "name": tag,
        "draft": draft,
        "prerelease": False,
        "published_at": published_at,
        "html_url": f"{WEB}/releases/tag/{tag}",
        "body": body,
    }


@dataclass
class GitHubFake(FakeServer):
    prefix: str = ""
    # search: first rule whose every substring is in q wins → its items
    search_rules: list[tuple[list[str], list[dict[str, Any]]]] = field(default_factory=list)
    issues: dict[str, dict[str, Any]] = field(default_factory=dict)  # "owner/repo#N" → issue
    timelines: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # "owner/repo#N" → events
    releases: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # "owner/repo" → releases
    failures: dict[str, list[str]] = field(default_factory=dict)  # endpoint kind → scripted failures
    search_delay_s: float = 0.0
    slow_s: float = 1.0
    in_flight: int = 0
    max_in_flight: int = 0
    search_times: list[float] = field(default_factory=list)

    def routes(self, app: web.Application) -> None:
        p = self.prefix
        app.router.add_get(f"{p}/search/issues", self._search)
        app.router.add_get(f"{p}/repos/{{owner}}/{{repo}}/issues/{{number}}", self._issue)
        app.router.add_get(f"{p}/repos/{{owner}}/{{repo}}/issues/{{number}}/timeline", self._timeline)
        app.router.add_get(f"{p}/repos/{{owner}}/{{repo}}/releases", self._releases)
        app.router.add_get(f"{p}/rate_limit", self._rate_limit)

    def fail(self, kind: str, *failures: str) -> None:
        self.failures.setdefault(kind, []).extend(failures)

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
            reset = str(int(time.time()) + 2)  # epoch seconds: the wait is between 1 and 2 s
            headers = {
                "x-ratelimit-remaining": "0",
                "x-ratelimit-reset": reset,
                "x-ratelimit-resource": "search",
            }
            return json_response({"message": "API rate limit exceeded"}, 403, headers)
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

    async def _search(self, request: web.Request) -> web.StreamResponse:
        self.search_times.append(time.monotonic())
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.search_delay_s:
                await asyncio.sleep(self.search_delay_s)
            failed = await self._scripted("search")
            if failed is not None:
                return failed
            q = request.query.get("q", "").lower()
            items: list[dict[str, Any]] = []
            for needles, found in self.search_rules:
                if all(n.lower() in q for n in needles):
                    items = found
                    break
            return json_response({"total_count": len(items), "incomplete_results": False, "items": items})
        finally:
            self.in_flight -= 1

    async def _rate_limit(self, request: web.Request) -> web.StreamResponse:
        search = {"limit": 30, "remaining": 29, "reset": int(time.time()) + 60, "used": 1}
        return json_response({"resources": {"search": search}, "rate": search})

    def _key(self, request: web.Request) -> str:
        info = request.match_info
        return f"{info['owner']}/{info['repo']}#{info['number']}"

    async def _issue(self, request: web.Request) -> web.StreamResponse:
        failed = await self._scripted("issue")
        if failed is not None:
            return failed
        issue = self.issues.get(self._key(request))
        return json_response(issue) if issue else json_response({"message": "Not Found"}, 404)

    async def _timeline(self, request: web.Request) -> web.StreamResponse:
        failed = await self._scripted("timeline")
        if failed is not None:
            return failed
        return json_response(self.timelines.get(self._key(request), []))

    async def _releases(self, request: web.Request) -> web.StreamResponse:
        failed = await self._scripted("releases")
        if failed is not None:
            return failed
        info = request.match_info
        return json_response(self.releases.get(f"{info['owner']}/{info['repo']}", []))
