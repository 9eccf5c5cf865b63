"""PostHog summarisers: a decoded PostHog MCP result → one line of evidence (plus structured facts).

Each summariser checks the shape it expects and raises `Unparseable` when the result is not that shape, so
a result we cannot read becomes an `error` row — never a false "not found". `empty` is returned only when
the server clearly answered "nothing" (`found: false`, `results: []`, a table without rows).

Person data stays out of stored summaries: a person row names property *keys* and when they were set, not
their values, and every first-party row is marked internal (never quoted to the customer).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from integrations.mcp_capabilities import Digest, Summariser, SummaryInput, dig, result_rows
from integrations.mcp_decode import Unparseable
from triage.models import EvidenceStatus

# ---------------------------------------------------------------- helpers


def _n(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else str(value)


def short_ts(value: Any) -> str:
    text = str(value or "")
    try:
        stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return text
    return stamp.strftime("%Y-%m-%d %H:%M:%S").removesuffix(":00") + " UTC"


def posthog_url(obj: Any) -> str | None:
    if isinstance(obj, dict):
        for key in ("_posthogUrl", "posthog_url", "url", "app_url"):
            value = obj.get(key)
            if isinstance(value, str) and value.startswith("http"):
                return value
    return None


def _object(result: Any, *required: str) -> dict[str, Any]:
    if not isinstance(result, dict) or any(key not in result for key in required):
        raise Unparseable(f"expected an object with {', '.join(required)}")
    return result


def _rows(result: Any) -> list[dict[str, Any]]:
    rows = result_rows(result)
    if rows is None:
        raise Unparseable("expected a list of results")
    return rows


_OPERATORS = {
    "exact": "=",
    "is_not": "≠",
    "icontains": "contains",
    "not_icontains": "does not contain",
    "regex": "matches",
    "not_regex": "does not match",
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
        elif prop.get("type") == "flag":
            parts.append(f"flag {prop.get('key')} evaluates to {shown}")
        elif op in ("is set", "is not set"):
            parts.append(f"{prop.get('key')} {op}")
        else:
            parts.append(f"{prop.get('key')} {op} {shown}")
    rollout = group.get("rollout_percentage")
    who = " AND ".join(parts) if parts else "everyone"
    return f"{who}, {rollout if rollout is not None else 100}%"


# ---------------------------------------------------------------- flags


def flag(inp: SummaryInput) -> Digest:
    result = inp.result
    if isinstance(result, dict) and result.get("found") is False:
        return Digest(f"Flag {inp.value} was not found in the project", status=EvidenceStatus.empty)
    found = _object(result, "key")
    if "filters" not in found:
        raise Unparseable("flag definition without filters")
    filters = found.get("filters") or {}
    groups = [g for g in filters.get("groups") or [] if isinstance(g, dict)]
    state = "active" if found.get("active") else "INACTIVE"
    if found.get("deleted"):
        state += ", deleted"
    runtime = found.get("evaluation_runtime")
    if runtime and runtime != "all":
        state += f", evaluates on {runtime} only"
    conditions = [describe_condition(g) for g in groups]
    plural = "condition" if len(groups) == 1 else "conditions"
    summary = f"Flag {found.get('key')}: {state}, {len(groups)} release {plural}"
    if conditions:
        summary += f" ({'; '.join(conditions)})"
    variants = (filters.get("multivariate") or {}).get("variants") or []
    if variants:
        summary += "; variants " + ", ".join(
            f"{v.get('key')} {v.get('rollout_percentage')}%" for v in variants
        )
    if filters.get("aggregation_group_type_index") is not None:
        summary += "; group-aggregated (calls must pass groups)"
    if found.get("ensure_experience_continuity"):
        summary += "; persists across authentication"
    data = {
        "key": found.get("key"),
        "id": found.get("id"),
        "active": bool(found.get("active")),
        "conditions": conditions,
        "evaluation_runtime": runtime,
        "updated_at": found.get("updated_at"),
    }
    return Digest(summary, data, posthog_url(found))


def flag_activity(inp: SummaryInput) -> Digest:
    rows = _rows(inp.result)
    if not rows:
        return Digest(f"Flag {inp.value}: no recorded changes", status=EvidenceStatus.empty)
    parts = []
    changes = []
    for row in rows[:5]:
        detail = row.get("detail") or {}
        fields = [
            str(c.get("field")) for c in detail.get("changes") or [] if isinstance(c, dict) and c.get("field")
        ]
        when = short_ts(row.get("created_at"))
        what = f"{row.get('activity')}" + (f" ({', '.join(fields)})" if fields else "")
        parts.append(f"{when}: {what}")
        changes.append({"at": row.get("created_at"), "activity": row.get("activity"), "fields": fields})
    return Digest(f"Flag {inp.value} changes, newest first: " + "; ".join(parts), {"changes": changes})


def flag_evaluation(inp: SummaryInput) -> Digest:
    result = _object(inp.result)
    flags = {k: v for k, v in result.items() if isinstance(v, dict) and "value" in v}
    if not flags and any(isinstance(v, dict) for v in result.values()):
        raise Unparseable("evaluation entries without a value")
    wanted = {k.casefold() for k in inp.intake.identifiers.flag_keys}
    if wanted:
        flags = {k: v for k, v in flags.items() if k.casefold() in wanted}
    if not flags:
        scope = f" for flags {', '.join(inp.intake.identifiers.flag_keys)}" if wanted else ""
        return Digest(f"No flag evaluations{scope} for this user", status=EvidenceStatus.empty)
    parts = []
    data: dict[str, Any] = {"flags": {}}
    for key, item in sorted(flags.items(), key=lambda kv: bool(kv[1].get("value"))):  # false first
        evaluation = item.get("evaluation") or {}
        reason = evaluation.get("reason") or evaluation.get("condition_match_type") or "unknown"
        note = evaluation.get("description") or ""
        data["flags"][key] = {
            "value": item.get("value"),
            "reason": reason,
            "condition_index": evaluation.get("condition_index"),
            "evaluated_at": item.get("evaluated_at"),
        }
        shown = item.get("value")
        line = f"{key} → {str(shown).lower() if isinstance(shown, bool) else shown} ({reason}"
        line += f": {note})" if note else ")"
        if item.get("evaluated_at"):
            line += f" at {short_ts(item['evaluated_at'])}"
        parts.append(line)
    return Digest("Evaluated for the requester: " + "; ".join(parts[:4]), data)


# ---------------------------------------------------------------- persons


_PERSON_KEYS = 10


def person(inp: SummaryInput) -> Digest:
    found = _object(inp.result, "distinct_ids")
    props = found.get("properties")
    if not isinstance(props, dict):
        raise Unparseable("person without properties")
    custom = sorted(k for k in props if not str(k).startswith("$"))
    updated = found.get("properties_last_updated_at") or {}
    keys = []
    for key in custom[:_PERSON_KEYS]:
        keys.append(f"{key} (set {short_ts(updated[key])})" if key in updated else key)
    ids = found.get("distinct_ids") or []
    summary = f"Person found: {len(ids)} distinct id(s), created {short_ts(found.get('created_at'))}"
    if found.get("last_seen_at"):
        summary += f", last seen {short_ts(found.get('last_seen_at'))}"
    if keys:
        summary += "; properties: " + ", ".join(keys)
    data = {
        "person_id": found.get("uuid") or found.get("id"),
        "distinct_id_count": len(ids),
        "property_keys": custom[:25],
        "properties_last_updated_at": {k: v for k, v in updated.items() if k in custom},
        "created_at": found.get("created_at"),
    }
    return Digest(summary, data, posthog_url(found))


# ---------------------------------------------------------------- events / SQL

_LIB_NAMES = {"web": "posthog-js"}


def sdk_versions(inp: SummaryInput) -> Digest:
    inp.decoded.require_columns("lib", "lib_version", "events")
    libs: dict[str, dict[str, Any]] = {}
    for row in _rows(inp.result):
        lib = str(row.get("lib") or "unknown")
        version = str(row.get("lib_version") or "?")
        count = row.get("events")
        if not isinstance(count, int):
            raise Unparseable("events is not a count")
        entry = libs.setdefault(lib, {"total": 0, "versions": {}, "last_seen": ""})
        entry["total"] += count
        entry["versions"][version] = entry["versions"].get(version, 0) + count
        entry["last_seen"] = max(entry["last_seen"], str(row.get("last_seen") or ""))
    if not libs:
        return Digest("No events with $lib in the last 7 days", status=EvidenceStatus.empty)
    parts = []
    for lib, entry in sorted(libs.items(), key=lambda kv: -kv[1]["total"]):
        version, count = max(entry["versions"].items(), key=lambda kv: kv[1])
        share = round(100 * count / entry["total"]) if entry["total"] else 0
        label = f"{_LIB_NAMES[lib]} ({lib})" if lib in _LIB_NAMES else lib
        part = f"{label} {version} ({share}% of {_n(entry['total'])} events"
        if entry["last_seen"]:
            part += f", last {short_ts(entry['last_seen'])}"
        parts.append(part + ")")
    scope = "the requester's events" if inp.value else "the project"
    summary = f"SDKs in {scope}, last 7 days: " + "; ".join(parts[:5])
    if inp.decoded.truncated:
        summary += " (result preview was shortened by the server)"
    return Digest(summary, {"libs": libs}, subject=_sdk_subject(inp, libs))


def _sdk_subject(inp: SummaryInput, libs: dict[str, dict[str, Any]]) -> str | None:
    """`sdk:<name>@<version>` when the ticket's SDK is among the libraries the project sends."""
    for sdk in inp.intake.identifiers.sdks:
        names = {sdk.name, *(k for k, v in _LIB_NAMES.items() if v == sdk.name)}
        if names & set(libs):
            return f"sdk:{sdk.name}@{sdk.version}" if sdk.version else f"sdk:{sdk.name}"
    return None


