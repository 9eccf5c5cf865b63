"""Slack Block Kit limits and validators for the payloads we build.

`validate_message` / `validate_view` return every violation they find as a readable string with a
JSON-pointer-like path (an empty list means valid). They check the documented hard limits below;
they are used by the property tests and by the bot just before sending. Lengths are counted in UTF-16
code units (see `formatting.escape.slack_len`), which is never less than a code-point count.
"""

from __future__ import annotations

import re
from typing import Any

from formatting.escape import slack_len

MESSAGE_BLOCKS_MAX = 50
MODAL_BLOCKS_MAX = 100
SECTION_TEXT_MAX = 3000
SECTION_FIELDS_MAX = 10
SECTION_FIELD_TEXT_MAX = 2000
HEADER_TEXT_MAX = 150
TEXT_OBJECT_MAX = 3000
CONTEXT_ELEMENTS_MAX = 10
ACTIONS_ELEMENTS_MAX = 25
BUTTON_TEXT_MAX = 75
BUTTON_VALUE_MAX = 2000
BUTTON_URL_MAX = 3000
ACCESSIBILITY_LABEL_MAX = 75
ACTION_ID_MAX = 255
BLOCK_ID_MAX = 255
MARKDOWN_CUMULATIVE_MAX = 12000
MESSAGE_TEXT_MAX = 40000
MODAL_PRIVATE_METADATA_MAX = 3000
MODAL_TITLE_MAX = 24
MODAL_SUBMIT_MAX = 24
MODAL_CLOSE_MAX = 24
CALLBACK_ID_MAX = 255
INPUT_LABEL_MAX = 2000
INPUT_HINT_MAX = 2000
PLACEHOLDER_MAX = 150
PLAIN_TEXT_INPUT_MAX = 3000  # max_length / initial_value of a plain_text_input
IMAGE_URL_MAX = 3000
ALT_TEXT_MAX = 2000

# Our own soft budget (not a Slack limit): total characters of block text per message, so a long
# report is split into readable messages well below Slack's undocumented payload-size ceiling.
MESSAGE_TEXT_BUDGET = 12000

_MESSAGE_BLOCK_TYPES = {
    "section",
    "header",
    "context",
    "actions",
    "divider",
    "image",
    "rich_text",
    "markdown",
}
_VIEW_BLOCK_TYPES = {"section", "header", "context", "actions", "divider", "image", "rich_text", "input"}
_RICH_TEXT_CONTAINERS = {"rich_text_section", "rich_text_list", "rich_text_preformatted", "rich_text_quote"}


