"""An offline GitHub: recorded issues, PRs, timelines and releases answered with GitHub's own rules.

Used by `triagebot demo` (through an httpx transport, `offline_transport`) and by the test fake
(`tests/fakes/github.py` serves the same `OfflineGitHub` over HTTP on 127.0.0.1 and adds scripted
failures). One implementation of the rules, so a query real GitHub answers with nothing answers
nothing here too. Where each rule comes from:

- [S1] github/docs `content/rest/search/search.md`: `total_count`, `incomplete_results`, `items`;
  results "sorted by best match in descending order"; queries longer than 256 characters (not
  counting operators or qualifiers) or with more than five AND/OR/NOT operators get 422 "Validation
  Failed"; `repo:`/`org:` naming a repository you cannot see gets 422 "Validation Failed".
- [S2] github/docs `content/search-github/searching-on-github/searching-issues-and-pull-requests.md`:
  `is:issue|pr`, `type:issue|pr`, `is:open|closed`, `state:`, `in:title|body|comments` (title, body
  and comments are searched when `in:` is absent), `label:` (repeated = all of them, `label:a,b` = any),
  `-qualifier` negates, `reason:`, `author:`; "Search is not case sensitive".
- [S3] cli/cli `pkg/search/query.go` (`AdvancedIssueSearchString`): since issues search became
  *advanced search* (GitHub GraphQL/REST deprecation notice: "Search for issues and pull requests
  will be overridden by advanced search on September 4, 2025") repeated `repo:`, `user:`, `in:` and
  `is:` qualifiers are AND-ed, not OR-ed; the CLI groups them as `(repo:A OR repo:B)`. So
  `repo:A repo:B` and `is:issue is:pr` match nothing.
- [S4] github/github-mcp-server `pkg/github/search_utils.go` @ 64a49f34 (commit f3cb662c, 2026-08-06):
  `search_type=semantic` on `GET /search/issues` (github.com only; lexical is the default and is
  sent as no parameter); free-text quotes are stripped for semantic queries, qualifiers still apply.
  Modelled here as: qualifiers filter, free text ranks by term overlap (at least one term must hit).
- [S5] github/docs REST pagination: `per_page` (max 100), `page`, and a `Link` header with
  `rel="next"`, `rel="last"` (and `prev`/`first`); list endpoints return newest releases first.
- Tokens: GitHub matches words, not substrings: text and terms are split on non-word characters and
  compared case-insensitively; a quoted phrase must appear as consecutive words. A plural "s" is
  ignored when comparing (an assumption: GitHub's index stems English words, the docs do not say how).

Renamed repositories answer `301` with a `Location` on the new name (GitHub's API does this for
renamed repositories); search keeps the old name's items under the new name.
"""

from __future__ import annotations

import json
import re
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from typing import Any
from urllib.parse import urlencode

import httpx

API = "https://api.github.com"
WEB = "https://github.com"
MAX_TEXT_CHARS = 256  # [S1]
MAX_OPERATORS = 5  # [S1]
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_QUALIFIER = re.compile(r"^(-?)([a-z][a-z_.-]*):(.+)$", re.I)
_KNOWN_QUALIFIERS = {"repo", "is", "type", "state", "in", "label", "reason", "author", "org", "user"}


# ---------------------------------------------------------------- words


def words(text: str) -> list[str]:
    """Lower-cased word tokens: GitHub matches words, not substrings."""
    return [_stem(w) for w in _WORD.findall(text.lower())]


def _stem(word: str) -> str:
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def _contains_phrase(haystack: list[str], phrase: list[str]) -> bool:
    if not phrase:
        return True
    n = len(phrase)
    first = phrase[0]
    return any(haystack[i] == first and haystack[i : i + n] == phrase for i in range(len(haystack) - n + 1))


# ---------------------------------------------------------------- query parsing


class QueryError(ValueError):
    """The query is not valid: GitHub answers 422 Validation Failed."""


@dataclass
class Term:
    text: str  # a word, a dotted/camel symbol or a quoted phrase
    negated: bool = False

    @property
    def tokens(self) -> list[str]:
        return words(self.text)