def event_counts(inp: SummaryInput) -> Digest:
    inp.decoded.require_columns("hour", "events", "all_events")
    rows = _rows(inp.result)
    if not rows:
        return Digest(
            f"No events at all in the last 3 days (query for {inp.value})", status=EvidenceStatus.empty
        )
    series = [(str(r.get("hour") or ""), r.get("events"), r) for r in rows]
    if any(not isinstance(count, int) for _, count, _ in series):
        raise Unparseable("events is not a count")
    total = sum(int(count) for _, count, _ in series)
    if total == 0:
        return Digest(f"{inp.value}: 0 events in the last 3 days", {"event": inp.value, "total": 0})
    last_idx = max(i for i, (_, count, _) in enumerate(series) if count)
    active = [int(count) for _, count, _ in series[: last_idx + 1] if count]
    per_hour = round(sum(active) / len(active))
    summary = (
        f"{inp.value}: {_n(total)} events in {len(series)} hourly buckets (~{_n(per_hour)}/h while arriving)"
    )
    data: dict[str, Any] = {
        "event": inp.value,
        "total": total,
        "last_bucket_with_events": series[last_idx][0],
    }
    trailing = series[last_idx + 1 :]
    if trailing:
        others = [int(r.get("all_events") or 0) for _, _, r in trailing]
        since = trailing[0][0]
        summary += f"; 0 events since {short_ts(since)}"
        if any(others):
            summary += f" while other events kept arriving (~{_n(round(sum(others) / len(others)))}/h)"
        data["zero_since"] = since
    libs = sorted(
        {lib for _, _, r in series for lib in (r.get("libs") or []) if isinstance(lib, str) and lib}
    )
    if libs:
        summary += f"; sent by {', '.join(libs)}"
        data["libs"] = libs
    return Digest(summary, data)