class _Checker:
    def __init__(self, surface: str) -> None:
        self.surface = surface
        self.errors: list[str] = []
        self.markdown_total = 0

    def err(self, path: str, msg: str) -> None:
        self.errors.append(f"{path}: {msg}")

    # -- primitives

    def string(self, value: Any, path: str, max_len: int, *, required: bool = True) -> None:
        if value is None:
            if required:
                self.err(path, "missing")
            return
        if not isinstance(value, str):
            self.err(path, f"must be a string, got {type(value).__name__}")
            return
        n = slack_len(value)
        if n > max_len:
            self.err(path, f"{n} characters, max {max_len}")

    def text_obj(self, obj: Any, path: str, max_len: int, *, plain_only: bool = False) -> None:
        if not isinstance(obj, dict):
            self.err(path, "text object must be an object")
            return
        kind = obj.get("type")
        allowed = ("plain_text",) if plain_only else ("plain_text", "mrkdwn")
        if kind not in allowed:
            self.err(f"{path}/type", f"must be one of {allowed}, got {kind!r}")
        text = obj.get("text")
        if not isinstance(text, str):
            self.err(f"{path}/text", "missing or not a string")
            return
        if not text.strip():
            self.err(f"{path}/text", "must not be empty")
        n = slack_len(text)
        if n > max_len:
            self.err(f"{path}/text", f"{n} characters, max {max_len}")
        if "verbatim" in obj and kind != "mrkdwn":
            self.err(f"{path}/verbatim", "only allowed on mrkdwn")
        if "emoji" in obj and kind != "plain_text":
            self.err(f"{path}/emoji", "only allowed on plain_text")

    # -- elements

    def button(self, el: dict[str, Any], path: str) -> None:
        self.text_obj(el.get("text"), f"{path}/text", BUTTON_TEXT_MAX, plain_only=True)
        self.string(el.get("action_id"), f"{path}/action_id", ACTION_ID_MAX, required=False)
        self.string(el.get("value"), f"{path}/value", BUTTON_VALUE_MAX, required=False)
        self.string(el.get("url"), f"{path}/url", BUTTON_URL_MAX, required=False)
        self.string(
            el.get("accessibility_label"),
            f"{path}/accessibility_label",
            ACCESSIBILITY_LABEL_MAX,
            required=False,
        )
        style = el.get("style")
        if style is not None and style not in ("primary", "danger"):
            self.err(f"{path}/style", f"must be primary or danger, got {style!r}")

    def element(self, el: Any, path: str) -> None:
        if not isinstance(el, dict):
            self.err(path, "element must be an object")
            return
        kind = el.get("type")
        if kind == "button":
            self.button(el, path)
        elif kind == "plain_text_input":
            self.string(el.get("action_id"), f"{path}/action_id", ACTION_ID_MAX, required=False)
            self.string(
                el.get("initial_value"), f"{path}/initial_value", PLAIN_TEXT_INPUT_MAX, required=False
            )
            for key in ("min_length", "max_length"):
                value = el.get(key)
                if value is not None and (
                    not isinstance(value, int) or not 0 <= value <= PLAIN_TEXT_INPUT_MAX
                ):
                    self.err(f"{path}/{key}", f"must be an int in 0..{PLAIN_TEXT_INPUT_MAX}")
            if el.get("placeholder") is not None:
                self.text_obj(el["placeholder"], f"{path}/placeholder", PLACEHOLDER_MAX, plain_only=True)
            initial, max_length = el.get("initial_value"), el.get("max_length")
            if isinstance(initial, str) and isinstance(max_length, int) and slack_len(initial) > max_length:
                self.err(f"{path}/initial_value", "longer than max_length")
        elif kind == "image":
            self.string(el.get("image_url"), f"{path}/image_url", IMAGE_URL_MAX)
            self.string(el.get("alt_text"), f"{path}/alt_text", ALT_TEXT_MAX)
        elif isinstance(kind, str):
            self.string(el.get("action_id"), f"{path}/action_id", ACTION_ID_MAX, required=False)
        else:
            self.err(f"{path}/type", "missing")

    def action_ids_unique(self, elements: list[Any], path: str) -> None:
        seen: set[str] = set()
        for el in elements:
            action_id = el.get("action_id") if isinstance(el, dict) else None
            if isinstance(action_id, str):
                if action_id in seen:
                    self.err(path, f"duplicate action_id {action_id!r}")
                seen.add(action_id)

    def rich_text(self, elements: Any, path: str, depth: int = 0) -> None:
        if not isinstance(elements, list) or not elements:
            self.err(path, "must be a non-empty list")
            return
        for i, el in enumerate(elements):
            p = f"{path}/{i}"
            if not isinstance(el, dict):
                self.err(p, "must be an object")
                continue
            kind = el.get("type")
            if depth == 0 and kind not in _RICH_TEXT_CONTAINERS:
                self.err(f"{p}/type", f"not a rich_text container: {kind!r}")
            if kind in _RICH_TEXT_CONTAINERS:
                self.rich_text(el.get("elements"), f"{p}/elements", depth + 1)
            elif kind == "text":
                text = el.get("text")
                if not isinstance(text, str) or not text:
                    self.err(f"{p}/text", "must be a non-empty string")

    # -- blocks

    def blocks(self, blocks: Any, max_blocks: int) -> None:
        if blocks is None:
            return
        if not isinstance(blocks, list):
            self.err("/blocks", "must be a list")
            return
        if len(blocks) > max_blocks:
            self.err("/blocks", f"{len(blocks)} blocks, max {max_blocks}")
        allowed = _MESSAGE_BLOCK_TYPES if self.surface == "message" else _VIEW_BLOCK_TYPES
        block_ids: set[str] = set()
        for i, block in enumerate(blocks):
            path = f"/blocks/{i}"
            if not isinstance(block, dict):
                self.err(path, "block must be an object")
                continue
            kind = block.get("type")
            if kind not in allowed:
                self.err(f"{path}/type", f"{kind!r} is not allowed in a {self.surface}")
                continue
            block_id = block.get("block_id")
            if block_id is not None:
                self.string(block_id, f"{path}/block_id", BLOCK_ID_MAX)
                if block_id in block_ids:
                    self.err(f"{path}/block_id", f"duplicate block_id {block_id!r}")
                if isinstance(block_id, str):
                    block_ids.add(block_id)
            getattr(self, f"block_{kind}")(block, path)

    def block_section(self, block: dict[str, Any], path: str) -> None:
        text, fields = block.get("text"), block.get("fields")
        if text is None and not fields:
            self.err(path, "section needs text or fields")
        if text is not None:
            self.text_obj(text, f"{path}/text", SECTION_TEXT_MAX)
        if fields is not None:
            if not isinstance(fields, list) or not fields:
                self.err(f"{path}/fields", "must be a non-empty list")
            else:
                if len(fields) > SECTION_FIELDS_MAX:
                    self.err(f"{path}/fields", f"{len(fields)} fields, max {SECTION_FIELDS_MAX}")
                for j, field in enumerate(fields):
                    self.text_obj(field, f"{path}/fields/{j}", SECTION_FIELD_TEXT_MAX)
        if block.get("accessory") is not None:
            self.element(block["accessory"], f"{path}/accessory")

    def block_header(self, block: dict[str, Any], path: str) -> None:
        self.text_obj(block.get("text"), f"{path}/text", HEADER_TEXT_MAX, plain_only=True)

    def block_context(self, block: dict[str, Any], path: str) -> None:
        elements = block.get("elements")
        if not isinstance(elements, list) or not elements:
            self.err(f"{path}/elements", "must be a non-empty list")
            return
        if len(elements) > CONTEXT_ELEMENTS_MAX:
            self.err(f"{path}/elements", f"{len(elements)} elements, max {CONTEXT_ELEMENTS_MAX}")
        for j, el in enumerate(elements):
            if isinstance(el, dict) and el.get("type") == "image":
                self.element(el, f"{path}/elements/{j}")
            else:
                self.text_obj(el, f"{path}/elements/{j}", TEXT_OBJECT_MAX)

    def block_actions(self, block: dict[str, Any], path: str) -> None:
        elements = block.get("elements")
        if not isinstance(elements, list) or not elements:
            self.err(f"{path}/elements", "must be a non-empty list")
            return
        if len(elements) > ACTIONS_ELEMENTS_MAX:
            self.err(f"{path}/elements", f"{len(elements)} elements, max {ACTIONS_ELEMENTS_MAX}")
        for j, el in enumerate(elements):
            self.element(el, f"{path}/elements/{j}")
        self.action_ids_unique(elements, f"{path}/elements")

    def block_divider(self, block: dict[str, Any], path: str) -> None:
        return None

    def block_image(self, block: dict[str, Any], path: str) -> None:
        self.element(block, path)

    def block_rich_text(self, block: dict[str, Any], path: str) -> None:
        self.rich_text(block.get("elements"), f"{path}/elements")

    def block_markdown(self, block: dict[str, Any], path: str) -> None:
        text = block.get("text")
        if not isinstance(text, str) or not text.strip():
            self.err(f"{path}/text", "must be a non-empty string")
            return
        self.markdown_total += slack_len(text)

    def block_input(self, block: dict[str, Any], path: str) -> None:
        self.text_obj(block.get("label"), f"{path}/label", INPUT_LABEL_MAX, plain_only=True)
        if block.get("hint") is not None:
            self.text_obj(block["hint"], f"{path}/hint", INPUT_HINT_MAX, plain_only=True)
        if block.get("element") is None:
            self.err(f"{path}/element", "missing")
        else:
            self.element(block["element"], f"{path}/element")