@dataclass
class Qualifier:
    key: str
    value: str
    negated: bool = False


@dataclass
class Node:
    op: str  # "and" | "or" | "term" | "qual"
    children: list[Node] = field(default_factory=list)
    term: Term | None = None
    qual: Qualifier | None = None


def _lex(q: str) -> list[str]:
    tokens: list[str] = []
    i = 0
    while i < len(q):
        ch = q[i]
        if ch.isspace():
            i += 1
        elif ch in "()":
            tokens.append(ch)
            i += 1
        else:
            j = i
            buf = []
            while j < len(q) and not q[j].isspace() and q[j] not in "()":
                if q[j] == '"':
                    end = q.find('"', j + 1)
                    end = len(q) if end < 0 else end
                    buf.append(q[j : end + 1])
                    j = end + 1
                else:
                    buf.append(q[j])
                    j += 1
            tokens.append("".join(buf))
            i = j
    return tokens


def parse_query(q: str) -> Node:
    """Parse a search query into an AND/OR tree of terms and qualifiers ([S1], [S2], [S3]).

    Adjacent items are AND-ed; `OR` binds looser than the implicit AND; parentheses group.
    """
    tokens = _lex(q)
    operators = sum(1 for t in tokens if t in ("AND", "OR", "NOT"))
    if operators > MAX_OPERATORS:
        raise QueryError("more than five AND, OR or NOT operators")
    pos = 0

    def parse_or() -> Node:
        nonlocal pos
        options = [parse_and()]
        while pos < len(tokens) and tokens[pos] == "OR":
            pos += 1
            options.append(parse_and())
        return options[0] if len(options) == 1 else Node("or", options)

    def parse_and() -> Node:
        nonlocal pos
        items: list[Node] = []
        negate_next = False
        while pos < len(tokens) and tokens[pos] not in (")", "OR"):
            token = tokens[pos]
            pos += 1
            if token == "AND":
                continue
            if token == "NOT":
                negate_next = True
                continue
            if token == "(":
                inner = parse_or()
                if pos >= len(tokens) or tokens[pos] != ")":
                    raise QueryError("unbalanced parentheses")
                pos += 1
                items.append(Node("not", [inner]) if negate_next else inner)
                negate_next = False
                continue
            items.append(_item(token, negate_next))
            negate_next = False
        if not items:
            raise QueryError("empty group")
        return items[0] if len(items) == 1 else Node("and", items)

    if not tokens:
        raise QueryError("q is empty")
    tree = parse_or()
    if pos != len(tokens):
        raise QueryError("unbalanced parentheses")
    text = sum(len(n.term.text) for n in _leaves(tree) if n.term is not None)
    if text > MAX_TEXT_CHARS:
        raise QueryError("the query is longer than 256 characters")
    return tree


def _item(token: str, negated: bool) -> Node:
    match = _QUALIFIER.match(token)
    if match and match.group(2).lower() in _KNOWN_QUALIFIERS:
        value = match.group(3).strip('"')
        return Node("qual", qual=Qualifier(match.group(2).lower(), value, negated or bool(match.group(1))))
    neg = negated
    if token.startswith("-") and len(token) > 1:
        neg, token = True, token[1:]
    return Node("term", term=Term(token.strip('"'), neg))


def _leaves(node: Node) -> list[Node]:
    if node.op in ("term", "qual"):
        return [node]
    return [leaf for child in node.children for leaf in _leaves(child)]


# ---------------------------------------------------------------- the data


def _stable_id(*parts: object) -> int:
    return zlib.crc32("/".join(map(str, parts)).encode()) % 10**9