def replay_signals(inp: SummaryInput) -> Digest:
    """The replay diagnostic properties on the requester's events (products/replay/skills/…/diagnostic-signals.md).

    Missing values mean "unknown" (older SDKs do not send every property), never "false".
    """
    inp.decoded.require_columns("recording_status", "start_reason", "script_not_loaded", "events")
    rows = _rows(inp.result)
    if not rows:
        return Digest("No events from the requester in the last 7 days", status=EvidenceStatus.empty)
    statuses: dict[str, int] = {}
    reasons: dict[str, int] = {}
    not_loaded = 0
    for row in rows:
        count = row.get("events")
        if not isinstance(count, int):
            raise Unparseable("events is not a count")
        status = str(row.get("recording_status") or "unknown")
        statuses[status] = statuses.get(status, 0) + count
        if row.get("start_reason"):
            reasons[str(row["start_reason"])] = reasons.get(str(row["start_reason"]), 0) + count
        if row.get("script_not_loaded") in (True, "True", "true", 1):  # str(True) in the SQL table
            not_loaded += count
    parts = [
        "$recording_status "
        + ", ".join(f"{k} ×{_n(v)}" for k, v in sorted(statuses.items(), key=lambda kv: -kv[1]))
    ]
    if reasons:
        parts.append(
            "start reason "
            + ", ".join(f"{k} ×{_n(v)}" for k, v in sorted(reasons.items(), key=lambda kv: -kv[1]))
        )
    if not_loaded:
        parts.append(f"recorder script not loaded on {_n(not_loaded)} events (ad blocker or CSP)")
    return Digest(
        "Replay signals on the requester's events: " + "; ".join(parts),
        {"recording_status": statuses, "start_reason": reasons, "script_not_loaded_events": not_loaded},
    )


