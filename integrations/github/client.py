"""HTTP I/O with the GitHub REST API: headers, retries, rate limits, pagination, redirects.

- Retries, `Retry-After`, `x-ratelimit-reset` and the one-minute rule for secondary rate limits that
  name no wait live in `integrations.http.request_with_retries`. A wait longer than the cap
  (`max_wait_s`) is not waited for: the call fails `rate_limited`, and the client remembers until when
  that resource (search / core) is blocked so later calls of the same run fail at once instead of
  hammering GitHub ("Continuing to make requests while you are rate limited may result in the banning
  of your integration", github/docs rate-limits page).
- Pagination follows the `Link` header (`rel="next"`, `rel="last"`); `per_page` is at most 100.
- Redirects are followed (GitHub answers 301 for a renamed repository).
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import httpx

from integrations.http import SourceHttpError, json_body, request_with_retries

USER_AGENT = "triagebot"
_LINK = re.compile(r'<([^>]+)>\s*;\s*rel="([^"]+)"')


def parse_link(header: str | None) -> dict[str, str]:
    """`Link: <url>; rel="next", <url>; rel="last"` → {"next": url, "last": url}."""
    return {rel: url for url, rel in _LINK.findall(header or "")}


def page_number(url: str | None) -> int | None:
    found = re.search(r"[?&]page=(\d+)", url or "")
    return int(found.group(1)) if found else None


def headers(token: str) -> dict[str, str]:
    out = {
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": "2022-11-28",
        "User-Agent": USER_AGENT,
    }
    if token:
        out["Authorization"] = f"Bearer {token}"
    return out


class GitHubClient:
    """One run's view of the API (one httpx client); rate-limit blocks are shared via `blocked`."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        api_url: str,
        *,
        timeout_s: float,
        max_retries: int,
        max_wait_s: float,
        backoff_s: float,
        search_limiter: asyncio.Semaphore,
        blocked: dict[str, float],
    ) -> None:
        self.http = http
        self.api_url = api_url.rstrip("/")
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.max_wait_s = max_wait_s
        self.backoff_s = backoff_s
        self.search_limiter = search_limiter
        self.blocked = blocked
        # list pages read in this run (several followed hits in one repo share its release pages)
        self._pages: dict[str, asyncio.Future[tuple[list[Any], dict[str, str]]]] = {}

    async def get(
        self, path: str, params: dict[str, str | int] | None = None, *, search: bool = False
    ) -> tuple[Any, httpx.Headers]:
        """GET `path` (or a full URL) → (decoded JSON, response headers); raises `SourceHttpError`."""
        resource = "search" if search else "core"
        service = "GitHub search" if search else "GitHub"
        until = self.blocked.get(resource, 0.0)
        wait = until - time.time()
        if wait > 0:
            raise SourceHttpError(
                "rate_limited", f"{service}: rate limited, retry in {wait:.0f} s", retry_after_s=wait
            )
        url = path if path.startswith("http") else f"{self.api_url}{path}"
        try:
            response = await request_with_retries(
                self.http,
                "GET",
                url,
                params=params,
                timeout_s=self.timeout_s,
                max_retries=self.max_retries,
                limiter=self.search_limiter if search else None,
                max_wait_s=self.max_wait_s,
                backoff_s=self.backoff_s,
                service=service,
            )
        except SourceHttpError as exc:
            if exc.kind == "rate_limited" and exc.retry_after_s:
                self.blocked[resource] = max(until, time.time() + exc.retry_after_s)
            raise
        return json_body(response, service=service), response.headers

    async def get_dict(self, path: str, params: dict[str, str | int] | None = None) -> dict[str, Any]:
        data, _ = await self.get(path, params)
        if not isinstance(data, dict):
            raise SourceHttpError("malformed", f"GitHub {path}: expected a JSON object")
        return data

    async def get_page(
        self, path: str, params: dict[str, str | int] | None = None
    ) -> tuple[list[Any], dict[str, str]]:
        """One page of a list endpoint → (rows, links); read once per run (a failure is not kept)."""
        key = f"{path}?{sorted((params or {}).items())}"
        pending = self._pages.get(key)
        if pending is None:
            pending = self._pages[key] = asyncio.get_running_loop().create_future()
            try:
                data, response_headers = await self.get(path, params)
                if not isinstance(data, list):
                    raise SourceHttpError("malformed", f"GitHub {path}: expected a JSON list")
            except asyncio.CancelledError:
                del self._pages[key]
                pending.cancel()
                raise
            except Exception as exc:
                del self._pages[key]
                pending.set_exception(exc)
                pending.exception()  # retrieved: a caller that is not waiting must not log it
                raise
            pending.set_result((data, parse_link(response_headers.get("link"))))
        rows, links = await asyncio.shield(pending)
        return list(rows), links

    async def get_all(self, path: str, *, max_pages: int, per_page: int = 100) -> list[Any]:
        """Every row of a list endpoint, following `rel="next"` for at most `max_pages` pages."""
        rows, links = await self.get_page(path, {"per_page": per_page})
        pages = 1
        while links.get("next") and pages < max_pages:
            more, links = await self.get_page(links["next"])
            rows += more
            pages += 1
        return rows

    async def search(self, q: str, *, search_type: str = "", per_page: int = 10) -> list[dict[str, Any]]:
        """`GET /search/issues` (advanced search; `search_type=semantic` when asked) → items."""
        params: dict[str, str | int] = {"q": q, "per_page": per_page}
        if search_type:
            params["search_type"] = search_type
        else:
            params["advanced_search"] = "true"
        body, _ = await self.get("/search/issues", params, search=True)
        items = body.get("items") if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise SourceHttpError("malformed", "GitHub search: response has no items list")
        return [i for i in items if isinstance(i, dict) and "number" in i]
