"""The pinned MCP tool contract: the tools we call, as the real server defines them.

`integrations/contracts/posthog_mcp.json` holds, for each PostHog MCP tool triagebot reads (and a few write
tools the guard tests need): its `inputSchema`, MCP annotations, the API-key scopes it needs and the shape
of its result text. It is taken from the `PostHog/posthog` monorepo (files and commits in its `source`).

Two uses:
- the adapter validates every call's arguments against the pinned `inputSchema` before sending, so a call
  the real server would reject (or silently strip) fails in our tests instead of in production;
- the fake MCP server (`integrations/posthog_mcp_replay.py`) serves exactly these tools.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from mcp.types import Tool, ToolAnnotations

CONTRACT_PATH = Path(__file__).parent / "contracts" / "posthog_mcp.json"


@dataclass(frozen=True)
class ContractTool:
    name: str
    input_schema: dict[str, Any]
    annotations: dict[str, bool]
    required_scopes: tuple[str, ...] = ()
    result: dict[str, Any] = field(default_factory=dict)

    @property
    def read_only(self) -> bool:
        return (
            self.annotations.get("readOnlyHint") is True
            and self.annotations.get("destructiveHint") is not True
        )

    def as_mcp_tool(self) -> Tool:
        return Tool(
            name=self.name,
            input_schema=self.input_schema,
            annotations=ToolAnnotations.model_validate(self.annotations),
        )


@dataclass(frozen=True)
class Contract:
    tools: dict[str, ContractTool]
    source: dict[str, Any]

    def get(self, name: str) -> ContractTool | None:
        return self.tools.get(name)

    def scopes_for(self, name: str) -> tuple[str, ...]:
        tool = self.tools.get(name)
        return tool.required_scopes if tool else ()


def load_contract(path: Path | str | None = None) -> Contract:
    raw = json.loads(Path(path or CONTRACT_PATH).read_text(encoding="utf-8"))
    tools = {
        name: ContractTool(
            name=name,
            input_schema=spec["inputSchema"],
            annotations=dict(spec.get("annotations") or {}),
            required_scopes=tuple(spec.get("required_scopes") or ()),
            result=dict(spec.get("result") or {}),
        )
        for name, spec in raw["tools"].items()
    }
    return Contract(tools=tools, source=dict(raw.get("source") or {}))


@lru_cache(maxsize=1)
def posthog_contract() -> Contract:
    return load_contract(CONTRACT_PATH)


def argument_errors(schema: Mapping[str, Any], arguments: Mapping[str, Any]) -> list[str]:
    """Every way `arguments` break `schema` (JSON Schema 2020-12), one short line each; [] when valid."""
    validator = Draft202012Validator(dict(schema))
    errors = sorted(validator.iter_errors(dict(arguments)), key=lambda e: list(e.absolute_path))
    lines = []
    for error in errors:
        where = ".".join(str(p) for p in error.absolute_path) or "arguments"
        lines.append(f"{where}: {error.message}")
    return lines


def without_additional_properties(schema: Mapping[str, Any]) -> dict[str, Any]:
    """The schema as the server applies it: zod object schemas strip unknown keys instead of rejecting them."""
    relaxed = dict(schema)
    relaxed.pop("additionalProperties", None)
    return relaxed