# ---------------------------------------------------------------- error tracking


def _issue_line(row: dict[str, Any]) -> str:
    aggregations = row.get("aggregations") or {}
    counts = (
        f"{_n(aggregations.get('occurrences', '?'))} occurrences, {_n(aggregations.get('users', '?'))} users"
    )
    name = str(row.get("name") or row.get("id"))[:80]
    return f"{name} ({row.get('status', '?')}, {counts}, last seen {short_ts(row.get('last_seen'))})"


def error_issues(inp: SummaryInput) -> Digest:
    rows = _rows(inp.result)
    if not rows:
        return Digest(
            "No error tracking issues match the error message (30 days, any status)",
            status=EvidenceStatus.empty,
        )
    if any("id" not in row for row in rows):
        raise Unparseable("issue rows without id")
    issues = [
        {k: row.get(k) for k in ("id", "name", "status", "first_seen", "last_seen", "library")}
        for row in rows[:5]
    ]
    summary = f"{len(rows)} issue(s): " + "; ".join(_issue_line(r) for r in rows[:3])
    return Digest(summary, {"issues": issues}, posthog_url(rows[0]))


def error_issue(inp: SummaryInput) -> Digest:
    found = _object(inp.result, "id")
    summary = "Issue " + _issue_line(found)
    if found.get("first_seen"):
        summary += f"; first seen {short_ts(found.get('first_seen'))}"
    release = found.get("latest_release") or found.get("release")
    if isinstance(release, dict) and release.get("version"):
        summary += f"; latest release {release.get('version')}"
    data = {k: found.get(k) for k in ("id", "name", "status", "first_seen", "last_seen")}
    return Digest(summary, data, posthog_url(found), subject=f"error_issue:{found.get('id')}")


def error_events(inp: SummaryInput) -> Digest:
    rows = _rows(inp.result)
    if not rows:
        return Digest("No sampled exception events for the issue", status=EvidenceStatus.empty)
    parts = []
    sessions = []
    for row in rows[:3]:
        props = row.get("properties") if isinstance(row.get("properties"), dict) else row
        types = props.get("$exception_types") or []
        lib = f"{props.get('$lib', '?')} {props.get('$lib_version', '')}".strip()
        parts.append(
            f"{', '.join(map(str, types)) or 'exception'} via {lib} at {short_ts(row.get('timestamp'))}"
        )
        if props.get("$session_id"):
            sessions.append(str(props["$session_id"]))
    summary = f"{len(rows)} sample event(s): " + "; ".join(parts)
    if sessions:
        summary += f"; {len(sessions)} with a session id (replay)"
    return Digest(summary, {"session_ids": sessions[:5]})


# ---------------------------------------------------------------- surveys


def survey(inp: SummaryInput) -> Digest:
    found = _object(inp.result, "id", "type")
    if found.get("archived"):
        state = "archived"
    elif not found.get("start_date"):
        state = "draft (not launched)"
    elif found.get("end_date"):
        state = f"ended {short_ts(found['end_date'])}"
    else:
        state = f"running since {short_ts(found['start_date'])}"
    conditions = found.get("conditions") or {}
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
    if found.get("linked_flag_key") or found.get("linked_flag"):
        facts.append(f"linked flag {found.get('linked_flag_key') or dig(found, 'linked_flag.key')}")
    if found.get("targeting_flag_filters"):
        facts.append("property targeting set")
    if found.get("schedule"):
        facts.append(f"schedule {found['schedule']}")
    summary = f"Survey '{found.get('name')}' ({found.get('type')}): {state}"
    if facts:
        summary += "; " + "; ".join(facts)
    data = {
        "id": found.get("id"),
        "name": found.get("name"),
        "type": found.get("type"),
        "state": state,
        "conditions": conditions,
        "schedule": found.get("schedule"),
    }
    return Digest(summary, data, posthog_url(found))


