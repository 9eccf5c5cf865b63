"""TicketFilter: the ZENDESK_FILTER_* settings applied to export rows and fetched tickets."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.intake_filters import TicketFilter
from bot.settings import Settings
from integrations.zendesk import IncrementalTicket
from triage.models import Ticket


def row(**kw: object) -> IncrementalTicket:
    base: dict[str, object] = {
        "id": 1,
        "updated_at": datetime(2026, 1, 5, 10, 0, tzinfo=UTC),
        "status": "new",
        "priority": "normal",
        "tags": ["posthog", "flags"],
        "group_id": 10,
        "brand_id": 20,
        "ticket_form_id": 30,
        "via_channel": "web",
    }
    base.update(kw)
    return IncrementalTicket.model_validate(base)


def test_defaults_from_settings_take_new_and_open_only() -> None:
    f = TicketFilter.from_settings(Settings(_env_file=None))  # type: ignore[call-arg]
    assert f.statuses == {"new", "open"}
    assert f.matches(row(status="new")) == (True, "")
    assert f.matches(row(status="open"))[0]
    ok, why = f.matches(row(status="solved"))
    assert not ok and "solved" in why


def test_settings_from_environment_csv(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZENDESK_FILTER_STATUSES", "New, Pending")
    monkeypatch.setenv("ZENDESK_FILTER_TAGS_EXCLUDE", "spam")
    monkeypatch.setenv("ZENDESK_FILTER_GROUPS", "10,11")
    monkeypatch.setenv("ZENDESK_FILTER_VIA", "email")
    f = TicketFilter.from_settings(Settings(_env_file=None))  # type: ignore[call-arg]
    assert f.statuses == {"new", "pending"}
    assert f.matches(row(via_channel="email"))[0]
    assert not f.matches(row(via_channel="web"))[0]
    assert not f.matches(row(via_channel="email", tags=["spam"]))[0]
    assert not f.matches(row(via_channel="email", group_id=12))[0]


def test_deleted_never_matches_even_without_filters() -> None:
    f = TicketFilter.build()
    assert f.matches(row(status="solved"))[0]
    assert f.matches(row(status="deleted")) == (False, "ticket is deleted")
    assert not TicketFilter.build(statuses=["deleted"]).matches(row(status="deleted"))[0]


def test_priority_with_none_keyword() -> None:
    f = TicketFilter.build(priorities=["urgent", "high", "none"])
    assert f.matches(row(priority="HIGH"))[0]
    assert f.matches(row(priority=None))[0]
    ok, why = f.matches(row(priority="low"))
    assert not ok and "low" in why


def test_tags_include_any_and_exclude_wins() -> None:
    f = TicketFilter.build(tags_include=["flags", "replay"], tags_exclude=["internal_test"])
    assert f.matches(row(tags=["replay"]))[0]
    ok, why = f.matches(row(tags=["billing"]))
    assert not ok and "none of the tags" in why
    ok, why = f.matches(row(tags=["flags", "internal_test"]))
    assert not ok and "internal_test" in why


@pytest.mark.parametrize(
    ("field", "setting", "good", "bad"),
    [
        ("group_id", "groups", 10, 11),
        ("brand_id", "brands", 20, 21),
        ("ticket_form_id", "forms", 30, None),
    ],
)
def test_ids(field: str, setting: str, good: int, bad: int | None) -> None:
    f = TicketFilter.build(**{setting: [str(good), "99"]})
    assert f.matches(row(**{field: good}))[0]
    ok, why = f.matches(row(**{field: bad}))
    assert not ok and why


def test_applies_to_fetched_ticket_too() -> None:
    f = TicketFilter.build(statuses=["new"], via=["api"], tags_exclude=["spam"])
    ticket = Ticket(id=5, status="new", via_channel="api", tags=["x"])
    assert f.matches(ticket) == (True, "")
    assert not f.matches(ticket.model_copy(update={"via_channel": "mobile"}))[0]
    assert not f.matches(ticket.model_copy(update={"status": "deleted"}))[0]


def test_describe() -> None:
    assert TicketFilter.build().describe() == "every ticket (no filters)"
    assert "statuses=new, open" in TicketFilter.build(statuses=["open", "new"]).describe()
