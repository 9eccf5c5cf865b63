"""The read-only guard: which MCP tools triagebot may call.

triagebot must never change anything on a customer's project, so every MCP tool call passes this guard
*before* anything is sent. A tool may run only when all of these hold:

1. its name is on an explicit allowlist (the trust decision, made by us, not by the server);
2. the server offers it (it appeared in ``tools/list`` at discovery);
3. its annotations say ``readOnlyHint: true`` and do not say ``destructiveHint: true``.

Annotations are hints written by the server, so they can only *narrow* the allowlist, never widen it:
a tool that lies ("read-only" but mutating) is still refused unless someone allowlisted it by name.
For PostHog the server-side ``x-posthog-readonly: true`` header is a further line of defence.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from mcp.types import Tool


@dataclass(frozen=True)
class ReadOnlyGuard:
    """An allowlist of tool names plus the annotation checks. Pure logic: no I/O."""

    allowed: frozenset[str]

    @classmethod
    def of(cls, *groups: Iterable[str]) -> ReadOnlyGuard:
        names = {name.strip() for group in groups for name in group if name and name.strip()}
        return cls(frozenset(names))

    def is_allowlisted(self, name: str) -> bool:
        return name in self.allowed

    def check(self, name: str, discovered: Mapping[str, Tool]) -> str | None:
        """Return None when `name` may be called, otherwise the one-line reason it is refused."""
        if name not in self.allowed:
            return f"tool {name!r} is not on the read allowlist"
        tool = discovered.get(name)
        if tool is None:
            return f"tool {name!r} is not offered by the server (not in tools/list)"
        return annotation_refusal(tool)

    def permitted(self, discovered: Mapping[str, Tool]) -> list[str]:
        """The discovered tools that would pass the guard (for `triagebot check` and logs)."""
        return sorted(name for name in discovered if self.check(name, discovered) is None)


def annotation_refusal(tool: Tool) -> str | None:
    """Refuse a tool whose annotations do not promise a read-only, non-destructive call."""
    hints = tool.annotations
    if hints is not None and hints.destructive_hint is True:
        return f"tool {tool.name!r} is annotated destructive (destructiveHint=true)"
    if hints is None or hints.read_only_hint is not True:
        shown = None if hints is None else hints.read_only_hint
        return f"tool {tool.name!r} is not annotated read-only (readOnlyHint={shown})"
    return None