def issue_item(
    repo: str,
    number: int,
    title: str,
    *,
    body: str = "",
    state: str = "open",
    state_reason: str | None = None,
    labels: list[str] | None = None,
    user: str = "octocat",
    created_at: str = "2026-01-01T00:00:00Z",
    updated_at: str | None = None,
    closed_at: str | None = None,
    comments: list[str] | None = None,
    pull: bool = False,
    merged_at: str | None = None,
    merge_commit_sha: str | None = None,
) -> dict[str, Any]:
    """An issue or PR in the shape of `GET /repos/{o}/{r}/issues/{n}` and a search item ([S1]).

    A PR carries `pull_request` (with `merged_at`); `merge_commit_sha` is kept under `_pull` for the
    pulls endpoint. `comments` (texts) are searchable like GitHub's `in:comments` and counted.
    """
    is_pull = pull or merged_at is not None
    if state == "closed" and state_reason is None and not is_pull:
        state_reason = "completed"
    item: dict[str, Any] = {
        "url": f"{API}/repos/{repo}/issues/{number}",
        "repository_url": f"{API}/repos/{repo}",
        "labels_url": f"{API}/repos/{repo}/issues/{number}/labels{{/name}}",
        "comments_url": f"{API}/repos/{repo}/issues/{number}/comments",
        "events_url": f"{API}/repos/{repo}/issues/{number}/events",
        "html_url": f"{WEB}/{repo}/{'pull' if is_pull else 'issues'}/{number}",
        "id": _stable_id(repo, number),
        "number": number,
        "title": title,
        "user": {"login": user, "type": "User", "html_url": f"{WEB}/{user}"},
        "labels": [
            {"name": name, "color": "ededed", "default": False, "description": ""} for name in labels or []
        ],
        "state": state,
        "state_reason": state_reason,
        "locked": False,
        "comments": len(comments or []),
        "created_at": created_at,
        "updated_at": updated_at or closed_at or merged_at or created_at,
        "closed_at": closed_at or (merged_at if is_pull and state == "closed" else None),
        "author_association": "NONE",
        "body": body,
        "_comments": list(comments or []),
    }
    if is_pull:
        item["pull_request"] = {
            "url": f"{API}/repos/{repo}/pulls/{number}",
            "html_url": f"{WEB}/{repo}/pull/{number}",
            "diff_url": f"{WEB}/{repo}/pull/{number}.diff",
            "patch_url": f"{WEB}/{repo}/pull/{number}.patch",
            "merged_at": merged_at,
        }
        item["_pull"] = {"merged": merged_at is not None, "merge_commit_sha": merge_commit_sha}
    return item


def release_item(
    repo: str, tag: str, published_at: str, body: str = "", *, draft: bool = False, prerelease: bool = False
) -> dict[str, Any]:
    """A release in the shape of `GET /repos/{o}/{r}/releases` items."""
    return {
        "url": f"{API}/repos/{repo}/releases/{_stable_id(repo, tag)}",
        "html_url": f"{WEB}/{repo}/releases/tag/{tag}",
        "id": _stable_id(repo, tag),
        "tag_name": tag,
        "name": tag,
        "draft": draft,
        "prerelease": prerelease,
        "created_at": published_at,
        "published_at": published_at,
        "body": body,
    }


_CLOSING = re.compile(
    r"\b(?:close[sd]?|fix(?:e[sd])?|resolve[sd]?)\s*:?\s+(?:([\w.-]+/[\w.-]+))?#(\d+)", re.I
)
_MENTION = re.compile(r"(?:\b([\w.-]+/[\w.-]+))?#(\d+)\b")


def _public(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if not k.startswith("_")}


def _repo_of(item: dict[str, Any]) -> str:
    return str(item["repository_url"]).split("/repos/", 1)[1]