def survey_list(inp: SummaryInput) -> Digest:
    rows = _rows(inp.result)
    if not rows:
        return Digest(f"No surveys match '{inp.value}'", status=EvidenceStatus.empty)
    parts = [
        f"{r.get('name')} ({r.get('type')}, {'running' if r.get('start_date') and not r.get('end_date') else 'not running'})"
        for r in rows[:5]
    ]
    return Digest(
        f"{len(rows)} survey(s): " + "; ".join(parts), {"surveys": [r.get("id") for r in rows[:10]]}
    )


def survey_stats(inp: SummaryInput) -> Digest:
    found = _object(inp.result, "stats")
    stats = found.get("stats") or {}

    def count(name: str) -> Any:
        return (stats.get(name) or {}).get("total_count", 0)

    summary = (
        f"Survey {inp.value}: shown {_n(count('survey shown'))}, dismissed {_n(count('survey dismissed'))},"
        f" sent {_n(count('survey sent'))}"
    )
    rate = (found.get("rates") or {}).get("response_rate")
    if rate is not None:
        summary += f" (response rate {rate}%)"
    data = {
        "shown": count("survey shown"),
        "dismissed": count("survey dismissed"),
        "sent": count("survey sent"),
    }
    return Digest(summary, data)


# ---------------------------------------------------------------- replay


def recordings(inp: SummaryInput) -> Digest:
    rows = _rows(inp.result)
    if not rows:
        scope = " for the requester" if inp.value else ""
        return Digest(f"No recordings in the last 7 days{scope}", status=EvidenceStatus.empty)
    errors = sum(1 for r in rows if (r.get("console_error_count") or 0) > 0)
    short = sum(
        1 for r in rows if isinstance(r.get("recording_duration"), int) and r["recording_duration"] < 5
    )
    latest = max((str(r.get("start_time") or "") for r in rows), default="")
    summary = f"{len(rows)} recording(s) in the last 7 days"
    if short:
        summary += f"; {short} shorter than 5 s"
    if errors:
        summary += f"; console errors in {errors}"
    if latest:
        summary += f"; latest {short_ts(latest)}"
    sources = sorted({str(r.get("snapshot_source")) for r in rows if r.get("snapshot_source")})
    if sources:
        summary += f"; sources {', '.join(sources)}"
    items = [
        {
            k: r.get(k)
            for k in ("id", "start_time", "recording_duration", "console_error_count", "snapshot_source")
        }
        for r in rows[:10]
    ]
    return Digest(summary, {"count": len(rows), "recordings": items}, posthog_url(rows[0]))


def recording(inp: SummaryInput) -> Digest:
    found = _object(inp.result, "id")
    summary = f"Recording {found.get('id')}: {found.get('recording_duration', '?')} s"
    if found.get("start_time"):
        summary += f", started {short_ts(found.get('start_time'))}"
    for key, label in (("console_error_count", "console errors"), ("click_count", "clicks")):
        if found.get(key) is not None:
            summary += f", {found.get(key)} {label}"
    if found.get("snapshot_source"):
        summary += f", source {found.get('snapshot_source')}"
    if found.get("ongoing"):
        summary += ", still ongoing"
    data = {
        k: found.get(k)
        for k in ("id", "recording_duration", "start_time", "console_error_count", "snapshot_source")
    }
    return Digest(summary, data, posthog_url(found))


# ---------------------------------------------------------------- project, organization, health


_SETTINGS = (
    ("session_recording_opt_in", "replay"),
    ("autocapture_exceptions_opt_in", "exception autocapture"),
    ("capture_console_log_opt_in", "console log capture"),
    ("surveys_opt_in", "surveys"),
    ("heatmaps_opt_in", "heatmaps"),
)


def project_settings(inp: SummaryInput) -> Digest:
    found = _object(inp.result, "id")
    if not any(key in found for key, _ in _SETTINGS):
        raise Unparseable("project without settings fields")
    parts = [f"{label} {'on' if found.get(key) else 'off'}" for key, label in _SETTINGS if key in found]
    if found.get("autocapture_opt_out"):
        parts.append("autocapture off")
    rate = found.get("session_recording_sample_rate")
    if rate not in (None, "", "1", "1.00", 1, 1.0):
        parts.append(f"replay sample rate {rate}")
    minimum = found.get("session_recording_minimum_duration_milliseconds")
    if minimum:
        parts.append(f"replay minimum duration {minimum} ms")
    if found.get("session_recording_linked_flag"):
        parts.append("replay gated by a linked flag")
    domains = found.get("recording_domains")
    if isinstance(domains, list) and domains:
        parts.append(f"replay limited to {len(domains)} authorized domain(s)")
    keys = [k for k, _ in _SETTINGS] + [
        "session_recording_sample_rate",
        "session_recording_minimum_duration_milliseconds",
        "session_recording_linked_flag",
        "recording_domains",
        "autocapture_opt_out",
    ]
    return Digest(
        f"Project {found.get('name') or found.get('id')}: " + ", ".join(parts),
        {k: found.get(k) for k in keys if k in found},
    )


