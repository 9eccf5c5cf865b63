"""Decoding MCP tool results without ever lying.

The PostHog MCP server answers in several text shapes (see `integrations/contracts/posthog_mcp.json`):

- **TOON** (`@toon-format/toon` `encode`) for objects — the default (`services/mcp/src/lib/response.ts`).
  Before encoding, every `query` value is swapped for a placeholder and put back afterwards as pretty
  JSON, so a TOON document may contain multi-line JSON after a `query:` key; we undo that first.
- a **pipe-delimited table** for `execute-sql` (`SQLResultsFormatter`: a header line, one line per row,
  `(null)` for NULL, `...truncated` for shortened cells, a trailing `[SQL result preview: …]` notice);
- **JSON** text (tools that declare a JSON output, and other MCP servers);
- `structuredContent`, when a tool sends it.

Anything that does not decode into the expected shape raises `Unparseable`. The caller turns that into
an evidence row with status `error` ("unparseable result from TOOL"), never `empty`: a result we cannot
read says nothing about whether the data exists.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from toon_format import ToonDecodeError
from toon_format import decode as toon_decode

NULL_MARKER = "(null)"
TRUNCATED_MARKER = "...truncated"
PREVIEW_NOTICE = re.compile(r"^\[(?:SQL result preview|Incomplete SQL result preview)\b.*\]$")
# Where the server spliced pretty JSON into TOON: TOON itself never opens `{` or `[` at the end of a line.
_SPLICED_JSON = re.compile(r"[{\[](?=\n[ \t]*[\]}\"\[{0-9tfn-])")
_PLACEHOLDER = "__TRIAGEBOT_QUERY_{}__"


class Unparseable(ValueError):
    """The result text is not in a shape we can read."""


@dataclass
class Decoded:
    value: Any
    kind: str  # "structured" | "json" | "toon" | "table" | "text"
    truncated: bool = False  # the server cut rows or cells (SQL preview)
    columns: list[str] | None = None  # a table's header

    def require_columns(self, *names: str) -> None:
        """A table must carry the columns the query asked for, else it is not our result."""
        missing = [n for n in names if n not in (self.columns or [])]
        if missing:
            raise Unparseable(f"table lacks column(s) {', '.join(missing)}")


def decode_result(text: str, structured: Any = None, fmt: str = "auto") -> Decoded:
    """Decode one tool result. `fmt` is the contract's result format: toon, json, pipe_table, text or auto."""
    if structured is not None and fmt != "pipe_table":
        if isinstance(structured, dict | list):
            return Decoded(structured, "structured")
        raise Unparseable(f"structuredContent is a {type(structured).__name__}, not an object")
    if fmt == "pipe_table":
        return decode_table(text)
    if fmt == "text":
        if not text.strip():
            raise Unparseable("empty result")
        return Decoded(text, "text")
    return decode_document(text)


def decode_document(text: str) -> Decoded:
    """An object or array, from JSON or TOON text. A bare string/number is not a document."""
    stripped = text.strip()
    if not stripped:
        raise Unparseable("empty result")
    if stripped[0] in "[{":
        try:
            value = json.loads(stripped)
        except ValueError:
            pass
        else:
            if isinstance(value, dict | list):
                return Decoded(value, "json")
    value = _decode_toon(stripped)
    if not isinstance(value, dict | list):
        raise Unparseable("not a TOON or JSON document")
    return Decoded(value, "toon")


def _decode_toon(text: str) -> Any:
    protected, queries = _protect_queries(text)
    try:
        value = toon_decode(protected)
    except (ToonDecodeError, ValueError, TypeError, IndexError) as exc:
        raise Unparseable(f"TOON: {str(exc).splitlines()[0][:120]}") from None
    return _restore_queries(value, queries) if queries else value


def _protect_queries(text: str) -> tuple[str, list[Any]]:
    """Replace the pretty JSON the server splices in for `query` values by TOON-safe placeholders."""
    queries: list[Any] = []
    out: list[str] = []
    pos = 0
    decoder = json.JSONDecoder()
    for match in _SPLICED_JSON.finditer(text):
        start = match.start()
        if start < pos:
            continue
        try:
            value, end = decoder.raw_decode(text, start)
        except ValueError:
            continue
        out.append(text[pos:start])
        out.append(_PLACEHOLDER.format(len(queries)))
        queries.append(value)
        pos = end
    out.append(text[pos:])
    return "".join(out), queries


def _restore_queries(value: Any, queries: list[Any]) -> Any:
    if isinstance(value, str) and value.startswith("__TRIAGEBOT_QUERY_"):
        index = value.removeprefix("__TRIAGEBOT_QUERY_").removesuffix("__")
        if index.isdigit() and int(index) < len(queries):
            return queries[int(index)]
    if isinstance(value, list):
        return [_restore_queries(v, queries) for v in value]
    if isinstance(value, dict):
        return {k: _restore_queries(v, queries) for k, v in value.items()}
    return value


def decode_table(text: str) -> Decoded:
    """A `SQLResultsFormatter` table → list of row dicts (numbers as numbers, `(null)` as None)."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    if not lines:
        raise Unparseable("empty result")
    truncated = False
    if PREVIEW_NOTICE.match(lines[-1].strip()):
        truncated = True
        lines = lines[:-1]
        if not lines:
            raise Unparseable("SQL preview without a header")
    header = lines[0].split("|")
    if any(not name.strip() or (" " in name and "(" not in name) for name in header):
        raise Unparseable("no table header")
    rows: list[dict[str, Any]] = []
    for line in lines[1:]:
        cells = line.split("|")
        if len(cells) != len(header):
            raise Unparseable(f"row has {len(cells)} cells, header has {len(header)}")
        if any(TRUNCATED_MARKER in cell for cell in cells):
            truncated = True
        rows.append({name: _cell(cell) for name, cell in zip(header, cells, strict=True)})
    return Decoded(rows, "table", truncated=truncated, columns=header)


def _cell(cell: str) -> Any:
    if cell == NULL_MARKER:
        return None
    if cell == f'"{NULL_MARKER}"':
        return NULL_MARKER
    if re.fullmatch(r"-?\d+", cell):
        return int(cell)
    if re.fullmatch(r"-?\d+\.\d+(?:[eE][-+]?\d+)?", cell):
        return float(cell)
    if cell[:1] in "[{" and not cell.endswith(TRUNCATED_MARKER):
        try:
            return json.loads(cell)
        except ValueError:
            return _python_literal_list(cell)
    return cell


def _python_literal_list(cell: str) -> Any:
    """`str(list)` from the Python formatter uses single quotes: ['a', 'b'] → a list of strings."""
    match = re.fullmatch(r"\[(.*)\]", cell)
    if match is None:
        return cell
    inner = match.group(1).strip()
    if not inner:
        return []
    items = [item.strip() for item in inner.split(",")]
    if all(len(i) >= 2 and i[0] == i[-1] == "'" for i in items):
        return [i[1:-1] for i in items]
    return cell