def validate_message(payload: dict[str, Any]) -> list[str]:
    """Every limit violation in a chat.postMessage/chat.update payload (``text`` + ``blocks``)."""
    checker = _Checker("message")
    text = payload.get("text")
    if not isinstance(text, str) or not text.strip():
        checker.err("/text", "a non-empty fallback text is required")
    elif slack_len(text) > MESSAGE_TEXT_MAX:
        checker.err("/text", f"{slack_len(text)} characters, max {MESSAGE_TEXT_MAX}")
    checker.blocks(payload.get("blocks"), MESSAGE_BLOCKS_MAX)
    if checker.markdown_total > MARKDOWN_CUMULATIVE_MAX:
        checker.err("/blocks", f"markdown blocks total {checker.markdown_total} characters, max 12000")
    return checker.errors


def validate_view(view: dict[str, Any]) -> list[str]:
    """Every limit violation in a modal view (views.open / views.update / views.push)."""
    checker = _Checker("view")
    if view.get("type") != "modal":
        checker.err("/type", f"must be 'modal', got {view.get('type')!r}")
    checker.text_obj(view.get("title"), "/title", MODAL_TITLE_MAX, plain_only=True)
    for key, max_len in (("submit", MODAL_SUBMIT_MAX), ("close", MODAL_CLOSE_MAX)):
        if view.get(key) is not None:
            checker.text_obj(view[key], f"/{key}", max_len, plain_only=True)
    blocks = _common_view_fields(checker, view)
    has_input = any(isinstance(b, dict) and b.get("type") == "input" for b in blocks)
    if has_input and view.get("submit") is None:
        checker.err("/submit", "a modal with input blocks needs a submit button")
    return checker.errors


