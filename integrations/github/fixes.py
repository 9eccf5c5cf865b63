"""From a known issue to the fixing PR and the first release that shipped it.

Fix PR: the issue's timeline (every page). A `closed` event with a `commit_id` names the closing
commit; `GET /repos/{o}/{r}/commits/{sha}/pulls` gives its merged PR (`fix_basis: closing_commit`).
Otherwise the `cross-referenced` PRs are ranked: merged first, then a closing keyword ("fixes #N"),
then same repository, then the latest merge (`fix_basis: cross_reference`).

The other way round: a PR found by the search names the issue it closes (`closed_issues`), so a fix
PR found directly leads to its known issue too.

Fixed-in: the earliest release published after the merge that contains the fix. Releases are listed
newest first, 100 per page; the page where the merge time falls is found by bisecting the page
numbers (`Link: rel="last"` gives the count), so an old fix in a fast-releasing repository (posthog-js
has published more than 3,000 releases) still gets its own release, not the oldest one on page 1.
Among the releases after the merge, those of the customer's SDK package are kept in a monorepo
(tags `posthog-js@1.2.3`, `posthog-react-native-v3.4.0`, `android-v3.1.0`); the first whose notes
(the CHANGELOG section the release workflow copies into the release) name the PR (`#N`, `/pull/N`)
or its merge commit wins (`fixed_in_basis: changelog`); when no release notes name it, the first
release after the merge is reported with `fixed_in_basis: release_after_merge` (less certain).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from integrations.github.client import GitHubClient, page_number
from integrations.github.ranking import repo_of
from integrations.http import SourceHttpError
from triage.versions import version_from_tag

_CLOSING = r"(?:close[sd]?|fix(?:e[sd])?|resolve[sd]?)\s*:?\s+(?:[\w.-]+/[\w.-]+)?#{n}\b"
MAX_TIMELINE_PAGES = 10
MAX_RELEASE_REQUESTS = 12


@dataclass
class Fix:
    repo: str
    number: int
    url: str
    title: str
    merged_at: str | None
    merge_sha: str | None
    basis: str  # closing_commit | cross_reference


_CLOSES = re.compile(
    r"\b(?:close[sd]?|fix(?:e[sd])?|resolve[sd]?)\s*:?\s+"
    r"(?:https://github\.com/([\w.-]+/[\w.-]+)/issues/|([\w.-]+/[\w.-]+)?#)(\d+)\b",
    re.I,
)


def closed_issues(text: str, repo: str) -> list[tuple[str, int]]:
    """The issues a PR body closes with GitHub's keywords ("Fixes #12", "closes owner/repo#3", "resolves
    https://github.com/owner/repo/issues/4"), in order; `repo` is the PR's own repository."""
    out: list[tuple[str, int]] = []
    for m in _CLOSES.finditer(text):
        ref = (m.group(1) or m.group(2) or repo, int(m.group(3)))
        if ref not in out:
            out.append(ref)
    return out


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


async def find_fix(client: GitHubClient, repo: str, number: int) -> tuple[Fix | None, list[dict[str, Any]]]:
    """The PR that fixed issue `repo#number` (module docstring) and the timeline read."""
    timeline = await client.get_all(f"/repos/{repo}/issues/{number}/timeline", max_pages=MAX_TIMELINE_PAGES)
    events = [e for e in timeline if isinstance(e, dict)]
    closed = [e for e in events if e.get("event") == "closed" and e.get("commit_id")]
    if closed:
        sha = str(closed[-1]["commit_id"])
        commit_repo = _commit_repo(closed[-1]) or repo
        pulls, _ = await client.get_page(f"/repos/{commit_repo}/commits/{sha}/pulls")
        merged = [p for p in pulls if isinstance(p, dict) and p.get("merged_at")]
        if merged:
            pull = merged[0]
            return (
                Fix(
                    repo=commit_repo,
                    number=int(pull["number"]),
                    url=str(pull.get("html_url") or ""),
                    title=str(pull.get("title") or ""),
                    merged_at=pull.get("merged_at"),
                    merge_sha=pull.get("merge_commit_sha") or sha,
                    basis="closing_commit",
                ),
                events,
            )
    fix = _cross_referenced_fix(events, repo, number)
    if fix is not None and fix.merged_at and fix.merge_sha is None:
        try:  # the merge commit lets the release notes be matched by commit too
            pull = await client.get_dict(f"/repos/{fix.repo}/pulls/{fix.number}")
            fix.merge_sha = pull.get("merge_commit_sha")
        except SourceHttpError:
            fix.merge_sha = None
    return fix, events


def _commit_repo(event: dict[str, Any]) -> str:
    found = re.search(r"/repos/([^/]+/[^/]+)/commits/", str(event.get("commit_url") or ""))
    return found.group(1) if found else ""


