"""`GitHubSource`: find the known bug behind a ticket in the SDK's and the product's GitHub repos.

Plan (no network): the public search words of the intake (`queries.extract_terms`) become up to six
query variants over the repos of the ticket's SDKs (the SDK catalogue lists *all* repos holding an
SDK's issues, legacy ones included) and the playbook's repos, grouped as `(repo:A OR repo:B)`:
one task `github:known_bugs`. The model-written queries (`Intake.search_queries`, wave 2) become a
second task `github:model_queries`. A ticket with nothing searchable gets the task `github:no_terms`,
which answers with one visible row instead of a broad, noisy search.

Execute: the task's searches run concurrently under the search semaphore; every hit is scored
against the ticket (`ranking`). When none is an exact match, the relaxed queries (`queries.py`: the
symbols alone in every repo, the error core unquoted, pairs of symptom words) run as a second round
and their hits join the ranking (not when every first-round search failed, nor when the first round
took longer than `relax_within_s`, so the research deadline cannot cut the task's first hits). The
best three hits, whatever their signal (a merged PR found by a one-word query too), are followed to
the fixing PR and the release that shipped it (`fixes`; release pages are read once per run), and the
customer's version is compared with it. The fixing PR of a followed issue becomes its own row unless
that issue is a weak match; the issue a followed PR closes ("Fixes #N") becomes a row after the PR.

Evidence rows (source "github", status ok) carry these keys in `data` — the report copies known-bug
facts only from here (`KNOWN_BUG_KEYS`):
  kind                 "issue" | "pr"
  repo, number         "PostHog/posthog-js", 2586
  issue_url, title     the issue (or PR) URL and title
  state, state_reason  "open" | "closed"; "completed" | "not_planned" | None (issue_state: same)
  labels               label names
  match_signal         "exact_match" | "strong_match" | "weak_match" (see ranking.py)
  exact_match, strong_match  booleans of the signal
  matched_terms        the ticket's symbols and symptom words found in the title/body
  query_variant        which query found it first (symbol, symbol_symptom, error, symptom, pr, semantic, model:N)
                       or "fix_follow_up" for the fixing PR of a followed issue (match_signal "fix_of_match",
                       fixes_issue_url = the issue; exact_match false: the issue row carries the known bug)
                       or "closed_by_found_pr" for the issue a found PR closes ("Fixes #N"; found_via_pr_url =
                       the PR; scored against the ticket like any hit, with the PR's fix facts)
  fix_pr_url, fix_pr_number, fix_pr_title, fix_merged, merged_at, fix_basis
  fixed_in             version of the first release after the merge that contains the fix (or None)
  fixed_in_tag, release_url, released_at, fixed_in_basis ("changelog" | "release_after_merge")
  customer_version     the ticket's SDK version compared with fixed_in
  customer_affected    True when older than fixed_in, False when it already has the fix, None unknown
  upgrade_to           fixed_in when customer_affected is True, else None
  workaround           a comment on the issue that describes a workaround (if any)
  closes_issue_url     on a PR row: the issue its body closes ("Fixes #N"), which becomes a row too
  followup_error       why the fix/release lookup is incomplete (if it is)
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import httpx

from integrations.github.client import GitHubClient, headers
from integrations.github.fixes import Fix, closed_issues, find_fix, find_release
from integrations.github.queries import Query, extract_terms, model_queries, plan_queries, relaxed_queries
from integrations.github.ranking import Match, rank_key, repo_of, score
from integrations.http import SourceHttpError, tls_context
from triage.models import Evidence, EvidenceStatus, Intake, ResearchTask
from triage.playbooks import SdkSpec, bundled_sdk_catalogue
from triage.versions import older_than

if TYPE_CHECKING:
    from triage.playbooks import Playbook

# every hit of one page of 20 is scored: GitHub's best match is not our ranking, and a bigger page costs
# no more of the search rate limit (30 requests a minute, whatever their size)
HITS_PER_QUERY = 20
MAX_ROWS = 5
FOLLOW_UPS = 3  # the best hits, whatever their signal: the report trusts only exact_match rows
MAX_REPOS = 6
NO_TERMS = "github:no_terms"
KNOWN_BUG_KEYS = (
    "issue_url",
    "title",
    "state",
    "match_signal",
    "exact_match",
    "fix_pr_url",
    "fix_merged",
    "fixed_in",
    "customer_affected",
    "upgrade_to",
)


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _unique(items: Sequence[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for item in items:
        if item and item.lower() not in seen:
            seen.add(item.lower())
            out.append(item)
    return out


class GitHubSource:
    """ResearchSource "github": known-bug search with a fix-and-release follow-up."""

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
        sdk_catalogue: Sequence[SdkSpec] | None = None,
        semantic_search: bool = True,
        relax_within_s: float = 15.0,
    ) -> None:
        self.api_url = (api_url or "https://api.github.com").rstrip("/")
        self._token = token
        self.search_concurrency = max(1, search_concurrency)
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.max_wait_s = max_wait_s
        self.backoff_s = backoff_s
        self.semantic_search = semantic_search
        # the relaxed round starts only this soon after the task began: the research deadline (45 s by
        # default) cuts a whole task, so a slow first round keeps its hits instead of risking them all
        self.relax_within_s = relax_within_s
        self._transport = transport
        self._catalogue = {
            s.name: s for s in (sdk_catalogue if sdk_catalogue is not None else bundled_sdk_catalogue())
        }
        self._limiters: dict[asyncio.AbstractEventLoop, asyncio.Semaphore] = {}
        self._blocked: dict[str, float] = {}  # resource → epoch seconds until which GitHub rate-limits us

    # ------------------------------------------------------------ plan

    def repos(self, intake: Intake, playbook: Playbook) -> tuple[list[str], list[str]]:
        """(the SDK's repos, every repo to search): SDK catalogue first, then the playbook's."""
        sdk_repos: list[str] = []
        for sdk in intake.identifiers.sdks:
            spec = self._catalogue.get(sdk.name)
            if spec is not None:
                sdk_repos += spec.all_repos()
            if sdk.name in playbook.sdk_repos:
                sdk_repos.append(playbook.sdk_repos[sdk.name])
        sdk_repos = _unique(sdk_repos)[:MAX_REPOS]
        others = list(playbook.github_repos)
        if not sdk_repos:  # no SDK named: every SDK repo the playbook knows
            others += list(playbook.sdk_repos.values())
        return sdk_repos, _unique([*sdk_repos, *others])[:MAX_REPOS]

    def plan(self, intake: Intake, playbook: Playbook) -> list[ResearchTask]:
        sdk_repos, all_repos = self.repos(intake, playbook)
        if not all_repos:
            return []
        terms = extract_terms(intake, playbook.search_terms)
        common: dict[str, Any] = {
            "repos": all_repos,
            "symbols": terms.symbols,
            "symptoms": terms.symptoms,
            "error_core": terms.error_core,
            "sdks": [{"name": s.name, "version": s.version} for s in intake.identifiers.sdks],
        }
        tasks = []
        rules = plan_queries(terms, sdk_repos, all_repos, semantic=self.semantic_search)
        if rules:
            tasks.append(
                ResearchTask(
                    key="github:known_bugs",
                    source=self.name,
                    tool="search_issues",
                    arguments={
                        **common,
                        "queries": [asdict(q) for q in rules],
                        "relaxed": [asdict(q) for q in relaxed_queries(terms, sdk_repos, all_repos, rules)],
                    },
                    description=f"known bugs in {', '.join(all_repos)} matching the symptom",
                )
            )
        model = model_queries(terms, all_repos)
        if model:
            tasks.append(
                ResearchTask(
                    key="github:model_queries",
                    source=self.name,
                    tool="search_issues",
                    arguments={**common, "queries": [asdict(q) for q in model]},
                    description="known bugs found with the model's English search queries",
                )
            )
        if not tasks:
            tasks.append(
                ResearchTask(
                    key=NO_TERMS,
                    source=self.name,
                    tool="search_issues",
                    arguments={"repos": all_repos, "queries": []},
                    description="known bugs: no search terms could be formed",
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

    def _client(self, http: httpx.AsyncClient) -> GitHubClient:
        return GitHubClient(
            http,
            self.api_url,
            timeout_s=self.timeout_s,
            max_retries=self.max_retries,
            max_wait_s=self.max_wait_s,
            backoff_s=self.backoff_s,
            search_limiter=self._limiter(),
            blocked=self._blocked,
        )

    def _http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=self._transport,
            headers=headers(self._token),
            follow_redirects=True,
            verify=tls_context(),
        )

    async def check(self) -> str:
        """For `triagebot check`: the search rate limit left for this token."""
        async with self._http() as http:
            data = await self._client(http).get_dict("/rate_limit")
        search = (data.get("resources") or {}).get("search") or {}
        who = "token" if self._token else "no token"
        return (
            f"{self.api_url} ({who}), search {search.get('remaining', '?')}/{search.get('limit', '?')} left"
        )

    async def execute(self, task: ResearchTask) -> list[Evidence]:
        started = time.monotonic()
        if task.key == NO_TERMS:
            return [
                Evidence(
                    task_key=task.key,
                    source=self.name,
                    tool=task.tool,
                    status=EvidenceStatus.empty,
                    title="No GitHub search: no search terms could be formed",
                    summary="The ticket names no code symbol, error message or symptom words that can be "
                    "searched without sending customer identifiers; no broad search was made.",
                    data={"reason": "no_search_terms", "repos": task.arguments.get("repos") or []},
                )
            ]
        queries = [Query(**q) for q in task.arguments.get("queries") or [] if isinstance(q, dict)]
        try:
            async with self._http() as http:
                return await self._execute(self._client(http), task, queries, started)
        except Exception as exc:  # never raise out of execute
            return [self._failure(task, " | ".join(q.q for q in queries), exc, started)]

    async def _search(
        self,
        client: GitHubClient,
        task: ResearchTask,
        queries: list[Query],
        found: dict[str, tuple[dict[str, Any], Query]],
        started: float,
    ) -> list[Evidence]:
        """Run `queries` concurrently; new hits go into `found` (first query wins); failures are rows."""
        results = await asyncio.gather(
            *(client.search(q.q, search_type=q.search_type, per_page=HITS_PER_QUERY) for q in queries),
            return_exceptions=True,
        )
        failures: list[Evidence] = []
        for query, result in zip(queries, results, strict=True):
            if isinstance(result, BaseException):
                if not isinstance(result, Exception):
                    raise result
                failures.append(self._failure(task, query.q, result, started))
                continue
            for item in result[:HITS_PER_QUERY]:
                key = str(item.get("html_url") or f"{repo_of(item)}#{item.get('number')}")
                found.setdefault(key, (item, query))
        return failures

    async def _execute(
        self, client: GitHubClient, task: ResearchTask, queries: list[Query], started: float
    ) -> list[Evidence]:
        args = task.arguments
        symbols = [str(s) for s in args.get("symbols") or []]
        symptoms = [str(s) for s in args.get("symptoms") or []]
        error_core = str(args.get("error_core") or "")
        sdks = [s for s in args.get("sdks") or [] if isinstance(s, dict)]
        sdk_names = [str(s.get("name") or "") for s in sdks if s.get("name")]

        def ranking() -> list[tuple[dict[str, Any], Query, Match]]:
            hits = [
                (item, query, score(item, symbols, symptoms, error_core, sdk_names))
                for item, query in found.values()
            ]
            return sorted(hits, key=lambda hit: rank_key(hit[0], hit[2]), reverse=True)[:MAX_ROWS]

        found: dict[str, tuple[dict[str, Any], Query]] = {}
        failures = await self._search(client, task, queries, found, started)
        ranked = ranking()
        relaxed = [Query(**q) for q in args.get("relaxed") or [] if isinstance(q, dict)]
        answered = len(failures) < len(queries)  # every search failed: more of them will not help
        in_time = time.monotonic() - started < self.relax_within_s
        if relaxed and answered and in_time and not any(m.signal == "exact_match" for _, _, m in ranked):
            queries = [*queries, *relaxed]
            failures += await self._search(client, task, relaxed, found, started)
            ranked = ranking()
        follow = ranked[:FOLLOW_UPS]
        extra = await asyncio.gather(*(self._follow_up(client, item, sdks) for item, _, _ in follow))
        facts = {id(item): data for (item, _, _), data in zip(follow, extra, strict=True)}
        rows: list[Evidence] = []
        shown = {str(item.get("html_url")) for item, _, _ in ranked}
        for item, query, match in ranked:
            data = facts.get(id(item), {})
            issue = data.get("fixes_issue")
            own = {k: v for k, v in data.items() if k != "fixes_issue"}
            if isinstance(issue, dict):
                own["closes_issue_url"] = issue.get("html_url")
            rows.append(self._row(task, query, item, match, own, sdks, started))
            if isinstance(issue, dict) and str(issue.get("html_url")) not in shown:
                shown.add(str(issue.get("html_url")))  # the known issue of a fix PR found directly
                rows.append(self._issue_of_fix_row(task, query, item, issue, data, sdks, started))
        for (item, query, match), data in zip(follow, extra, strict=True):
            if match.signal == "weak_match" or "pull_request" in item:
                continue
            if data.get("fix_pr_url") and str(data["fix_pr_url"]) not in shown:
                shown.add(str(data["fix_pr_url"]))
                rows.append(self._fix_row(task, query, item, data, sdks, started))
        if not rows and not failures:
            return [
                Evidence(
                    task_key=task.key,
                    source=self.name,
                    tool=task.tool,
                    query=" | ".join(q.q for q in queries),
                    status=EvidenceStatus.empty,
                    title="No matching GitHub issues or pull requests",
                    summary=f"{len(queries)} search(es) in {', '.join(args.get('repos') or [])} returned nothing",
                    latency_ms=_ms(started),
                )
            ]
        return rows + failures

    async def _follow_up(
        self, client: GitHubClient, item: dict[str, Any], sdks: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """Issue → fixing PR → release; a merged PR → release. Never raises."""
        repo = repo_of(item)
        out: dict[str, Any] = {}
        sdk_names = [str(s.get("name") or "") for s in sdks if s.get("name")]
        try:
            pull = item.get("pull_request")
            if isinstance(pull, dict):
                issue = await self._closed_issue(client, item)
                if issue is not None:
                    out["fixes_issue"] = issue
                if not pull.get("merged_at"):
                    return out
                try:  # the merge commit lets the release notes be matched by commit too
                    details = await client.get_dict(f"/repos/{repo}/pulls/{item['number']}")
                except SourceHttpError:
                    details = {}
                fix = Fix(
                    repo=repo,
                    number=int(item["number"]),
                    url=str(item.get("html_url") or ""),
                    title=str(item.get("title") or ""),
                    merged_at=pull.get("merged_at"),
                    merge_sha=details.get("merge_commit_sha"),
                    basis="pull_request",
                )
            else:
                found, events = await find_fix(client, repo, int(item["number"]))
                workaround = _workaround(events)
                if workaround:
                    out["workaround"] = workaround
                if found is None:
                    return out
                fix = found
            out.update(
                fix_pr_url=fix.url,
                fix_pr_number=fix.number,
                fix_pr_title=fix.title,
                fix_merged=fix.merged_at is not None,
                merged_at=fix.merged_at,
                fix_basis=fix.basis,
            )
            if fix.merged_at:
                out.update(await find_release(client, fix, self._fix_sdks(fix.repo, sdk_names)))
        except Exception as exc:
            kind = exc.kind if isinstance(exc, SourceHttpError) else type(exc).__name__
            out["followup_error"] = f"{kind}: {str(exc)[:200]}"
        return out

    async def _closed_issue(self, client: GitHubClient, pull: dict[str, Any]) -> dict[str, Any] | None:
        """The issue a PR says it closes ("Fixes #N"), read from GitHub; None when it names none."""
        for repo, number in closed_issues(str(pull.get("body") or ""), repo_of(pull))[:1]:
            try:
                issue = await client.get_dict(f"/repos/{repo}/issues/{number}")
            except SourceHttpError:
                return None
            if "pull_request" not in issue and issue.get("html_url"):
                return issue
        return None

    def _fix_sdks(self, repo: str, sdk_names: list[str]) -> list[str]:
        """The ticket's SDKs that live in `repo` (their release tags scope fixed-in in a monorepo)."""
        return [
            n
            for n in sdk_names
            if n in self._catalogue and repo.lower() in {r.lower() for r in self._catalogue[n].all_repos()}
        ]

    # ------------------------------------------------------------ rows

    def _row(
        self,
        task: ResearchTask,
        query: Query,
        item: dict[str, Any],
        match: Match,
        facts: dict[str, Any],
        sdks: list[dict[str, Any]],
        started: float,
    ) -> Evidence:
        repo = repo_of(item)
        pull = item.get("pull_request") if isinstance(item.get("pull_request"), dict) else None
        state = str(item.get("state") or "")
        data: dict[str, Any] = {
            "kind": "pr" if pull is not None else "issue",
            "repo": repo,
            "number": item.get("number"),
            "issue_url": item.get("html_url"),
            "title": str(item.get("title") or ""),
            "state": state,
            "issue_state": state,
            "state_reason": item.get("state_reason"),
            "labels": [str(lb.get("name")) for lb in item.get("labels") or [] if isinstance(lb, dict)],
            "match_signal": match.signal,
            "exact_match": match.signal == "exact_match",
            "strong_match": match.signal != "weak_match",
            "score": match.points,
            "matched_terms": match.matched_terms,
            "query_variant": query.variant,
            "fix_pr_url": None,
            "fix_merged": False,
            "fixed_in": None,
            "customer_version": None,
            "customer_affected": None,
            "upgrade_to": None,
        }
        if pull is not None:
            data.update(
                fix_pr_url=item.get("html_url"),
                fix_pr_number=item.get("number"),
                fix_merged=bool(pull.get("merged_at")),
                merged_at=pull.get("merged_at"),
            )
        data.update(facts)
        if data.get("fixed_in"):
            data.update(_compare(self._customer_version(repo, data, sdks), str(data["fixed_in"])))
        return Evidence(
            task_key=task.key,
            source=self.name,
            tool=task.tool,
            query=query.q,
            status=EvidenceStatus.ok,
            title=f"{repo}#{item.get('number')} {item.get('title') or ''}".strip(),
            summary=_summary(data),
            url=item.get("html_url"),
            excerpt=re.sub(r"\s+", " ", str(item.get("body") or "")).strip()[:300],
            latency_ms=_ms(started),
            data=data,
        )

    def _fix_row(
        self,
        task: ResearchTask,
        query: Query,
        issue: dict[str, Any],
        facts: dict[str, Any],
        sdks: list[dict[str, Any]],
        started: float,
    ) -> Evidence:
        """The fixing PR of a followed issue as its own row (kind "pr", `fixes_issue_url`)."""
        url = str(facts["fix_pr_url"])
        repo = "/".join(url.split("github.com/", 1)[-1].split("/")[:2])
        pull = {
            "html_url": url,
            "repository_url": f"https://api.github.com/repos/{repo}",
            "number": facts.get("fix_pr_number"),
            "title": facts.get("fix_pr_title") or "",
            "state": "closed" if facts.get("fix_merged") else "open",
            "pull_request": {"merged_at": facts.get("merged_at")},
        }
        fix_facts = {k: v for k, v in facts.items() if k != "workaround"}
        row = self._row(task, query, pull, Match(), fix_facts, sdks, started)
        row.data.update(
            match_signal="fix_of_match", query_variant="fix_follow_up", fixes_issue_url=issue.get("html_url")
        )
        row.summary = (
            f"Fix PR {repo}#{pull['number']} for {issue.get('html_url')}; " + row.summary.split("; ", 1)[-1]
        )
        return row

    def _issue_of_fix_row(
        self,
        task: ResearchTask,
        query: Query,
        pull: dict[str, Any],
        issue: dict[str, Any],
        facts: dict[str, Any],
        sdks: list[dict[str, Any]],
        started: float,
    ) -> Evidence:
        """The issue a found PR closes, scored against the ticket like any hit, with the PR's fix facts."""
        args = task.arguments
        sdk_names = [str(s.get("name") or "") for s in sdks if s.get("name")]
        match = score(
            issue,
            [str(s) for s in args.get("symbols") or []],
            [str(s) for s in args.get("symptoms") or []],
            str(args.get("error_core") or ""),
            sdk_names,
        )
        fix_facts = {k: v for k, v in facts.items() if k not in ("fixes_issue", "workaround")}
        row = self._row(task, query, issue, match, fix_facts, sdks, started)
        row.data.update(query_variant="closed_by_found_pr", found_via_pr_url=pull.get("html_url"))
        return row

    def _customer_version(self, repo: str, data: dict[str, Any], sdks: list[dict[str, Any]]) -> str | None:
        fix_repo = str(data.get("fix_pr_url") or "")
        for sdk in sdks:
            spec = self._catalogue.get(str(sdk.get("name") or ""))
            repos = {r.lower() for r in spec.all_repos()} if spec else set()
            if sdk.get("version") and (repo.lower() in repos or any(r in fix_repo.lower() for r in repos)):
                return str(sdk["version"])
        return None

    def _failure(self, task: ResearchTask, query: str, exc: Exception, started: float) -> Evidence:
        kind = exc.kind if isinstance(exc, SourceHttpError) else "error"
        status = {
            "timeout": EvidenceStatus.timeout,
            "rate_limited": EvidenceStatus.rate_limited,
        }.get(kind, EvidenceStatus.error)
        message = str(exc) if isinstance(exc, SourceHttpError) else f"{type(exc).__name__}: {exc}"
        data: dict[str, Any] = {"error_kind": kind}
        if isinstance(exc, SourceHttpError) and exc.retry_after_s:
            data["retry_after_s"] = round(exc.retry_after_s)
        return Evidence(
            task_key=task.key,
            source=self.name,
            tool=task.tool,
            query=query,
            status=status,
            title="GitHub rate limit: search not run"
            if status == EvidenceStatus.rate_limited
            else "GitHub search failed",
            summary=message[:300],
            latency_ms=_ms(started),
            data=data,
        )


def _compare(customer: str | None, fixed_in: str) -> dict[str, Any]:
    """customer_version / customer_affected / upgrade_to ("upgrade" only when the customer is older),
    with the project's one version helper (`triage.versions`)."""
    if not customer:
        return {"customer_version": None, "customer_affected": None, "upgrade_to": None}
    older = older_than(customer, fixed_in)  # None when either is not a version
    return {
        "customer_version": customer,
        "customer_affected": older,
        "upgrade_to": fixed_in if older else None,
    }


def _summary(data: dict[str, Any]) -> str:
    kind = "PR" if data["kind"] == "pr" else "issue"
    state = "merged" if data["kind"] == "pr" and data.get("fix_merged") else (data.get("state") or "unknown")
    parts = [
        f"{state.capitalize()} {kind} {data['repo']}#{data['number']} ({data['match_signal'].replace('_', ' ')}"
    ]
    if data.get("matched_terms"):
        parts[0] += f": {', '.join(map(str, data['matched_terms'][:6]))}"
    parts[0] += ")"
    if data["kind"] == "issue" and data.get("fix_pr_url"):
        parts.append(
            f"fixed by {data['fix_pr_url']}" + (" (merged)" if data.get("fix_merged") else " (not merged)")
        )
    if data.get("fixed_in"):
        basis = (
            "per the release notes"
            if data.get("fixed_in_basis") == "changelog"
            else "first release after the merge"
        )
        parts.append(f"released in {data['fixed_in']} ({basis})")
    if data.get("customer_affected") is True:
        parts.append(f"customer on {data['customer_version']}: upgrade to ≥ {data['upgrade_to']} fixes it")
    elif data.get("customer_affected") is False:
        parts.append(f"customer on {data['customer_version']} already has the fix")
    if data.get("workaround"):
        parts.append("a comment describes a workaround")
    if data.get("followup_error"):
        parts.append(f"fix lookup incomplete: {data['followup_error']}")
    return "; ".join(parts)


def _workaround(events: list[dict[str, Any]]) -> str | None:
    for event in events:
        if event.get("event") == "commented":
            body = str(event.get("body") or "")
            if "workaround" in body.lower():
                return re.sub(r"\s+", " ", body).strip()[:300]
    return None