def organization(inp: SummaryInput) -> Digest:
    found = _object(inp.result, "id", "name")
    projects = found.get("projects") or found.get("teams") or []
    summary = f"Organization {found.get('name')}: {len(projects)} project(s)"
    if found.get("member_count") is not None:
        summary += f", {found.get('member_count')} members"
    if found.get("created_at"):
        summary += f", created {short_ts(found.get('created_at'))}"
    return Digest(
        summary, {"id": found.get("id"), "projects": len(projects), "member_count": found.get("member_count")}
    )


def health_issues(inp: SummaryInput) -> Digest:
    rows = _rows(inp.result)
    if not rows:
        return Digest("No open health issues in the project", status=EvidenceStatus.empty)
    if any("kind" not in row for row in rows):
        raise Unparseable("health issues without kind")
    kinds: dict[str, int] = {}
    for row in rows:
        kinds[str(row.get("kind"))] = kinds.get(str(row.get("kind")), 0) + 1
    sdk = [r for r in rows if "sdk" in str(r.get("kind")).lower()]
    summary = f"{len(rows)} health issue(s): " + ", ".join(f"{k} ×{n}" for k, n in sorted(kinds.items()))
    if sdk:
        summary += "; SDK: " + "; ".join(_health_line(r) for r in sdk[:3])
    return Digest(summary, {"kinds": kinds}, posthog_url(inp.result))


def _health_line(row: dict[str, Any]) -> str:
    payload = row.get("payload") if isinstance(row.get("payload"), dict) else {}
    bits = [str(payload.get(k)) for k in ("lib", "current_version", "latest_version") if payload.get(k)]
    return f"{row.get('severity', '?')} {' '.join(bits) or row.get('kind')}".strip()


# ---------------------------------------------------------------- docs


_MD_LINK = re.compile(r"\[([^\]]+)\]\((https?://[^)\s]+)\)")
_URL = re.compile(r"https?://[^\s)\]>\"'`]+")


def clean_docs_url(url: str) -> str:
    """Drop trailing punctuation, tracking parameters and fragments from a docs link."""
    url = url.rstrip(".,;:!?")
    url = re.sub(r"[?&]utm_[^&#]*", "", url)
    return url.split("#", 1)[0].rstrip("?&")


def docs(inp: SummaryInput) -> Digest:
    found = _object(inp.result, "content")
    content = found.get("content")
    if not isinstance(content, str):
        raise Unparseable("docs content is not text")
    hits: list[dict[str, str]] = []
    for title, url in _MD_LINK.findall(content):
        hits.append({"title": title.strip(), "url": clean_docs_url(url)})
    if not hits:
        hits = [{"title": "", "url": clean_docs_url(u)} for u in dict.fromkeys(_URL.findall(content))]
    hits = list({h["url"]: h for h in hits if h["url"]}.values())
    if not hits:
        if content.strip():
            raise Unparseable("docs answer without links")
        return Digest(f"No docs found for '{inp.value}'", status=EvidenceStatus.empty)
    summary = f"Docs for '{inp.value}': " + "; ".join(h["title"] or h["url"] for h in hits[:4])
    return Digest(summary, {"query": inp.value, "results": hits[:6]}, hits[0]["url"])


SUMMARISERS: dict[str, Summariser] = {
    "flag": flag,
    "flag_activity": flag_activity,
    "flag_evaluation": flag_evaluation,
    "person": person,
    "sdk_versions": sdk_versions,
    "event_counts": event_counts,
    "replay_signals": replay_signals,
    "error_issues": error_issues,
    "error_issue": error_issue,
    "error_events": error_events,
    "survey": survey,
    "survey_list": survey_list,
    "survey_stats": survey_stats,
    "recordings": recordings,
    "recording": recording,
    "project_settings": project_settings,
    "organization": organization,
    "health_issues": health_issues,
    "docs": docs,
}
