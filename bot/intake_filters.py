"""Which Zendesk tickets the intake triages (ZENDESK_FILTER_* settings). Pure, no I/O.

Every filter is a list; an empty list means "any". All comparisons are case-insensitive.

- statuses     ticket status must be one of them (default: new, open)
- priorities   priority must be one of them; the word `none` matches a ticket without a priority
- tags_include the ticket must carry AT LEAST ONE of these tags
- tags_exclude the ticket must carry NONE of these tags (wins over tags_include)
- groups / brands / forms   the ticket's group_id / brand_id / ticket_form_id must be listed (ids)
- via          the creation channel (`via.channel`: web, email, api, chat, …) must be listed

Deleted tickets (the incremental export lists them with status "deleted") never match.
The same filter applies to a polled `IncrementalTicket` and to a fetched `Ticket` (webhook path).
"""

from __future__ import annotations

from typing import Protocol

from pydantic import BaseModel, ConfigDict

from bot.settings import Settings

DELETED = "deleted"
NO_PRIORITY = "none"


class FilterableTicket(Protocol):
    """What both `IncrementalTicket` and `triage.models.Ticket` expose."""

    @property
    def id(self) -> int: ...
    @property
    def status(self) -> str: ...
    @property
    def priority(self) -> str | None: ...
    @property
    def tags(self) -> list[str]: ...
    @property
    def group_id(self) -> int | None: ...
    @property
    def brand_id(self) -> int | None: ...
    @property
    def ticket_form_id(self) -> int | None: ...
    @property
    def via_channel(self) -> str | None: ...


def _norm(values: list[str] | tuple[str, ...] | frozenset[str]) -> frozenset[str]:
    return frozenset(v.strip().lower() for v in values if v and v.strip())


def _show(values: frozenset[str]) -> str:
    return ", ".join(sorted(values))


class TicketFilter(BaseModel):
    model_config = ConfigDict(frozen=True)

    statuses: frozenset[str] = frozenset()
    priorities: frozenset[str] = frozenset()
    tags_include: frozenset[str] = frozenset()
    tags_exclude: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()
    brands: frozenset[str] = frozenset()
    forms: frozenset[str] = frozenset()
    via: frozenset[str] = frozenset()

    @classmethod
    def from_settings(cls, settings: Settings) -> TicketFilter:
        return cls.build(
            statuses=settings.zendesk_filter_statuses,
            priorities=settings.zendesk_filter_priorities,
            tags_include=settings.zendesk_filter_tags_include,
            tags_exclude=settings.zendesk_filter_tags_exclude,
            groups=settings.zendesk_filter_groups,
            brands=settings.zendesk_filter_brands,
            forms=settings.zendesk_filter_forms,
            via=settings.zendesk_filter_via,
        )

    @classmethod
    def build(
        cls,
        *,
        statuses: list[str] | None = None,
        priorities: list[str] | None = None,
        tags_include: list[str] | None = None,
        tags_exclude: list[str] | None = None,
        groups: list[str] | None = None,
        brands: list[str] | None = None,
        forms: list[str] | None = None,
        via: list[str] | None = None,
    ) -> TicketFilter:
        """Normalised (trimmed, lower-case) filter; `None`/empty = any."""
        return cls(
            statuses=_norm(statuses or []),
            priorities=_norm(priorities or []),
            tags_include=_norm(tags_include or []),
            tags_exclude=_norm(tags_exclude or []),
            groups=_norm(groups or []),
            brands=_norm(brands or []),
            forms=_norm(forms or []),
            via=_norm(via or []),
        )

    def matches(self, t: FilterableTicket) -> tuple[bool, str]:
        """(True, "") when the ticket should be triaged, else (False, why not)."""
        status = (t.status or "").lower()
        if status == DELETED:
            return False, "ticket is deleted"
        if self.statuses and status not in self.statuses:
            return False, f"status {status or '(none)'!r} not in {_show(self.statuses)}"
        priority = (t.priority or "").lower() or NO_PRIORITY
        if self.priorities and priority not in self.priorities:
            return False, f"priority {priority!r} not in {_show(self.priorities)}"
        tags = {tag.lower() for tag in t.tags}
        excluded = tags & self.tags_exclude
        if excluded:
            return False, f"excluded tag {_show(frozenset(excluded))}"
        if self.tags_include and not tags & self.tags_include:
            return False, f"none of the tags {_show(self.tags_include)}"
        for label, wanted, value in (
            ("group", self.groups, t.group_id),
            ("brand", self.brands, t.brand_id),
            ("form", self.forms, t.ticket_form_id),
        ):
            if wanted and (value is None or str(value) not in wanted):
                return False, f"{label} {value if value is not None else '(none)'} not in {_show(wanted)}"
        channel = (t.via_channel or "").lower()
        if self.via and channel not in self.via:
            return False, f"via {channel or '(unknown)'!r} not in {_show(self.via)}"
        return True, ""

    def describe(self) -> str:
        """One line for the start-up log."""
        parts = [
            f"{name}={_show(values)}"
            for name, values in (
                ("statuses", self.statuses),
                ("priorities", self.priorities),
                ("tags_include", self.tags_include),
                ("tags_exclude", self.tags_exclude),
                ("groups", self.groups),
                ("brands", self.brands),
                ("forms", self.forms),
                ("via", self.via),
            )
            if values
        ]
        return "; ".join(parts) or "every ticket (no filters)"