@dataclass
class OfflineGitHub:
    """Recorded GitHub data answered with GitHub's rules (module docstring)."""

    items: dict[str, dict[str, Any]] = field(default_factory=dict)  # "owner/repo#N" → issue or PR
    releases: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # repo (lower) → newest first
    timelines: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # explicit timelines
    redirects: dict[str, str] = field(default_factory=dict)  # old "owner/repo" → new
    repos: set[str] = field(default_factory=set)  # repositories that exist (lower-case)

    # ------------------------------------------------------------ loading

    def add(self, *items: dict[str, Any]) -> OfflineGitHub:
        for item in items:
            repo = _repo_of(item)
            self.repos.add(repo.lower())
            self.items[f"{repo}#{item['number']}".lower()] = item
        return self

    def add_releases(self, repo: str, releases: list[dict[str, Any]]) -> OfflineGitHub:
        self.repos.add(repo.lower())
        merged = [*self.releases.get(repo.lower(), []), *releases]
        merged.sort(key=lambda r: str(r.get("published_at") or ""), reverse=True)
        self.releases[repo.lower()] = merged
        return self

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> OfflineGitHub:
        """Load the recorded format (`integrations/recorded/github.json`): see its `_format` key."""
        world = cls()
        for raw in data.get("issues") or []:
            world.add(issue_item(**raw))
        for repo, releases in (data.get("releases") or {}).items():
            world.add_releases(repo, [release_item(repo, **r) for r in releases])
        for key, events in (data.get("timelines") or {}).items():
            world.timelines[key.lower()] = list(events)
        for old, new in (data.get("redirects") or {}).items():
            world.redirects[old.lower()] = new
        world.repos |= {r.lower() for r in data.get("repos") or []}
        return world

    # ------------------------------------------------------------ search

    def search(self, q: str, *, search_type: str = "", per_page: int = 30, page: int = 1) -> dict[str, Any]:
        """`GET /search/issues` → the response body ([S1]); raises QueryError for a 422."""
        tree = parse_query(q)
        for leaf in _leaves(tree):
            qual = leaf.qual
            if qual is not None and qual.key == "repo" and not qual.negated:
                name = qual.value.lower()
                if name not in self.repos and name not in self.redirects:
                    raise QueryError(f"repository {qual.value} cannot be searched")
        fields = _fields(tree)
        semantic = search_type == "semantic"
        scored: list[tuple[float, str, dict[str, Any]]] = []
        for item in self.items.values():
            doc = _Doc(item, fields)
            if semantic:
                if not _eval(tree, doc, ignore_terms=True):
                    continue
                score = doc.overlap([leaf.term for leaf in _leaves(tree) if leaf.term is not None])
                if score <= 0:
                    continue
            else:
                if not _eval(tree, doc, ignore_terms=False):
                    continue
                score = doc.relevance([leaf.term for leaf in _leaves(tree) if leaf.term is not None])
            scored.append((score, str(item.get("updated_at") or ""), item))
        scored.sort(key=lambda s: (s[0], s[1]), reverse=True)  # best match first ([S1])
        per_page = max(1, min(100, per_page))
        start = (max(1, page) - 1) * per_page
        found = [{**_public(item), "score": round(score, 3)} for score, _, item in scored[:1000]]
        return {
            "total_count": len(scored),
            "incomplete_results": False,
            "items": found[start : start + per_page],
        }

    # ------------------------------------------------------------ REST reads

    def resolve(self, repo: str) -> str | None:
        """The current name of a renamed repository, or None when it was not renamed."""
        return self.redirects.get(repo.lower())

    def issue(self, repo: str, number: int) -> dict[str, Any] | None:
        item = self.items.get(f"{repo}#{number}".lower())
        return _public(item) if item else None

    def pull(self, repo: str, number: int) -> dict[str, Any] | None:
        """`GET /repos/{o}/{r}/pulls/{n}`: the fields a fix lookup reads."""
        item = self.items.get(f"{repo}#{number}".lower())
        if item is None or "_pull" not in item:
            return None
        return {
            "url": item["pull_request"]["url"],
            "html_url": item["pull_request"]["html_url"],
            "number": number,
            "state": item["state"],
            "title": item["title"],
            "body": item["body"],
            "merged": item["_pull"]["merged"],
            "merged_at": item["pull_request"]["merged_at"],
            "merge_commit_sha": item["_pull"]["merge_commit_sha"],
            "base": {"repo": {"full_name": repo}},
        }

    def timeline(self, repo: str, number: int) -> list[dict[str, Any]]:
        """The issue's timeline: the recorded one, else derived from PRs that mention the issue.

        Derived like GitHub does it: a `cross-referenced` event for every PR whose title/body
        mentions `#N` (or `owner/repo#N`), a `closed` event with the merge `commit_id` when a merged
        PR closes it with a keyword ("Fixes #N"), and a `commented` event per recorded comment.
        """
        key = f"{repo}#{number}".lower()
        if key in self.timelines:
            return self.timelines[key]
        issue = self.items.get(key)
        events: list[dict[str, Any]] = [
            {
                "event": "commented",
                "created_at": issue.get("created_at") if issue else None,
                "user": {"login": "commenter", "type": "User"},
                "body": text,
            }
            for text in (issue or {}).get("_comments") or []
        ]
        closer: dict[str, Any] | None = None
        for item in sorted(self.items.values(), key=lambda i: str(i.get("created_at") or "")):
            if "_pull" not in item:
                continue
            src_repo = _repo_of(item)
            text = f"{item['title']}\n{item['body']}"
            refs = {((m.group(1) or src_repo).lower(), int(m.group(2))) for m in _MENTION.finditer(text)}
            if (repo.lower(), number) not in refs:
                continue
            events.append(
                {
                    "event": "cross-referenced",
                    "created_at": item["created_at"],
                    "updated_at": item["created_at"],
                    "actor": item["user"],
                    "source": {
                        "type": "issue",
                        "issue": {**_public(item), "repository": {"full_name": src_repo}},
                    },
                }
            )
            closes = any(
                (m.group(1) or src_repo).lower() == repo.lower() and int(m.group(2)) == number
                for m in _CLOSING.finditer(text)
            )
            if closes and item["_pull"]["merged"]:
                closer = item
        if closer is not None and issue is not None and issue.get("state") == "closed":
            events.append(
                {
                    "event": "closed",
                    "created_at": issue.get("closed_at"),
                    "commit_id": closer["_pull"]["merge_commit_sha"],
                    "commit_url": f"{API}/repos/{_repo_of(closer)}/commits/{closer['_pull']['merge_commit_sha']}",
                    "state_reason": issue.get("state_reason"),
                }
            )
        return events

    def commit_pulls(self, repo: str, sha: str) -> list[dict[str, Any]]:
        """`GET /repos/{o}/{r}/commits/{sha}/pulls`: the merged PR whose merge commit is `sha`."""
        out = []
        for item in self.items.values():
            merge = str((item.get("_pull") or {}).get("merge_commit_sha") or "")
            same = _repo_of(item).lower() == repo.lower()
            if same and merge and (merge.startswith(sha) or sha.startswith(merge)):
                found = self.pull(repo, int(item["number"]))
                if found:
                    out.append(found)
        return out

    # ------------------------------------------------------------ HTTP

    def handle(self, method: str, url: httpx.URL | str) -> tuple[int, dict[str, str], Any]:
        """Answer one request like api.github.com: (status, headers, JSON body)."""
        url = httpx.URL(str(url))
        if method.upper() != "GET":
            return 404, {}, {"message": "Not Found"}
        path = url.path
        params = dict(url.params)
        per_page = _int(params.get("per_page"), 30)
        page = _int(params.get("page"), 1)
        if path.endswith("/search/issues"):
            try:
                body = self.search(
                    params.get("q", ""),
                    search_type=params.get("search_type", ""),
                    per_page=per_page,
                    page=page,
                )
            except QueryError as exc:
                return 422, {}, _validation_failed(str(exc))
            last = max(1, -(-min(body["total_count"], 1000) // max(1, min(100, per_page))))
            return 200, _link(url, page, last), body
        if path.endswith("/rate_limit"):
            reset = int(datetime.now(UTC).timestamp()) + 60
            search = {"limit": 30, "used": 1, "remaining": 29, "reset": reset}
            core = {"limit": 5000, "used": 1, "remaining": 4999, "reset": reset + 3540}
            return 200, {}, {"resources": {"core": core, "search": search}, "rate": core}
        match = re.search(r"/repos/([^/]+)/([^/]+)/(.+)$", path)
        if match is None:
            return 404, {}, _not_found()
        repo = f"{match.group(1)}/{match.group(2)}"
        rest = match.group(3)
        renamed = self.resolve(repo)
        if renamed:
            target = url.copy_with(path=path.replace(f"/repos/{repo}/", f"/repos/{renamed}/", 1))
            return 301, {"Location": str(target)}, {"message": "Moved Permanently", "url": str(target)}
        if m := re.fullmatch(r"issues/(\d+)", rest):
            found = self.issue(repo, int(m.group(1)))
            return (200, {}, found) if found else (404, {}, _not_found())
        if m := re.fullmatch(r"issues/(\d+)/timeline", rest):
            if self.issue(repo, int(m.group(1))) is None:
                return 404, {}, _not_found()
            return _page(url, self.timeline(repo, int(m.group(1))), per_page, page)
        if m := re.fullmatch(r"pulls/(\d+)", rest):
            found = self.pull(repo, int(m.group(1)))
            return (200, {}, found) if found else (404, {}, _not_found())
        if m := re.fullmatch(r"commits/([0-9a-f]{7,40})/pulls", rest):
            return _page(url, self.commit_pulls(repo, m.group(1)), per_page, page)
        if rest == "releases":
            if repo.lower() not in self.repos:
                return 404, {}, _not_found()
            return _page(url, self.releases.get(repo.lower(), []), per_page, page)
        return 404, {}, _not_found()


class _Doc:
    """One issue as GitHub's index sees it: word lists per field."""

    def __init__(self, item: dict[str, Any], fields: set[str]) -> None:
        self.item = item
        self.title = words(str(item.get("title") or ""))
        self.body = words(str(item.get("body") or ""))
        self.comments = words("\n".join(item.get("_comments") or []))
        self.fields = fields

    def _in(self, tokens: list[str], which: str) -> bool:
        return which in self.fields and _contains_phrase(getattr(self, which), tokens)

    def has(self, term: Term) -> bool:
        tokens = term.tokens
        if not tokens:
            return True
        return any(self._in(tokens, f) for f in ("title", "body", "comments"))

    def relevance(self, terms: list[Term]) -> float:
        """Best match: title hits weigh more than body hits; more hits rank higher."""
        score = 0.0
        for term in terms:
            if term.negated:
                continue
            if _contains_phrase(self.title, term.tokens):
                score += 2.0
            elif self.has(term):
                score += 1.0
        return score or 0.5

    def overlap(self, terms: list[Term]) -> float:
        """Semantic stand-in ([S4]): the share of the query's words found in title/body/comments."""
        query = {t for term in terms if not term.negated for t in term.tokens}
        if not query:
            return 1.0
        seen = set(self.title) | set(self.body) | set(self.comments)
        title = set(self.title)
        return sum(1.0 + (0.5 if w in title else 0.0) for w in query if w in seen) / len(query)

    def qualifies(self, qual: Qualifier) -> bool:
        item = self.item
        value = qual.value.lower()
        is_pull = "pull_request" in item
        result: bool
        if qual.key == "repo":
            result = _repo_of(item).lower() == value
        elif qual.key in ("org", "user"):
            result = _repo_of(item).lower().split("/")[0] == value
        elif qual.key in ("is", "type", "state"):
            if value in ("issue",):
                result = not is_pull
            elif value in ("pr", "pull-request"):
                result = is_pull
            elif value in ("open", "closed"):
                result = item.get("state") == value
            elif value == "merged":
                result = is_pull and bool(item["pull_request"].get("merged_at"))
            elif value == "unmerged":
                result = is_pull and not item["pull_request"].get("merged_at")
            else:
                result = False
        elif qual.key == "label":
            names = {str(label.get("name") or "").lower() for label in item.get("labels") or []}
            result = any(v.strip().strip('"') in names for v in value.split(","))
        elif qual.key == "reason":
            result = str(item.get("state_reason") or "").replace("_", " ") == value.replace("_", " ")
        elif qual.key == "author":
            result = str((item.get("user") or {}).get("login") or "").lower() == value
        elif qual.key == "in":
            return True  # a modifier of the terms, not a filter
        else:
            result = False
        return result != qual.negated


def _eval(node: Node, doc: _Doc, *, ignore_terms: bool) -> bool:
    if node.op == "term":
        if ignore_terms or node.term is None:
            return True
        return doc.has(node.term) != node.term.negated
    if node.op == "qual":
        return node.qual is not None and doc.qualifies(node.qual)
    if node.op == "not":
        return not _eval(node.children[0], doc, ignore_terms=ignore_terms)
    if node.op == "or":
        return any(_eval(child, doc, ignore_terms=ignore_terms) for child in node.children)
    return all(_eval(child, doc, ignore_terms=ignore_terms) for child in node.children)


def _fields(tree: Node) -> set[str]:
    """The fields bare terms are matched in: `in:` qualifiers, else title, body and comments ([S2])."""
    named: set[str] = set()
    for leaf in _leaves(tree):
        if leaf.qual is not None and leaf.qual.key == "in":
            for part in leaf.qual.value.lower().split(","):
                part = part.strip()
                named.add("comments" if part.startswith("comment") else part)
    return (named & {"title", "body", "comments"}) or {"title", "body", "comments"}


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


def _not_found() -> dict[str, str]:
    return {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}


def _validation_failed(why: str) -> dict[str, Any]:
    return {
        "message": "Validation Failed",
        "errors": [{"resource": "Search", "field": "q", "code": "invalid", "message": why}],
        "documentation_url": "https://docs.github.com/v3/search/",
        "status": "422",
    }


def _link(url: httpx.URL, page: int, last: int) -> dict[str, str]:
    """The `Link` header of page `page` of `last` ([S5]); none when everything fits on one page."""
    if last <= 1:
        return {}
    params = dict(url.params)

    def at(n: int) -> str:
        return str(url.copy_with(query=urlencode({**params, "page": str(n)}).encode()))

    parts = []
    if page > 1:
        parts += [f'<{at(page - 1)}>; rel="prev"', f'<{at(1)}>; rel="first"']
    if page < last:
        parts += [f'<{at(page + 1)}>; rel="next"', f'<{at(last)}>; rel="last"']
    return {"Link": ", ".join(parts)} if parts else {}


def _page(
    url: httpx.URL, rows: list[dict[str, Any]], per_page: int, page: int
) -> tuple[int, dict[str, str], Any]:
    per_page = max(1, min(100, per_page))
    last = max(1, -(-len(rows) // per_page))
    start = (max(1, page) - 1) * per_page
    return 200, _link(url, page, last), rows[start : start + per_page]


def offline_transport(world: OfflineGitHub) -> httpx.MockTransport:
    """An httpx transport answering from `world` (offline `triagebot demo`)."""

    def handle(request: httpx.Request) -> httpx.Response:
        status, headers, body = world.handle(request.method, request.url)
        return httpx.Response(status, headers=headers, json=body)

    return httpx.MockTransport(handle)


def github_replay_transport(recording: dict[str, Any]) -> httpx.AsyncBaseTransport:
    """The transport for a GitHub recording: the `OfflineGitHub` format (issues/releases, answered with
    GitHub's rules), or the older route table of `integrations/http_replay.py` (`{"routes": [...]}`,
    still used by the golden cases' recordings)."""
    if "routes" in recording:
        from integrations.http_replay import replay_transport

        return replay_transport(recording)
    return offline_transport(OfflineGitHub.from_data(recording))


def load_recorded_world(name: str = "github.json") -> OfflineGitHub:
    """The bundled recording (integrations/recorded/github.json) as an OfflineGitHub."""
    text = (resources.files("integrations") / "recorded" / name).read_text("utf-8")
    return OfflineGitHub.from_data(json.loads(text))


__all__ = [
    "OfflineGitHub",
    "QueryError",
    "github_replay_transport",
    "issue_item",
    "load_recorded_world",
    "offline_transport",
    "parse_query",
    "release_item",
    "words",
]
