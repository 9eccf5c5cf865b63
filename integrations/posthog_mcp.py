"""PostHog MCP research source: read-only first-party data about the customer's project.

Connects to the PostHog MCP server (US `https://mcp.posthog.com/mcp`, EU `https://mcp-eu.posthog.com/mcp`)
over streamable HTTP with a personal API key, pinned to `?mode=tools` (one MCP tool per PostHog tool, not the
`cli` wrapper), `x-posthog-readonly: true` (the server hides write tools) and, when set, the project pin
`x-posthog-project-id`. Every call also passes triagebot's own guard (`integrations/mcp_guard.py`).

Playbooks name *capabilities* (`flag_definition`, `sdk_versions` …), not tool names, because PostHog's tool
names churn between server versions. Each capability lists candidate tools in order; the first one that
`tools/list` offers (and whose input schema accepts the identifier argument) is used.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from mcp.types import Tool

from integrations.mcp_client import (
    ClientFactory,
    McpSourceLifecycle,
    McpToolClient,
    ToolOutcome,
    bounded,
    describe_error,
    http_client_factory,
    inprocess_client_factory,
    outcome_evidence,
)
from integrations.mcp_guard import ReadOnlyGuard
from triage.models import Evidence, EvidenceStatus, Intake, ResearchTask, Sdk
from triage.protocols import ConfigError

if TYPE_CHECKING:
    from triage.playbooks import McpCheck, Playbook

log = logging.getLogger(__name__)

US_URL = "https://mcp.posthog.com/mcp"
EU_URL = "https://mcp-eu.posthog.com/mcp"
SOURCE_NAME = "posthog_mcp"
USER_AGENT = "triagebot/0.1 (read-only triage; +mcp)"

Args = dict[str, Any]


# ---------------------------------------------------------------- capabilities


@dataclass(frozen=True)
class Candidate:
    """One way to answer a capability: a tool name and how to build its arguments from an identifier.

    `requires` lists argument keys that carry the identifier; if the tool's input schema does not accept
    them, this candidate cannot express the query and the next one is tried.
    """

    tool: str
    build: Callable[[str | None], Args]
    requires: tuple[str, ...] = ()


@dataclass
class Digest:
    summary: str
    data: dict[str, Any] = field(default_factory=dict)
    url: str | None = None
    status: EvidenceStatus | None = None  # override (e.g. a list search that did not find the key → empty)


Summarizer = Callable[[str | None, Any, str], Digest]  # (identifier, parsed result, raw text)


@dataclass(frozen=True)
class Capability:
    name: str
    title: str
    candidates: tuple[Candidate, ...]
    summarize: Summarizer
    first_party: bool = True


def hogql_string(value: str) -> str:
    """A HogQL string literal (single-quoted, backslash escapes). Control characters are dropped."""
    clean = "".join(ch for ch in value if ch >= " ")
    return "'" + clean.replace("\\", "\\\\").replace("'", "\\'") + "'"


def sdk_versions_sql(distinct_id: str | None) -> str:
    where = "timestamp > now() - INTERVAL 7 DAY"
    if distinct_id:
        where += f" AND distinct_id = {hogql_string(distinct_id)}"
    return (
        "SELECT properties.$lib AS lib, properties.$lib_version AS lib_version, count() AS events, "
        f"max(timestamp) AS last_seen FROM events WHERE {where} "
        "GROUP BY lib, lib_version ORDER BY events DESC LIMIT 25"
    )


def event_counts_sql(event: str) -> str:
    literal = hogql_string(event)
    return (
        f"SELECT toStartOfHour(timestamp) AS hour, countIf(event = {literal}) AS events, "
        f"count() AS all_events, groupUniqArrayIf(properties.$lib, event = {literal}) AS libs "
        "FROM events WHERE timestamp > now() - INTERVAL 3 DAY GROUP BY hour ORDER BY hour LIMIT 100"
    )


def _sql_candidates(make_sql: Callable[[str | None], str]) -> tuple[Candidate, ...]:
    return (
        Candidate("execute-sql", lambda v: {"query": make_sql(v)}, ("query",)),
        Candidate("query-run", lambda v: {"query": {"kind": "HogQLQuery", "query": make_sql(v)}}, ("query",)),
    )


# ---------------------------------------------------------------- result helpers


def rows_of(parsed: Any) -> list[dict[str, Any]]:
    """Rows from the common result shapes: {columns, results}, {results: [...]}, [...], {result: ...}."""
    if isinstance(parsed, dict):
        if "result" in parsed and len(parsed) == 1:
            return rows_of(parsed["result"])
        results = parsed.get("results", parsed.get("data"))
        columns = parsed.get("columns")
        if isinstance(results, list) and isinstance(columns, list):
            return [dict(zip(columns, row, strict=False)) for row in results if isinstance(row, list)] + [
                row for row in results if isinstance(row, dict)
            ]
        if isinstance(results, list):
            return [row for row in results if isinstance(row, dict)]
        return []
    if isinstance(parsed, list):
        return [row for row in parsed if isinstance(row, dict)]
    return []


def posthog_url(obj: Any) -> str | None:
    if isinstance(obj, dict):
        for key in ("_posthogUrl", "posthog_url", "url", "app_url"):
            value = obj.get(key)
            if isinstance(value, str) and value.startswith("http"):
                return value
    return None


def _n(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else str(value)


def _short_ts(value: Any) -> str:
    text = str(value or "")
    try:
        stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return text
    return stamp.strftime("%Y-%m-%d %H:%M:%S").removesuffix(":00") + " UTC"


def _generic(value: str | None, parsed: Any, text: str) -> Digest:
    rows = rows_of(parsed)
    if rows:
        return Digest(f"{len(rows)} result(s)", url=posthog_url(rows[0]))
    first = text.strip().splitlines()[0] if text.strip() else ""
    return Digest(bounded(first, 200), url=posthog_url(parsed))


_OPERATORS = {
    "exact": "=",
    "is_not": "≠",
    "icontains": "contains",
    "not_icontains": "does not contain",
    "regex": "matches",
    "gt": ">",
    "gte": "≥",
    "lt": "<",
    "lte": "≤",
    "is_set": "is set",
    "is_not_set": "is not set",
    "in": "in cohort",
}


def describe_condition(group: dict[str, Any]) -> str:
    parts: list[str] = []
    for prop in group.get("properties") or []:
        if not isinstance(prop, dict):
            continue
        op = _OPERATORS.get(str(prop.get("operator") or "exact"), str(prop.get("operator")))
        value = prop.get("value")
        shown = " or ".join(str(v) for v in value) if isinstance(value, list) else str(value)
        if prop.get("type") == "cohort":
            parts.append(f"cohort {shown}")
        elif op in ("is set", "is not set"):
            parts.append(f"{prop.get('key')} {op}")
        else:
            parts.append(f"{prop.get('key')} {op} {shown}")
    rollout = group.get("rollout_percentage")
    who = " AND ".join(parts) if parts else "everyone"
    return f"{who}, {rollout if rollout is not None else 100}%"


# ---------------------------------------------------------------- summarizers


def _flag(value: str | None, parsed: Any, text: str) -> Digest:
    flag: dict[str, Any] | None = None
    if isinstance(parsed, dict) and "key" in parsed:
        flag = parsed
    else:
        flag = next((row for row in rows_of(parsed) if row.get("key") == value), None)
    if flag is None or (value and flag.get("key") != value):
        return Digest(f"Flag {value} was not found in the project", status=EvidenceStatus.empty)
    filters = flag.get("filters") or {}
    groups = [g for g in filters.get("groups") or [] if isinstance(g, dict)]
    state = "active" if flag.get("active") else "INACTIVE"
    if flag.get("deleted"):
        state += ", deleted"
    conditions = "; ".join(describe_condition(g) for g in groups)
    plural = "condition" if len(groups) == 1 else "conditions"
    summary = f"Flag {flag.get('key')}: {state}, {len(groups)} release {plural}"
    if conditions:
        summary += f" ({conditions})"
    variants = (filters.get("multivariate") or {}).get("variants") or []
    if variants:
        summary += "; variants " + ", ".join(
            f"{v.get('key')} {v.get('rollout_percentage')}%" for v in variants
        )
    data = {
        "key": flag.get("key"),
        "id": flag.get("id"),
        "active": bool(flag.get("active")),
        "conditions": [describe_condition(g) for g in groups],
        "updated_at": flag.get("updated_at"),
    }
    return Digest(summary, data, posthog_url(flag))


def _evaluation_reasons(value: str | None, parsed: Any, text: str) -> Digest:
    if not isinstance(parsed, dict):
        return _generic(value, parsed, text)
    flags = {k: v for k, v in parsed.items() if isinstance(v, dict) and "value" in v}
    if not flags:
        return Digest(f"No flag evaluations for {value}", status=EvidenceStatus.empty)
    ordered = sorted(flags.items(), key=lambda kv: bool(kv[1].get("value")))  # false/unmatched first
    parts = []
    data: dict[str, Any] = {"distinct_id": value, "flags": {}}
    for key, item in ordered:
        evaluation = item.get("evaluation") or {}
        reason = evaluation.get("reason") or evaluation.get("condition_match_type") or "unknown"
        note = evaluation.get("description") or ""
        data["flags"][key] = {
            "value": item.get("value"),
            "reason": reason,
            "description": note,
            "evaluated_at": item.get("evaluated_at"),
        }
        shown = item.get("value")
        line = f"{key} → {str(shown).lower() if isinstance(shown, bool) else shown} ({reason}"
        line += f": {note})" if note else ")"
        if item.get("evaluated_at"):
            line += f" at {_short_ts(item['evaluated_at'])}"
        parts.append(line)
    return Digest(f"{value}: " + "; ".join(parts[:4]), data)


_PERSON_KEYS = 8


def _person(value: str | None, parsed: Any, text: str) -> Digest:
    people = rows_of(parsed) if not (isinstance(parsed, dict) and "distinct_ids" in parsed) else [parsed]
    if not people:
        return Digest(f"No person found for {value}", status=EvidenceStatus.empty)
    person = next((p for p in people if value in (p.get("distinct_ids") or [])), people[0])
    props = {k: v for k, v in (person.get("properties") or {}).items() if not str(k).startswith("$")}
    updated = person.get("properties_last_updated_at") or {}
    shown = []
    for key, val in list(props.items())[:_PERSON_KEYS]:
        item = f"{key}={val}"
        if key in updated:
            item += f" (set {_short_ts(updated[key])})"
        shown.append(item)
    ids = person.get("distinct_ids") or []
    summary = f"Person {value}: {len(ids)} distinct id(s)"
    if shown:
        summary += "; " + ", ".join(shown)
    if len(people) > 1:
        summary += f" ({len(people)} persons matched)"
    data = {
        "person_id": person.get("uuid") or person.get("id"),
        "distinct_ids": ids[:10],
        "properties": dict(list(props.items())[:15]),
        "properties_last_updated_at": {k: v for k, v in updated.items() if k in props},
        "created_at": person.get("created_at"),
    }
    return Digest(summary, data, posthog_url(person))


_LIB_LABELS = {"web": "posthog-js (web)"}


def _sdk_versions(value: str | None, parsed: Any, text: str) -> Digest:
    rows = rows_of(parsed)
    libs: dict[str, dict[str, Any]] = {}
    for row in rows:
        lib = str(row.get("lib") or row.get("$lib") or "unknown")
        version = str(row.get("lib_version") or row.get("$lib_version") or "?")
        count = int(row.get("events") or row.get("count") or 0)
        entry = libs.setdefault(lib, {"total": 0, "versions": {}, "last_seen": ""})
        entry["total"] += count
        entry["versions"][version] = entry["versions"].get(version, 0) + count
        seen = str(row.get("last_seen") or "")
        entry["last_seen"] = max(entry["last_seen"], seen)
    if not libs:
        return Digest("No events with $lib in the last 7 days", status=EvidenceStatus.empty)
    parts = []
    for lib, entry in sorted(libs.items(), key=lambda kv: -kv[1]["total"]):
        version, count = max(entry["versions"].items(), key=lambda kv: kv[1])
        share = round(100 * count / entry["total"]) if entry["total"] else 0
        part = f"{_LIB_LABELS.get(lib, lib)} {version} ({share}% of {_n(entry['total'])} events"
        if entry["last_seen"]:
            part += f", last {_short_ts(entry['last_seen'])}"
        parts.append(part + ")")
    scope = f"for {value}" if value else "in the project"
    return Digest(f"SDKs {scope}, last 7 days: " + "; ".join(parts[:5]), {"libs": libs})


def _event_definition(value: str | None, parsed: Any, text: str) -> Digest:
    rows = rows_of(parsed)
    match = next((r for r in rows if r.get("name") == value), None)
    if match is None:
        return Digest(f"No event definition named {value}", status=EvidenceStatus.empty)
    summary = f"Event {value}: last seen {_short_ts(match.get('last_seen_at')) or 'never'}"
    if match.get("volume_30_day") is not None:
        summary += f", {_n(match.get('volume_30_day'))} events in 30 days"
    keys = ("name", "last_seen_at", "volume_30_day", "created_at")
    return Digest(summary, {k: match.get(k) for k in keys}, posthog_url(match))


def _event_counts(value: str | None, parsed: Any, text: str) -> Digest:
    rows = rows_of(parsed)
    if not rows:
        return Digest(f"No events in the last 3 days (query for {value})", status=EvidenceStatus.empty)
    series = [(str(r.get("hour") or r.get("day") or ""), int(r.get("events") or 0), r) for r in rows]
    total = sum(count for _, count, _ in series)
    if total == 0:
        return Digest(f"{value}: 0 events in the last 3 days", {"event": value, "total": 0})
    last_idx = max(i for i, (_, count, _) in enumerate(series) if count)
    active = [count for _, count, _ in series[: last_idx + 1] if count]
    per_hour = round(sum(active) / len(active)) if active else 0
    summary = (
        f"{value}: {_n(total)} events in {len(series)} hourly buckets (~{_n(per_hour)}/h while arriving)"
    )
    data: dict[str, Any] = {"event": value, "total": total, "last_bucket_with_events": series[last_idx][0]}
    trailing = series[last_idx + 1 :]
    if trailing:
        others = [int(r.get("all_events") or 0) for _, _, r in trailing]
        since = trailing[0][0]
        summary += f"; 0 events since {_short_ts(since)}"
        if any(others):
            summary += f" while other events kept arriving (~{_n(round(sum(others) / len(others)))}/h)"
        data["zero_since"] = since
    libs = sorted({lib for _, _, r in series for lib in (r.get("libs") or []) if lib})
    if libs:
        summary += f"; sent by {', '.join(libs)}"
        data["libs"] = libs
    return Digest(summary, data)


def _error_issues(value: str | None, parsed: Any, text: str) -> Digest:
    rows = rows_of(parsed)
    if isinstance(parsed, dict) and not rows and parsed.get("id"):
        rows = [parsed]
    if not rows:
        return Digest(f"No error tracking issues match {value}", status=EvidenceStatus.empty)
    parts = []
    issues = []
    for row in rows[:5]:
        name = row.get("name") or row.get("title") or row.get("id")
        occurrences = row.get("occurrences", (row.get("aggregations") or {}).get("occurrences"))
        users = row.get("users", (row.get("aggregations") or {}).get("users"))
        counts = f"{_n(occurrences)} occurrences, {_n(users)} users"
        parts.append(
            f"{bounded(str(name), 80)} ({row.get('status', '?')}, {counts},"
            f" last seen {_short_ts(row.get('last_seen'))})"
        )
        issues.append({k: row.get(k) for k in ("id", "name", "status", "first_seen", "last_seen")})
    return Digest(f"{len(rows)} issue(s): " + "; ".join(parts[:3]), {"issues": issues}, posthog_url(rows[0]))


def _survey(value: str | None, parsed: Any, text: str) -> Digest:
    if not isinstance(parsed, dict) or "id" not in parsed:
        return _generic(value, parsed, text)
    if parsed.get("archived"):
        state = "archived"
    elif not parsed.get("start_date"):
        state = "draft (not launched)"
    elif parsed.get("end_date"):
        state = f"ended {_short_ts(parsed['end_date'])}"
    else:
        state = f"running since {_short_ts(parsed['start_date'])}"
    conditions = parsed.get("conditions") or {}
    facts = []
    events = [
        e.get("name") for e in ((conditions.get("events") or {}).get("values") or []) if isinstance(e, dict)
    ]
    if events:
        facts.append("shown after event " + ", ".join(str(e) for e in events))
    if conditions.get("url"):
        facts.append(f"URL {conditions.get('urlMatchType') or 'contains'} {conditions['url']}")
    if conditions.get("deviceTypes"):
        match = conditions.get("deviceTypesMatchType") or "exact"
        facts.append(f"device types {', '.join(conditions['deviceTypes'])} ({match})")
    if conditions.get("seenSurveyWaitPeriodInDays"):
        facts.append(f"wait period {conditions['seenSurveyWaitPeriodInDays']} days")
    if parsed.get("linked_flag_key"):
        facts.append(f"linked flag {parsed['linked_flag_key']}")
    summary = f"Survey '{parsed.get('name')}' ({parsed.get('type')}): {state}"
    if facts:
        summary += "; " + "; ".join(facts)
    data = {
        "id": parsed.get("id"),
        "name": parsed.get("name"),
        "type": parsed.get("type"),
        "state": state,
        "conditions": conditions,
        "linked_flag_key": parsed.get("linked_flag_key"),
    }
    return Digest(summary, data, posthog_url(parsed))


def _survey_stats(value: str | None, parsed: Any, text: str) -> Digest:
    if not isinstance(parsed, dict):
        return _generic(value, parsed, text)
    stats = parsed.get("stats") or {}

    def count(name: str) -> Any:
        return (stats.get(name) or {}).get("total_count", 0)

    summary = (
        f"Survey {value}: shown {_n(count('survey shown'))}, dismissed {_n(count('survey dismissed'))},"
        f" sent {_n(count('survey sent'))}"
    )
    rate = (parsed.get("rates") or {}).get("response_rate")
    if rate is not None:
        summary += f" (response rate {rate}%)"
    platforms = parsed.get("by_platform") or {}
    if platforms:
        summary += "; by platform: " + ", ".join(
            f"{name} shown {_n((item or {}).get('shown', 0))}" for name, item in platforms.items()
        )
    data = {
        "shown": count("survey shown"),
        "dismissed": count("survey dismissed"),
        "sent": count("survey sent"),
        "by_platform": platforms,
    }
    return Digest(summary, data)


def _recordings(value: str | None, parsed: Any, text: str) -> Digest:
    rows = rows_of(parsed)
    if not rows:
        scope = f" for {value}" if value else ""
        return Digest(f"No recordings in the last 7 days{scope}", status=EvidenceStatus.empty)
    blank = [
        r
        for r in rows
        if r.get("full_snapshot_missing")
        or (r.get("snapshot_size_bytes") == 0 and "snapshot_size_bytes" in r)
    ]
    errors = sum(1 for r in rows if (r.get("console_error_count") or 0) > 0)
    latest = max((str(r.get("start_time") or "") for r in rows), default="")
    summary = f"{len(rows)} recording(s) in the last 7 days"
    if blank:
        summary += f"; {len(blank)} with 0-byte snapshots / full snapshot missing"
    if errors:
        summary += f"; console errors in {errors}"
    if latest:
        summary += f"; latest {_short_ts(latest)}"
    recordings = [
        {k: r.get(k) for k in ("id", "start_time", "recording_duration", "snapshot_size_bytes", "start_url")}
        for r in rows[:10]
    ]
    data = {"count": len(rows), "blank": len(blank), "recordings": recordings}
    return Digest(summary, data, posthog_url(blank[0] if blank else rows[0]))


def _sdk_doctor(value: str | None, parsed: Any, text: str) -> Digest:
    sdks = (parsed or {}).get("sdks") if isinstance(parsed, dict) else None
    if not isinstance(sdks, list):
        return _generic(value, parsed, text)
    parts = []
    for sdk in sdks[:6]:
        if not isinstance(sdk, dict):
            continue
        versions = sdk.get("versions") or []
        top = versions[0] if versions and isinstance(versions[0], dict) else {}
        part = f"{_LIB_LABELS.get(str(sdk.get('lib')), sdk.get('lib'))} {top.get('version', '?')}"
        if sdk.get("outdated") or top.get("outdated"):
            part += " (outdated)"
        parts.append(part)
    return Digest("SDK doctor: " + "; ".join(parts), {"sdks": sdks[:6]}, posthog_url(parsed))


_URL = re.compile(r"https?://[^\s)\]>\"']+")
_MD_LINK = re.compile(r"\[([^\]]+)\]\((https?://[^)\s]+)\)")


def _docs_from_text(text: str) -> list[dict[str, str]]:
    """Hits from a text answer: `# Title` + `URL: …` pairs, or markdown links, else any URLs."""
    hits: list[dict[str, str]] = []
    title = ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            title = stripped.lstrip("#").strip()
        elif stripped.lower().startswith("url:") and (found := _URL.search(stripped)):
            hits.append({"title": title, "url": found.group(0).rstrip(".,")})
            title = ""
    if not hits:
        hits = [{"title": t, "url": u} for t, u in _MD_LINK.findall(text)]
    if not hits:
        hits = [{"title": "", "url": u.rstrip(".,")} for u in dict.fromkeys(_URL.findall(text))]
    return hits


def _docs(value: str | None, parsed: Any, text: str) -> Digest:
    hits: list[dict[str, str]] = []
    rows = rows_of(parsed) if parsed is not None else []
    for row in rows:
        hits.append(
            {"title": str(row.get("title") or row.get("name") or ""), "url": str(row.get("url") or "")}
        )
    if not hits:
        hits = _docs_from_text(text)
    if not hits:
        return Digest(f"No docs found for '{value}'", status=EvidenceStatus.empty)
    summary = f"Docs for '{value}': " + "; ".join(h["title"] or h["url"] for h in hits[:4])
    return Digest(summary, {"query": value, "results": hits[:6]}, hits[0]["url"] or None)


# ---------------------------------------------------------------- the capability map


def _only(**args: Any) -> Args:
    return {k: v for k, v in args.items() if v is not None}


CAPABILITIES: dict[str, Capability] = {
    cap.name: cap
    for cap in (
        Capability(
            "flag_definition",
            "Flag definition",
            (
                Candidate("feature-flag-get-definition", lambda v: {"flagKey": v}, ("flagKey",)),
                Candidate("feature-flag-get-all", lambda v: {"search": v, "limit": 100}),
            ),
            _flag,
        ),
        Capability(
            "flag_evaluation_reasons",
            "Flag evaluation reasons",
            (
                Candidate(
                    "feature-flags-evaluation-reasons-retrieve",
                    lambda v: {"distinct_id": v},
                    ("distinct_id",),
                ),
            ),
            _evaluation_reasons,
        ),
        Capability(
            "person_by_distinct_id",
            "Person",
            (
                Candidate("persons-list", lambda v: {"distinct_id": v, "limit": 5}, ("distinct_id",)),
                Candidate("persons-list", lambda v: {"search": v, "limit": 5}, ("search",)),
            ),
            _person,
        ),
        Capability(
            "person_by_email",
            "Person by email",
            (
                Candidate("persons-list", lambda v: {"email": v, "limit": 5}, ("email",)),
                Candidate("persons-list", lambda v: {"search": v, "limit": 5}, ("search",)),
            ),
            _person,
        ),
        Capability("sdk_versions", "SDK versions", _sql_candidates(sdk_versions_sql), _sdk_versions),
        Capability(
            "event_definitions",
            "Event definition",
            (Candidate("event-definitions-list", lambda v: {"search": v, "limit": 10}, ("search",)),),
            _event_definition,
        ),
        Capability(
            "event_counts",
            "Event volume (hourly, 3 days)",
            _sql_candidates(lambda v: event_counts_sql(v or "")),
            _event_counts,
        ),
        Capability(
            "error_issues",
            "Error tracking issues",
            (
                Candidate(
                    "query-error-tracking-issues",
                    lambda v: {
                        "searchQuery": v,
                        "status": "all",
                        "dateRange": {"date_from": "-30d"},
                        "limit": 5,
                    },
                    ("searchQuery",),
                ),
                Candidate("list-errors", lambda v: {"status": "all", "orderBy": "occurrences"}),
            ),
            _error_issues,
        ),
        Capability(
            "error_details",
            "Error tracking issue",
            (
                Candidate("query-error-tracking-issues", lambda v: {"issueId": v}, ("issueId",)),
                Candidate("error-details", lambda v: {"issueId": v}, ("issueId",)),
            ),
            _error_issues,
        ),
        Capability(
            "survey_get",
            "Survey",
            (Candidate("survey-get", lambda v: {"surveyId": v}, ("surveyId",)),),
            _survey,
        ),
        Capability(
            "survey_stats",
            "Survey stats",
            (Candidate("survey-stats", lambda v: {"survey_id": v}, ("survey_id",)),),
            _survey_stats,
        ),
        Capability(
            "recordings_list",
            "Session recordings",
            (
                Candidate(
                    "query-session-recordings-list",
                    lambda v: _only(date_from="-7d", limit=20, distinct_ids=[v] if v else None),
                    ("distinct_ids",),
                ),
            ),
            _recordings,
        ),
        Capability("sdk_doctor", "SDK doctor", (Candidate("sdk-doctor-get", lambda v: {}),), _sdk_doctor),
        Capability(
            "docs_search",
            "PostHog docs",
            (Candidate("docs-search", lambda v: {"query": v}, ("query",)),),
            _docs,
            first_party=False,
        ),
    )
}

# Every candidate tool is a read tool: together they are the default allowlist.
DEFAULT_READ_TOOLS: frozenset[str] = frozenset(
    c.tool for cap in CAPABILITIES.values() for c in cap.candidates
)


def fits_schema(candidate: Candidate, args: Args, tool: Tool) -> bool:
    """Can this tool take these arguments? Only identifier-carrying keys (`requires`) are enforced."""
    props = (tool.input_schema or {}).get("properties")
    if not isinstance(props, dict):
        return True  # the server did not describe its arguments: assume it takes them
    return all(key in props for key in candidate.requires if key in args)


def trim_to_schema(args: Args, tool: Tool | None) -> Args:
    """Drop optional arguments the tool does not declare (schemas churn between server versions)."""
    if tool is None:
        return args
    schema = tool.input_schema or {}
    props = schema.get("properties")
    if not isinstance(props, dict) or schema.get("additionalProperties") is True:
        return args
    return {k: v for k, v in args.items() if k in props}


def with_mode_tools(url: str) -> str:
    """Pin `?mode=tools` (one MCP tool per PostHog tool), keeping any other query parameters."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "mode"]
    query.append(("mode", "tools"))
    return urlunsplit(parts._replace(query=urlencode(query)))


