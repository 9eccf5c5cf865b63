"""Answer httpx requests from recorded JSON (offline `triagebot demo`), through the real adapters.

The recording is a dict:

    {"routes": [
        {"name": "posthog-js flags issues",            # for humans
         "method": "GET",                              # default GET
         "path": "/search/issues",                     # matched as a suffix of the request path
         "q_repo": ["PostHog/posthog-js"],             # each must be a `repo:` token of the `q` param
         "q_all": ["is:issue"],                        # each must be in `q` (case-insensitive)
         "q_any": ["flag", "isFeatureEnabled"],        # at least one must be in `q` (if given)
         "q_none": ["is:pr"],                          # none may be in `q`
         "status": 200, "headers": {}, "json": {...}}  # or "text": "raw body"
     ]}

The first matching route answers. Unmatched `/search/issues` requests get an empty search result;
anything else unmatched gets 404 `{"message": "Not Found"}`. Suffix matching keeps a base URL prefix
(GitHub Enterprise `/api/v3`) irrelevant.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import httpx

EMPTY_SEARCH: dict[str, Any] = {"total_count": 0, "incomplete_results": False, "items": []}


def _matches(route: dict[str, Any], request: httpx.Request) -> bool:
    if str(route.get("method", "GET")).upper() != request.method.upper():
        return False
    path = str(route.get("path") or "")
    if path and not request.url.path.rstrip("/").endswith(path.rstrip("/")):
        return False
    q = request.url.params.get("q", "")
    lowered = q.lower()
    tokens = q.replace("(", " ").replace(")", " ").split()  # "(repo:A OR repo:B)" names both
    repos = {tok[5:].lower() for tok in tokens if tok.lower().startswith("repo:")}
    if any(str(r).lower() not in repos for r in route.get("q_repo") or []):
        return False
    if any(str(s).lower() not in lowered for s in route.get("q_all") or []):
        return False
    if any(str(s).lower() in lowered for s in route.get("q_none") or []):
        return False
    anyof = route.get("q_any") or []
    return not anyof or any(str(s).lower() in lowered for s in anyof)


def _answer(route: dict[str, Any]) -> httpx.Response:
    status = int(route.get("status", 200))
    headers = {str(k): str(v) for k, v in (route.get("headers") or {}).items()}
    if "text" in route:
        return httpx.Response(status, headers=headers, text=str(route["text"]))
    return httpx.Response(status, headers=headers, json=route.get("json"))


def replay_transport(routes: dict[str, Any]) -> httpx.MockTransport:
    """An httpx transport answering from `routes` (see the module docstring); offline."""
    table = [r for r in routes.get("routes") or [] if isinstance(r, dict)]

    def handle(request: httpx.Request) -> httpx.Response:
        for route in table:
            if _matches(route, request):
                return _answer(route)
        if request.url.path.endswith("/search/issues"):
            return httpx.Response(200, json=EMPTY_SEARCH)
        return httpx.Response(404, json={"message": "Not Found"})

    return httpx.MockTransport(handle)


def load_recorded(name: str) -> dict[str, Any]:
    """A bundled recording from integrations/recorded/ ("github" or "registries", with or without .json)."""
    filename = name if name.endswith(".json") else f"{name}.json"
    text = (resources.files("integrations") / "recorded" / filename).read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data