def validate_home(view: dict[str, Any]) -> list[str]:
    """Every limit violation in a Home tab view (views.publish): type "home", at most 100 blocks."""
    checker = _Checker("view")
    if view.get("type") != "home":
        checker.err("/type", f"must be 'home', got {view.get('type')!r}")
    for key in ("title", "submit", "close"):
        if key in view:
            checker.err(f"/{key}", "not allowed in a Home tab view")
    _common_view_fields(checker, view)
    return checker.errors


def _common_view_fields(checker: _Checker, view: dict[str, Any]) -> list[Any]:
    """What every view holds: private_metadata, callback_id, external_id and at most 100 blocks (the
    blocks are returned; [] when they are not a list)."""
    checker.string(
        view.get("private_metadata"), "/private_metadata", MODAL_PRIVATE_METADATA_MAX, required=False
    )
    checker.string(view.get("callback_id"), "/callback_id", CALLBACK_ID_MAX, required=False)
    checker.string(view.get("external_id"), "/external_id", CALLBACK_ID_MAX, required=False)
    blocks = view.get("blocks")
    if not isinstance(blocks, list):
        checker.err("/blocks", "required list")
        return []
    checker.blocks(blocks, MODAL_BLOCKS_MAX)
    return blocks


_OUR_LINK_RE = re.compile(r"<https?://[^\s|<>]+(?:\|[^<>]*)?>")
_BROADCAST_RE = re.compile(r"@(here|channel|everyone)", re.IGNORECASE)


def _texts(node: Any, path: str, out: list[tuple[str, str, bool]]) -> None:
    """Collect (path, text, parsed-as-mrkdwn) for every rendered text in a payload."""
    if isinstance(node, dict):
        kind = node.get("type")
        text = node.get("text")
        if isinstance(text, str) and kind in ("mrkdwn", "markdown", "plain_text", "text"):
            out.append((f"{path}/text", text, kind in ("mrkdwn", "markdown")))
        for key, value in node.items():
            if key != "text" or not isinstance(value, str):
                _texts(value, f"{path}/{key}", out)
    elif isinstance(node, list):
        for i, item in enumerate(node):
            _texts(item, f"{path}/{i}", out)


def unsafe_markup(payload: dict[str, Any]) -> list[str]:
    """Markup in a message or view that could ping, mention or mask a link.

    Flags any ``<`` in mrkdwn/markdown text (and in the top-level ``text``) that does not open an
    http(s) link of the form we build, and any un-neutralised ``@here``/``@channel``/``@everyone`` in
    any rendered text. Input text (``initial_value``) is not rendered as markup and is not checked.
    """
    found: list[tuple[str, str, bool]] = []
    if isinstance(payload.get("text"), str):
        found.append(("/text", payload["text"], True))
    _texts(payload.get("blocks"), "/blocks", found)
    for key in ("title", "submit", "close"):
        _texts(payload.get(key), f"/{key}", found)
    problems: list[str] = []
    for path, text, parsed in found:
        if parsed:
            for m in re.finditer("<", text):
                if not _OUR_LINK_RE.match(text, m.start()):
                    problems.append(f"{path}: raw '<' at {m.start()}: {text[m.start() : m.start() + 30]!r}")
        for m in _BROADCAST_RE.finditer(text):
            problems.append(f"{path}: broadcast {m.group(0)!r}")
    return problems