# ---------------------------------------------------------------- the source


class McpCapabilitySource(McpSourceLifecycle):
    """Shared machinery: plan capability checks, resolve them against tools/list, run them guarded."""

    name: str
    capabilities: dict[str, Capability]
    client: McpToolClient
    _planned: dict[str, tuple[str, str | None]]  # task key → (capability, identifier)

    def resolve(self, capability: Capability, value: str | None) -> tuple[str, Args] | None:
        """The first candidate the server offers (and whose schema fits); before discovery, the first one."""
        tools = self.client.tools
        if tools is None:
            first = capability.candidates[0]
            return first.tool, first.build(value)
        for candidate in capability.candidates:
            tool = tools.get(candidate.tool)
            if tool is None:
                continue
            args = candidate.build(value)
            if fits_schema(candidate, args, tool):
                return candidate.tool, trim_to_schema(args, tool)
        return None

    def plan(self, intake: Intake, playbook: Playbook) -> list[ResearchTask]:
        tasks: list[ResearchTask] = []
        for check in playbook.mcp_checks:
            capability = self.capabilities.get(check.capability)
            if capability is None:
                log.debug("%s: no capability %r, check skipped", self.name, check.capability)
                continue
            for value in self._values(check, intake, playbook):
                resolved = self.resolve(capability, value)
                if resolved is None:
                    log.warning(
                        "%s: the server offers no tool for %s (tried %s)",
                        self.name,
                        capability.name,
                        ", ".join(c.tool for c in capability.candidates),
                    )
                    break
                tool, args = resolved
                key = f"{self.name}:{capability.name}:{value if value is not None else '-'}"
                if any(t.key == key for t in tasks):
                    continue
                self._planned[key] = (capability.name, value)
                label = f"{capability.title}: {value}" if value else capability.title
                tasks.append(
                    ResearchTask(
                        key=key,
                        source=self.name,
                        tool=tool,
                        arguments=args,
                        description=f"{label} — {check.description}" if check.description else label,
                        first_party=capability.first_party,
                    )
                )
        return tasks

    def _values(self, check: McpCheck, intake: Intake, playbook: Playbook) -> list[str | None]:
        limit = max(0, check.limit)
        if check.capability == "docs_search" and check.identifier is None:
            return list(docs_queries(intake, playbook, limit))
        if check.identifier is None:
            return [None]
        raw = getattr(intake.identifiers, check.identifier, None)
        if not isinstance(raw, list):
            return []
        values: list[str | None] = []
        for item in raw:
            text = (item.name if isinstance(item, Sdk) else str(item)).strip()
            if text and text not in values:
                values.append(text)
        return values[:limit]

    async def execute(self, task: ResearchTask) -> list[Evidence]:
        try:
            return [await self._execute(task)]
        except Exception as exc:  # never raise out of execute; cancellation still propagates
            log.exception("%s: task %s failed", self.name, task.key)
            return [
                Evidence(
                    task_key=task.key,
                    source=self.name,
                    tool=task.tool,
                    status=EvidenceStatus.error,
                    title=task.description or task.tool,
                    summary=f"internal error: {describe_error(exc)}",
                    first_party=task.first_party,
                )
            ]

    async def _execute(self, task: ResearchTask) -> Evidence:
        cap_name, value = self._planned.get(task.key) or self._parse_key(task.key)
        capability = self.capabilities.get(cap_name)
        tool, args = task.tool, task.arguments
        if capability is not None:
            if self.client.tools is None:
                await self.client.start()
            if self.client.tools is not None and tool not in self.client.tools:
                resolved = self.resolve(capability, value)  # planned before discovery: re-pick
                if resolved is not None:
                    tool, args = resolved
        if (tool, args) != (task.tool, task.arguments):
            task = task.model_copy(update={"tool": tool, "arguments": args})
        outcome = await self.client.call(tool, args)
        title = (f"{capability.title}: {value}" if value else capability.title) if capability else tool
        return self._evidence(task, outcome, capability, value, title)

    def _evidence(
        self,
        task: ResearchTask,
        outcome: ToolOutcome,
        capability: Capability | None,
        value: str | None,
        title: str,
    ) -> Evidence:
        internal = task.first_party
        if outcome.status is not EvidenceStatus.ok:
            return outcome_evidence(task, outcome, title=title, internal=internal)
        summarize = capability.summarize if capability else _generic
        try:
            digest = summarize(value, outcome.parsed, outcome.text)
        except Exception as exc:  # a surprising shape must not lose the evidence
            log.warning("%s: could not summarize %s: %s", self.name, outcome.tool, describe_error(exc))
            digest = _generic(value, outcome.parsed, outcome.text)
        return outcome_evidence(
            task,
            outcome,
            title=title,
            summary=bounded(digest.summary, 400),
            url=digest.url,
            data=digest.data,
            internal=internal,
            status=digest.status,
        )

    def _parse_key(self, key: str) -> tuple[str, str | None]:
        parts = key.split(":", 2)
        if len(parts) < 3:
            return "", None
        return parts[1], (None if parts[2] == "-" else parts[2])


