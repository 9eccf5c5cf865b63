"""`GitHubSource`: known bugs in the playbook's GitHub repos (issue/PR search + fix follow-up).

Plan: one task per repo scope (the SDK repos of the SDKs the ticket names first, then the playbook's
`github_repos`; at most 3) with 2–3 short query variants each, plus one `is:pr` task across all repos:
at most 4 tasks. Queries never carry customer identifiers (distinct ids, emails, flag keys, URLs…):
only symptom words, SDK API names, sanitised error text and the SDK name/version.

Execute: the task's queries run concurrently under a per-source search semaphore (GitHub allows ~30
searches/min with a token, 10 without), the top 3 hits per query become evidence rows, deduplicated
within the task. The best *strong* match (scoring below) is followed up in the same task: the issue,
its timeline (cross-referenced merged PR = the fix), and the repo's releases (first release published
after the merge whose notes mention the PR, else the first release after the merge).

Scoring (also in docs/readme/github-registries.md): each specific term (API name, symptom word, error
snippet) found in the title scores 2, found only in the body 1; any generic area term (the playbook's
`search_terms`) +1 once; the customer's SDK version in title/body +2; the SDK name +1.
Strong = score ≥ 4 and (version mentioned or ≥ 2 specific title terms).
Exact = strong, version mentioned and ≥ 2 specific title terms.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx

from integrations.http import SourceHttpError, get_json
from integrations.registries import compare_versions, version_from_tag
from triage.models import Evidence, EvidenceStatus, Intake, ResearchTask

if TYPE_CHECKING:
    from triage.playbooks import Playbook

USER_AGENT = "triagebot"
MAX_QUERY_CHARS = 256
HITS_PER_QUERY = 3
MAX_REPO_TASKS = 3
MAX_TASKS = 4

# SDK API names worth searching for (matched case-insensitively in the intake's keywords).
KNOWN_APIS = (
    "isFeatureEnabled",
    "getFeatureFlag",
    "getFeatureFlagPayload",
    "getAllFlags",
    "onFeatureFlags",
    "reloadFeatureFlags",
    "identify",
    "alias",
    "reset",
    "group",
    "capture",
    "register",
    "opt_out_capturing",
    "startSessionRecording",
    "stopSessionRecording",
    "getActiveMatchingSurveys",
    "captureException",
    "setPersonPropertiesForFlags",
    "bootstrap",
)
_API_BY_LOWER = {api.lower(): api for api in KNOWN_APIS}
_CAMEL_RE = re.compile(r"\b[a-z]+(?:[A-Z][a-z0-9]+)+\b")
_CALL_RE = re.compile(r"\b(?:posthog\.)?([A-Za-z_][A-Za-z0-9_]{2,})\(")
_STOPWORDS = {
    "a", "an", "the", "and", "or", "not", "no", "is", "are", "was", "it", "its", "in", "on", "of", "to",
    "for", "with", "since", "after", "before", "from", "our", "we", "my", "i", "issue", "issues", "bug",
    "problem", "posthog", "help", "please", "urgent", "error", "errors", "working", "work", "doesn't",
    "does", "can't", "cannot", "users", "user", "customer", "customers",
}  # fmt: skip
_IDENTIFIER_LIKE = re.compile(
    r"@|://|\\|[0-9a-f]{12,}|\d{5,}|\b(?:phc|phx|ghp|gho|sk|xox[a-z])[_-]|[0-9a-f]{8}-[0-9a-f]{4}-", re.I
)
_CLOSING_RE = r"(?:close[sd]?|fix(?:e[sd])?|resolve[sd]?)\s*:?\s+(?:[\w.-]+/[\w.-]+)?#{n}\b"


# ---------------------------------------------------------------- planning


@dataclass
class _Terms:
    apis: list[str] = field(default_factory=list)
    words: list[str] = field(default_factory=list)  # symptom words / phrases
    errors: list[str] = field(default_factory=list)  # sanitised error snippets
    extra: list[str] = field(default_factory=list)  # playbook search terms

    @property
    def core(self) -> list[str]:
        return _unique([*self.apis, *self.words, *self.extra])

    @property
    def match_terms(self) -> list[str]:
        return _unique([*self.apis, *self.words, *self.errors, *self.extra])

    @property
    def specific(self) -> list[str]:
        """Terms that say something about this ticket (not just the product area)."""
        generic = {t.lower() for t in self.extra}
        return [t for t in _unique([*self.apis, *self.words, *self.errors]) if t.lower() not in generic]


def _unique(items: list[str]) -> list[str]:
    seen: set[str] = set()
    out: list[str] = []
    for item in items:
        key = item.lower()
        if item and key not in seen:
            seen.add(key)
            out.append(item)
    return out


def _private_values(intake: Intake) -> list[str]:
    ids = intake.identifiers
    values = [
        *ids.distinct_ids,
        *ids.person_ids,
        *ids.emails,
        *ids.flag_keys,
        *ids.event_names,
        *ids.fingerprints,
        *ids.survey_ids,
        *ids.urls,
        *ids.hosts,
    ]
    return [v.lower() for v in values if len(v) >= 3]


def _is_private(text: str, private: list[str]) -> bool:
    lowered = text.lower()
    if _IDENTIFIER_LIKE.search(text):
        return True
    return any(p in lowered or (len(lowered) >= 4 and lowered in p) for p in private)


def _sanitise_error(text: str, private: list[str]) -> str:
    words = []
    for raw in re.split(r"\s+", text):
        word = raw.strip("\"'`{}[]()<>,;")
        if not word or _is_private(word, private):
            continue
        words.append(word.replace('"', ""))
    snippet = ""
    for word in words:
        if len(snippet) + len(word) + 1 > 60:
            break
        snippet = f"{snippet} {word}".strip()
    return snippet if len(snippet) >= 8 else ""


def extract_terms(intake: Intake, playbook: Playbook) -> _Terms:
    """The words a GitHub query may use: API names, symptom words, error snippets, playbook terms."""
    private = _private_values(intake)
    terms = _Terms()
    for keyword in intake.symptom_keywords:
        whole = keyword.strip().removeprefix("posthog.").removesuffix("()")
        if whole.lower() in _API_BY_LOWER:
            terms.apis.append(_API_BY_LOWER[whole.lower()])
        for token in [*_CAMEL_RE.findall(keyword), *_CALL_RE.findall(keyword)]:
            api = _API_BY_LOWER.get(token.lower())
            if api or not _is_private(token, private):
                terms.apis.append(api or token)
    for message in intake.identifiers.error_messages:  # only well-known API names from error text
        for token in [*_CAMEL_RE.findall(message), *_CALL_RE.findall(message)]:
            if token.lower() in _API_BY_LOWER:
                terms.apis.append(_API_BY_LOWER[token.lower()])
    api_lower = {a.lower() for a in terms.apis}
    for keyword in intake.symptom_keywords:
        word = keyword.replace('"', " ").replace("`", " ").replace("()", " ")
        for api in terms.apis:  # the API names are terms of their own
            word = re.sub(rf"(?<![\w.])(?:posthog\.)?{re.escape(api)}(?!\w)", " ", word, flags=re.I)
        word = re.sub(r"\s+", " ", word).strip(" .,:;")
        if (
            len(word) < 3
            or len(word) > 40
            or word.lower() in _STOPWORDS
            or word.lower() in api_lower
            or _is_private(word, private)
        ):
            continue
        terms.words.append(word)
    for message in intake.identifiers.error_messages:
        snippet = _sanitise_error(message, private)
        if snippet:
            terms.errors.append(snippet)
    terms.extra = [t for t in playbook.search_terms if t and not _is_private(t, private)]
    if not (terms.apis or terms.words or terms.errors or terms.extra):
        area = intake.product_area.replace("_", " ")
        if area != "other":
            terms.extra = [area]
    terms.apis = _unique(terms.apis)[:4]
    terms.words = _unique(terms.words)[:6]
    terms.errors = _unique(terms.errors)[:2]
    return terms


def _fmt(term: str) -> str:
    return f'"{term}"' if " " in term else term


def build_query(text_terms: list[str], qualifiers: list[str]) -> str:
    """Terms + qualifiers, dropping trailing terms until the whole query fits in 256 characters."""
    quals = " ".join(qualifiers)
    terms = [_fmt(t) for t in text_terms if t]
    while terms:
        query = f"{' '.join(terms)} {quals}".strip()
        if len(query) <= MAX_QUERY_CHARS:
            return query
        terms.pop()
    return quals[:MAX_QUERY_CHARS]


# ---------------------------------------------------------------- scoring


@dataclass
class _Score:
    points: int
    title_terms: list[str]
    body_terms: list[str]
    version_mentioned: bool
    sdk_mentioned: bool

    @property
    def strong(self) -> bool:
        return self.points >= 4 and (self.version_mentioned or len(self.title_terms) >= 2)

    @property
    def exact(self) -> bool:
        return self.strong and self.version_mentioned and len(self.title_terms) >= 2


def _sdk_aliases(name: str) -> list[str]:
    aliases = [name.lower()]
    short = name.lower().removeprefix("posthog-")
    if short != name.lower() and len(short) >= 5:
        aliases += [short, short.replace("-", " ")]
    return aliases


def score_hit(
    title: str, body: str, terms: list[str], sdks: list[dict[str, Any]], generic: list[str] | None = None
) -> _Score:
    """Score a search hit against the ticket (rule in the module docstring)."""
    title_l, body_l = title.lower(), body.lower()
    generic_l = {g.lower() for g in generic or []}
    specific = [t for t in terms if t.lower() not in generic_l]
    title_terms = [t for t in specific if t.lower() in title_l]
    body_terms = [t for t in specific if t not in title_terms and t.lower() in body_l]
    text = f"{title_l}\n{body_l}"
    area_terms = [g for g in generic or [] if g.lower() in text]
    version = any(
        s.get("version") and re.search(rf"(?<![\d.]){re.escape(str(s['version']))}(?![\d])", text)
        for s in sdks
    )
    sdk = any(alias in text for s in sdks for alias in _sdk_aliases(str(s.get("name") or "")) if alias)
    points = (
        2 * len(title_terms)
        + len(body_terms)
        + (1 if area_terms else 0)
        + (2 if version else 0)
        + (1 if sdk else 0)
    )
    return _Score(points, title_terms, body_terms + area_terms, version, sdk)


# ---------------------------------------------------------------- the source


def _repo_of(item: dict[str, Any]) -> str:
    repo_url = str(item.get("repository_url") or "")
    parts = repo_url.rstrip("/").split("/")
    if len(parts) >= 2 and "/repos/" in repo_url:
        return f"{parts[-2]}/{parts[-1]}"
    html = str(item.get("html_url") or "")
    match = re.search(r"https?://[^/]+/([^/]+/[^/]+)/(?:issues|pull)/\d+", html)
    return match.group(1) if match else ""


def _labels(item: dict[str, Any]) -> list[str]:
    labels = item.get("labels") or []
    out = []
    for label in labels if isinstance(labels, list) else []:
        name = label.get("name") if isinstance(label, dict) else label
        if isinstance(name, str):
            out.append(name)
    return out


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


class GitHubSource:
    """ResearchSource "github": GitHub issue/PR search with a fix-and-release follow-up."""

    name = "github"

    def __init__(
        self,
        api_url: str = "https://api.github.com",
        token: str = "",
        *,
        search_concurrency: int = 2,
        timeout_s: float = 15,
        max_retries: int = 2,
        transport: httpx.AsyncBaseTransport | None = None,
        max_wait_s: float = 20.0,
        backoff_s: float = 0.5,
    ) -> None:
        self.api_url = (api_url or "https://api.github.com").rstrip("/")
        self._token = token
        self.search_concurrency = max(1, search_concurrency)
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.max_wait_s = max_wait_s
        self.backoff_s = backoff_s
        self._transport = transport
        self._limiters: dict[asyncio.AbstractEventLoop, asyncio.Semaphore] = {}

    # ------------------------------------------------------------ plan

    def plan(self, intake: Intake, playbook: Playbook) -> list[ResearchTask]:
        terms = extract_terms(intake, playbook)
        if not terms.match_terms:
            return []
        sdks = [{"name": s.name, "version": s.version} for s in intake.identifiers.sdks]
        scopes: list[tuple[str, dict[str, Any] | None]] = []
        seen: set[str] = set()
        for sdk in sdks:
            repo = playbook.sdk_repos.get(str(sdk["name"]))
            if repo and repo.lower() not in seen:
                seen.add(repo.lower())
                scopes.append((repo, sdk))
        for repo in playbook.github_repos:
            if repo.lower() not in seen:
                seen.add(repo.lower())
                scopes.append((repo, None))
        scopes = scopes[:MAX_REPO_TASKS]
        if not scopes:
            return []

        core = terms.core
        common = {"terms": terms.specific, "generic_terms": terms.extra, "sdks": sdks}
        tasks: list[ResearchTask] = []
        for repo, sdk in scopes:
            qualifiers = [f"repo:{repo}", "is:issue"]
            variants: list[str] = [build_query(core[:3], qualifiers)]
            if sdk is not None:
                if sdk.get("version"):
                    lead = (terms.apis or terms.extra or terms.words or [str(sdk["name"])])[:1]
                    variants.append(build_query([f'"{sdk["version"]}"', *lead], qualifiers))
                else:
                    variants.append(build_query([str(sdk["name"]), *core[:2]], qualifiers))
            if terms.errors:
                variants.append(build_query([terms.errors[0]], qualifiers))
            elif sdk is None:
                alt = _unique([*terms.words[:2], *terms.extra[:1]]) or core[1:4]
                variants.append(build_query(alt, qualifiers))
            queries = _unique([v for v in variants if v != " ".join(qualifiers)])[:3]
            if not queries:
                continue
            what = f"{sdk['name']} issues" if sdk else "issues"
            tasks.append(
                ResearchTask(
                    key=f"github:{repo}",
                    source=self.name,
                    tool="search_issues",
                    arguments={"repo": repo, "queries": queries, **common},
                    description=f"known {what} in {repo} matching the symptom",
                )
            )
        if tasks and len(tasks) < MAX_TASKS:
            repos = [repo for repo, _ in scopes]
            pr_terms = _unique(terms.apis[:1] + terms.words[:1])
            if len(pr_terms) < 2:
                pr_terms = _unique([*pr_terms, *terms.extra[:1], *core])[:2]
            quals = [*(f"repo:{r}" for r in repos), "is:pr"]
            query = build_query(pr_terms, quals)
            if query != " ".join(quals):
                tasks.append(
                    ResearchTask(
                        key="github:pulls",
                        source=self.name,
                        tool="search_pull_requests",
                        arguments={"repo": repos[0], "queries": [query], **common},
                        description="pull requests that may fix the symptom",
                    )
                )
        return tasks

    # ------------------------------------------------------------ execute

    def _limiter(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        limiter = self._limiters.get(loop)
        if limiter is None:
            self._limiters = {k: v for k, v in self._limiters.items() if not k.is_closed()}
            limiter = self._limiters[loop] = asyncio.Semaphore(self.search_concurrency)
        return limiter

    def _headers(self) -> dict[str, str]:
        headers = {
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
            "User-Agent": USER_AGENT,
        }
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        return headers

    async def _get(
        self,
        client: httpx.AsyncClient,
        path: str,
        params: dict[str, str | int] | None = None,
        *,
        search: bool = False,
        expect: type[dict[str, Any]] | type[list[Any]] = dict,
    ) -> Any:
        return await get_json(
            client,
            f"{self.api_url}{path}",
            params=params,
            timeout_s=self.timeout_s,
            max_retries=self.max_retries,
            limiter=self._limiter() if search else None,
            max_wait_s=self.max_wait_s,
            backoff_s=self.backoff_s,
            service="GitHub search" if search else "GitHub",
            expect=expect,
        )

    async def check(self) -> str:
        """For `triagebot check`: the search rate limit left for this token."""
        async with httpx.AsyncClient(transport=self._transport, headers=self._headers()) as client:
            data = await self._get(client, "/rate_limit")
        search = (data.get("resources") or {}).get("search") or {}
        who = "token" if self._token else "no token"
        return (
            f"{self.api_url} ({who}), search {search.get('remaining', '?')}/{search.get('limit', '?')} left"
        )

    async def execute(self, task: ResearchTask) -> list[Evidence]:
        started = time.monotonic()
        queries = [str(q) for q in task.arguments.get("queries") or [] if q]
        try:
            async with httpx.AsyncClient(transport=self._transport, headers=self._headers()) as client:
                return await self._execute(client, task, queries, started)
        except Exception as exc:  # never raise out of execute
            return [self._error(task, " | ".join(queries), exc, started)]

    async def _search(self, client: httpx.AsyncClient, query: str) -> list[dict[str, Any]]:
        body = await self._get(client, "/search/issues", {"q": query, "per_page": 10}, search=True)
        items = body.get("items")
        if not isinstance(items, list):
            raise SourceHttpError("malformed", "GitHub search: response has no items list")
        return [i for i in items if isinstance(i, dict) and "number" in i]

    async def _execute(
        self, client: httpx.AsyncClient, task: ResearchTask, queries: list[str], started: float
    ) -> list[Evidence]:
        results = await asyncio.gather(*(self._search(client, q) for q in queries), return_exceptions=True)
        terms = [str(t) for t in task.arguments.get("terms") or []]
        generic = [str(t) for t in task.arguments.get("generic_terms") or []]
        sdks = [s for s in task.arguments.get("sdks") or [] if isinstance(s, dict)]

        errors: list[Evidence] = []
        hits: list[tuple[str, dict[str, Any], _Score]] = []
        seen: set[str] = set()
        for query, result in zip(queries, results, strict=True):
            if isinstance(result, BaseException):
                if not isinstance(result, Exception):
                    raise result
                errors.append(self._error(task, query, result, started))
                continue
            for item in result[:HITS_PER_QUERY]:
                key = str(item.get("html_url") or f"{_repo_of(item)}#{item.get('number')}")
                if key in seen:
                    continue
                seen.add(key)
                score = score_hit(
                    str(item.get("title") or ""), str(item.get("body") or ""), terms, sdks, generic
                )
                hits.append((query, item, score))

        hits.sort(key=lambda h: h[2].points, reverse=True)
        evidence: list[Evidence] = []
        followed = False
        for query, item, score in hits:
            data = self._hit_data(item, score, sdks)
            if score.strong and not followed:
                followed = True
                if data["is_pr"]:
                    data.update(await self._pr_release(client, data, sdks))
                else:
                    data.update(await self._follow_up(client, item, sdks))
            evidence.append(self._hit_evidence(task, query, item, data, started))

        if not evidence and not errors:
            what = "pull requests" if task.tool == "search_pull_requests" else "issues"
            where = task.arguments.get("repo") if task.tool == "search_issues" else "the playbook's repos"
            return [
                Evidence(
                    task_key=task.key,
                    source=self.name,
                    tool=task.tool,
                    query=" | ".join(queries),
                    status=EvidenceStatus.empty,
                    title=f"No matching GitHub {what} in {where}",
                    summary=f"{len(queries)} search(es) returned no {what}",
                    latency_ms=_ms(started),
                )
            ]
        return evidence + errors

    # ------------------------------------------------------------ rows

    def _hit_data(self, item: dict[str, Any], score: _Score, sdks: list[dict[str, Any]]) -> dict[str, Any]:
        pull = item.get("pull_request") if isinstance(item.get("pull_request"), dict) else None
        matched = [*score.title_terms, *score.body_terms]
        if score.version_mentioned:
            matched += [str(s["version"]) for s in sdks if s.get("version")]
        data: dict[str, Any] = {
            "repo": _repo_of(item),
            "number": item.get("number"),
            "is_pr": pull is not None,
            "issue_state": str(item.get("state") or ""),
            "state_reason": item.get("state_reason"),
            "labels": _labels(item),
            "score": score.points,
            "strong_match": score.strong,
            "exact_match": score.exact,
            "matched_terms": matched,
            "fix_pr_url": None,
            "fix_merged": False,
            "fixed_in": None,
        }
        if pull is not None:
            data["fix_pr_url"] = item.get("html_url")
            data["fix_merged"] = bool(pull.get("merged_at"))
            data["merged_at"] = pull.get("merged_at")
        return data

    def _hit_evidence(
        self, task: ResearchTask, query: str, item: dict[str, Any], data: dict[str, Any], started: float
    ) -> Evidence:
        repo = data["repo"]
        number = data["number"]
        kind = "PR" if data["is_pr"] else "issue"
        state = data["issue_state"] or "unknown"
        if data["is_pr"] and data["fix_merged"]:
            state = "merged"
        parts = [f"{state.capitalize()} {kind} {repo}#{number}"]
        if data["matched_terms"]:
            parts.append(f"matches {', '.join(map(str, data['matched_terms'][:6]))}")
        if data.get("labels"):
            parts.append(f"labels: {', '.join(data['labels'][:5])}")
        summary = "; ".join(parts)
        if not data["is_pr"] and data.get("fix_pr_url"):
            if data["fix_merged"]:
                fix = f"fixed by {data['fix_pr_url']} (merged)"
            else:
                fix = f"linked PR {data['fix_pr_url']} is not merged"
            if data.get("fixed_in"):
                fix += f", released in {data['fixed_in']}"
            summary += f". {fix}"
        if data.get("customer_affected") is True:
            summary += f"; customer on {data.get('customer_version')} is before the fix"
        elif data.get("customer_affected") is False:
            summary += f"; customer on {data.get('customer_version')} already has the fix"
        if data.get("workaround"):
            summary += ". A comment describes a workaround"
        if data.get("followup_error"):
            summary += f". (follow-up incomplete: {data['followup_error']})"
        body = re.sub(r"\s+", " ", str(item.get("body") or "")).strip()
        return Evidence(
            task_key=task.key,
            source=self.name,
            tool=task.tool,
            query=query,
            status=EvidenceStatus.ok,
            title=f"{repo}#{number} {item.get('title') or ''}".strip(),
            summary=summary,
            url=item.get("html_url"),
            excerpt=body[:300],
            latency_ms=_ms(started),
            data=data,
        )

    def _error(self, task: ResearchTask, query: str, exc: Exception, started: float) -> Evidence:
        kind = exc.kind if isinstance(exc, SourceHttpError) else "error"
        status = EvidenceStatus.timeout if kind == "timeout" else EvidenceStatus.error
        message = str(exc) if isinstance(exc, SourceHttpError) else f"{type(exc).__name__}: {exc}"
        return Evidence(
            task_key=task.key,
            source=self.name,
            tool=task.tool,
            query=query,
            status=status,
            title="GitHub search failed",
            summary=message[:300],
            latency_ms=_ms(started),
            data={"error_kind": kind},
        )

    # ------------------------------------------------------------ follow-up

    async def _follow_up(
        self, client: httpx.AsyncClient, item: dict[str, Any], sdks: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """Issue → fixing PR (timeline cross-references) → release that shipped it. Never raises."""
        repo = _repo_of(item)
        number = int(item["number"])
        out: dict[str, Any] = {}
        try:
            issue = await self._get(client, f"/repos/{repo}/issues/{number}")
            out["issue_state"] = str(issue.get("state") or item.get("state") or "")
            out["state_reason"] = issue.get("state_reason")
            out["closed_at"] = issue.get("closed_at")
            timeline = await self._get(
                client, f"/repos/{repo}/issues/{number}/timeline", {"per_page": 100}, expect=list
            )
            fix = _fixing_pr(timeline, repo, number)
            workaround = _workaround(timeline)
            if workaround:
                out["workaround"] = workaround
            if fix is None:
                return out
            out["fix_pr_url"] = fix["url"]
            out["fix_pr_title"] = fix["title"]
            out["fix_merged"] = fix["merged_at"] is not None
            out["merged_at"] = fix["merged_at"]
            if fix["merged_at"] is None:
                return out
            out.update(await self._release_info(client, fix["repo"], fix["number"], fix["merged_at"], sdks))
        except Exception as exc:
            out["followup_error"] = str(exc)[:200]
        return out

    async def _release_info(
        self,
        client: httpx.AsyncClient,
        repo: str,
        pr_number: Any,
        merged_at: str,
        sdks: list[dict[str, Any]],
    ) -> dict[str, Any]:
        releases = await self._get(client, f"/repos/{repo}/releases", {"per_page": 100}, expect=list)
        release = _release_after(releases, pr_number, _parse_time(merged_at), sdks)
        if release is None:
            return {}
        out: dict[str, Any] = {
            "fixed_in": version_from_tag(str(release.get("tag_name") or release.get("name") or "")),
            "release_url": release.get("html_url"),
        }
        customer = next((str(s["version"]) for s in sdks if s.get("version")), None)
        if out["fixed_in"] and customer:
            out["customer_version"] = customer
            out["customer_affected"] = compare_versions(customer, out["fixed_in"]) < 0
        return out

    async def _pr_release(
        self, client: httpx.AsyncClient, data: dict[str, Any], sdks: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """A strong match that is itself a merged PR: find the release that shipped it. Never raises."""
        if not data.get("fix_merged") or not data.get("merged_at"):
            return {}
        try:
            return await self._release_info(client, data["repo"], data["number"], data["merged_at"], sdks)
        except Exception as exc:
            return {"followup_error": str(exc)[:200]}


def _fixing_pr(timeline: list[Any], repo: str, number: int) -> dict[str, Any] | None:
    """The PR that fixed the issue, chosen from `cross-referenced` timeline events.

    Ranked: merged first, then a closing keyword ("fixes #N") in its title/body, then same repo, then
    the latest merge.
    """
    closing = re.compile(_CLOSING_RE.format(n=number), re.I)
    candidates: list[tuple[tuple[bool, bool, bool, str], dict[str, Any]]] = []
    for event in timeline:
        if not isinstance(event, dict) or event.get("event") != "cross-referenced":
            continue
        source = event.get("source") or {}
        src = source.get("issue") if isinstance(source, dict) else None
        if not isinstance(src, dict) or not isinstance(src.get("pull_request"), dict):
            continue
        pull = src["pull_request"]
        src_repo = _repo_of(src) or (src.get("repository") or {}).get("full_name") or repo
        merged_at = pull.get("merged_at")
        text = f"{src.get('title') or ''}\n{src.get('body') or ''}"
        rank = (
            merged_at is not None,
            bool(closing.search(text)),
            src_repo.lower() == repo.lower(),
            merged_at or "",
        )
        candidates.append(
            (
                rank,
                {
                    "url": src.get("html_url") or pull.get("html_url"),
                    "number": src.get("number"),
                    "title": src.get("title") or "",
                    "repo": src_repo,
                    "merged_at": merged_at,
                },
            )
        )
    if not candidates:
        return None
    return max(candidates, key=lambda c: c[0])[1]


def _workaround(timeline: list[Any]) -> str | None:
    for event in timeline:
        if isinstance(event, dict) and event.get("event") == "commented":
            body = str(event.get("body") or "")
            if "workaround" in body.lower():
                return re.sub(r"\s+", " ", body).strip()[:300]
    return None


def _release_after(
    releases: list[Any], pr_number: Any, merged_at: datetime | None, sdks: list[dict[str, Any]]
) -> dict[str, Any] | None:
    """First release published after the merge whose notes mention the PR; else the first after the merge.

    In monorepos (tags like "posthog-js@1.2.3") only the releases of the ticket's SDK packages count.
    """
    usable = [
        r
        for r in releases
        if isinstance(r, dict) and not r.get("draft") and _parse_time(r.get("published_at")) is not None
    ]
    names = [str(s.get("name") or "").lower() for s in sdks if s.get("name")]

    def for_sdk(release: dict[str, Any]) -> bool:
        tag = str(release.get("tag_name") or "").lower()
        return any(tag.startswith((f"{n}@", f"{n}-v")) for n in names)

    scoped = [r for r in usable if for_sdk(r)]
    if scoped:
        usable = scoped
    elif any("@" in str(r.get("tag_name") or "") for r in usable) and names:
        usable = []  # a monorepo whose releases are all for other packages
    if merged_at is not None:
        usable = [r for r in usable if (_parse_time(r.get("published_at")) or merged_at) >= merged_at]
    usable.sort(key=lambda r: _parse_time(r.get("published_at")) or datetime.min.replace(tzinfo=UTC))
    if not usable:
        return None
    mention = re.compile(rf"(?:#|/pull/){pr_number}\b")
    for release in usable:
        if mention.search(str(release.get("body") or "")):
            return release
    return usable[0]