def _cross_referenced_fix(events: list[dict[str, Any]], repo: str, number: int) -> Fix | None:
    closing = re.compile(_CLOSING.format(n=number), re.I)
    best: tuple[tuple[bool, bool, bool, str], Fix] | None = None
    for event in events:
        if event.get("event") != "cross-referenced":
            continue
        source = event.get("source") or {}
        src = source.get("issue") if isinstance(source, dict) else None
        if not isinstance(src, dict) or not isinstance(src.get("pull_request"), dict):
            continue
        pull = src["pull_request"]
        src_repo = repo_of(src) or str((src.get("repository") or {}).get("full_name") or repo)
        merged_at = pull.get("merged_at")
        text = f"{src.get('title') or ''}\n{src.get('body') or ''}"
        rank = (
            merged_at is not None,
            bool(closing.search(text)),
            src_repo.lower() == repo.lower(),
            merged_at or "",
        )
        fix = Fix(
            repo=src_repo,
            number=int(src.get("number") or 0),
            url=str(src.get("html_url") or pull.get("html_url") or ""),
            title=str(src.get("title") or ""),
            merged_at=merged_at,
            merge_sha=None,
            basis="cross_reference",
        )
        if best is None or rank > best[0]:
            best = (rank, fix)
    return best[1] if best else None


# ---------------------------------------------------------------- releases


def package_prefixes(sdk_names: list[str]) -> list[str]:
    """Tag prefixes of an SDK's releases in a monorepo: `name@`, `name-v` (and android's `android-v`)."""
    out = []
    for name in sdk_names:
        low = name.lower()
        out += [f"{low}@", f"{low}-v"]
        short = low.removeprefix("posthog-")
        if short != low:
            out += [f"{short}-v"]
    return out


def _for_package(release: dict[str, Any], prefixes: list[str]) -> bool | None:
    """True/False for a package-prefixed tag; None for a plain tag (`v1.2.3`, `3.4.5`)."""
    tag = str(release.get("tag_name") or "").lower()
    if re.match(r"^v?\d", tag):
        return None
    return any(tag.startswith(p) for p in prefixes)


async def _releases_around(client: GitHubClient, repo: str, merged: datetime) -> list[dict[str, Any]]:
    """Releases published at or after `merged`, oldest first, read from the pages around the merge."""
    first, links = await client.get_page(f"/repos/{repo}/releases", {"per_page": 100})
    last = page_number(links.get("last")) or 1
    pages: dict[int, list[Any]] = {1: first}
    requests = 1

    async def page(n: int) -> list[Any]:
        nonlocal requests
        if n not in pages:
            requests += 1
            pages[n], _ = await client.get_page(f"/repos/{repo}/releases", {"per_page": 100, "page": n})
        return pages[n]

    def oldest(rows: list[Any]) -> datetime | None:
        times = [parse_time(r.get("published_at")) for r in rows if isinstance(r, dict)]
        known = [t for t in times if t is not None]
        return min(known) if known else None

    # bisect: the first page whose oldest release is older than the merge (or the last page)
    lo, hi = 1, last
    while lo < hi and requests < MAX_RELEASE_REQUESTS:
        mid = (lo + hi) // 2
        when = oldest(await page(mid))
        if when is not None and when < merged:
            hi = mid
        else:
            lo = mid + 1
    boundary = lo
    rows: list[Any] = list(await page(boundary))
    if boundary > 1 and requests < MAX_RELEASE_REQUESTS:
        rows += await page(boundary - 1)
    after = [
        r
        for r in rows
        if isinstance(r, dict)
        and not r.get("draft")
        and (parse_time(r.get("published_at")) or merged) >= merged
    ]
    after.sort(key=lambda r: str(r.get("published_at") or ""))
    return after


async def find_release(client: GitHubClient, fix: Fix, sdk_names: list[str]) -> dict[str, Any]:
    """fixed_in, the release URL and how it was decided (module docstring); {} when none yet."""
    merged = parse_time(fix.merged_at)
    if merged is None:
        return {}
    releases = [r for r in await _releases_around(client, fix.repo, merged) if not r.get("prerelease")]
    prefixes = package_prefixes(sdk_names)
    if prefixes:  # a monorepo's releases of other packages do not ship this SDK's fix
        releases = [r for r in releases if _for_package(r, prefixes) is not False]
    mention = re.compile(
        rf"(?:#|/pull/){fix.number}\b" + (rf"|\b{fix.merge_sha[:7]}" if fix.merge_sha else "")
    )
    chosen, basis = None, ""
    for release in releases:
        if mention.search(str(release.get("body") or "")):
            chosen, basis = release, "changelog"
            break
    if chosen is None and releases:
        chosen, basis = releases[0], "release_after_merge"
    if chosen is None:
        return {}
    tag = str(chosen.get("tag_name") or chosen.get("name") or "")
    return {
        "fixed_in": version_from_tag(tag),
        "fixed_in_tag": tag,
        "release_url": chosen.get("html_url"),
        "released_at": chosen.get("published_at"),
        "fixed_in_basis": basis,
    }