def docs_queries(intake: Intake, playbook: Playbook, limit: int) -> list[str]:
    """The symptom (keywords from the ticket) first, then the playbook's standing docs queries."""
    queries: list[str] = []
    symptom = " ".join(intake.symptom_keywords[:6]).strip()
    for query in [symptom, *playbook.docs_queries]:
        query = query.strip()[:200]
        if query and query.casefold() not in (q.casefold() for q in queries):
            queries.append(query)
    return queries[:limit]


class PostHogMcpSource(McpCapabilitySource):
    """`ResearchSource` over the PostHog MCP server (read tools only)."""

    def __init__(
        self,
        url: str = US_URL,
        api_key: str = "",
        *,
        project_id: str = "",
        extra_allowed_tools: Sequence[str] = (),
        timeout_s: float = 15.0,
        max_retries: int = 2,
        concurrency: int = 4,
        server: object | None = None,
        mode: str = "auto",
        backoff_s: float = 0.5,
    ) -> None:
        self.name = SOURCE_NAME
        self.capabilities = CAPABILITIES
        self._planned = {}
        self.url = with_mode_tools(url or US_URL)
        factory: ClientFactory
        if server is not None:
            factory = inprocess_client_factory(server, timeout_s=timeout_s, mode=mode)
        else:
            if not api_key:
                raise ConfigError(
                    "POSTHOG_API_KEY is not set (a personal API key with the MCP Server preset)"
                )
            factory = http_client_factory(
                self.url, posthog_headers(api_key, project_id), timeout_s=timeout_s, mode=mode
            )
        self.client = McpToolClient(
            self.name,
            factory,
            ReadOnlyGuard.of(DEFAULT_READ_TOOLS, extra_allowed_tools),
            timeout_s=timeout_s,
            max_retries=max_retries,
            concurrency=concurrency,
            backoff_s=backoff_s,
        )


def posthog_headers(api_key: str, project_id: str = "") -> dict[str, str]:
    headers = {
        "Authorization": f"Bearer {api_key}",
        "x-posthog-readonly": "true",  # the server hides write tools (second line of defence)
        "x-posthog-mcp-mode": "tools",
        "User-Agent": USER_AGENT,
    }
    if project_id:
        headers["x-posthog-project-id"] = str(project_id)
    return headers
