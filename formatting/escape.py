"""Escaping for Slack text: untrusted ticket / model / evidence text must never become markup.

Guarantees (each builder in formatting/ routes every untrusted string through these helpers):

* `escape_mrkdwn` replaces exactly three characters, in this order: ``&`` → ``&amp;``, ``<`` → ``&lt;``,
  ``>`` → ``&gt;``. With every ``<`` escaped, no control sequence (``<!channel>``, ``<@U123>``,
  ``<#C1>``, ``<!subteam^S1>``, ``<https://evil|click>``) can be formed from input.
* `neutralize_mentions` inserts a ZERO WIDTH JOINER (U+200D) after an ``@`` that starts a word
  (``@here``, ``@channel``, ``@everyone``, ``@jane``, ``@support-team``) and after any ``@`` directly
  followed by ``here``/``channel``/``everyone`` (also mid-word: ``x@here``), so neither ``link_names``
  nor a ``markdown`` block / ``markdown_text`` can turn it into a broadcast or a mention. Any other
  ``@`` inside a word (``jane@acme.io``) is left alone, so e-mail addresses stay intact.
* `sanitize` drops what must never reach Slack or a terminal: C0/C1 control characters (NUL, ESC …;
  tab and newline are kept), lone surrogates, and the bidi override/isolate controls
  (U+202A–U+202E, U+2066–U+2069) that can visually reorder text. ``\\r\\n``/``\\r``/U+2028/U+2029
  become ``\\n``. Ordinary right-to-left text is untouched.
* Lengths are measured in UTF-16 code units (`slack_len`), which is never less than the number of
  code points, so a text within a limit here is within Slack's limit however Slack counts.
  `clip` never exceeds its limit, never splits a surrogate pair or an astral character, and never
  cuts an escape entity (``&amp;``/``&lt;``/``&gt;``) in half.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

ZWJ = "\u200d"
ELLIPSIS = "…"

_CONTROL_RE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_SURROGATE_RE = re.compile("[\ud800-\udfff]")
_NEWLINE_RE = re.compile("\r\n|\r|\u2028|\u2029")
_MENTION_RE = re.compile(r"(?<!\w)@(?=\w)|@(?=(?:here|channel|everyone))", re.IGNORECASE)
_WS_RE = re.compile(r"\s+")
_ENTITIES = ("&amp;", "&lt;", "&gt;")
_URL_FORBIDDEN_RE = re.compile(r"[|<>\s\"'`\x00-\x1f\x7f]")

URL_MAX = 3000


def slack_len(text: str) -> int:
    """Length in UTF-16 code units (astral characters such as most emoji count 2)."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def escape_mrkdwn(text: str) -> str:
    """Slack's escaping, exactly: ``&`` → ``&amp;`` then ``<`` → ``&lt;`` and ``>`` → ``&gt;``."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def neutralize_mentions(text: str) -> str:
    """Insert U+200D after every word-initial ``@`` and before every ``here``/``channel``/``everyone``
    that follows an ``@`` anywhere, so the text can never mention or broadcast."""
    return _MENTION_RE.sub("@" + ZWJ, text)


def sanitize(text: str) -> str:
    """Normalise newlines and drop control, bidi-override and lone-surrogate characters.

    A surrogate pair held as two code points is joined into the one character it encodes.
    """
    if "\r" in text or "\u2028" in text or "\u2029" in text:
        text = _NEWLINE_RE.sub("\n", text)
    if _SURROGATE_RE.search(text):
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "ignore")
    return _CONTROL_RE.sub("", text)


def one_line(text: str) -> str:
    """Collapse all whitespace (newlines included) into single spaces."""
    return _WS_RE.sub(" ", text).strip()


def safe_mrkdwn(text: str) -> str:
    """Untrusted text → mrkdwn that renders literally (sanitized, escaped, mentions neutralised)."""
    return neutralize_mentions(escape_mrkdwn(sanitize(text)))


def safe_inline(text: str, limit: int | None = None) -> str:
    """Like `safe_mrkdwn` but on one line, optionally clipped (entity-safe) to `limit`."""
    if limit is None:
        return neutralize_mentions(escape_mrkdwn(one_line(sanitize(text))))
    cut_early = len(text) > 2 * limit + 64  # don't escape 10k characters to show 200
    if cut_early:
        text = text[: 2 * limit + 64]
    out = neutralize_mentions(escape_mrkdwn(one_line(sanitize(text))))
    clipped = clip(out, limit)
    if cut_early and clipped == out and limit > 0:  # the input was longer: still mark the cut
        clipped = clip(out, limit - 1, marker="") + ELLIPSIS
    return clipped


def _units_prefix(text: str, budget: int) -> int:
    """Index of the longest prefix of `text` whose UTF-16 length is <= budget."""
    if text.isascii() or slack_len(text) == len(text):
        return min(budget, len(text))
    used = 0
    for i, ch in enumerate(text):
        used += 2 if ord(ch) > 0xFFFF else 1
        if used > budget:
            return i
    return len(text)


def _trim_cut(head: str) -> str:
    """`head` cut from a longer text, without what must never end a cut: half an escape entity, a
    dangling zero-width joiner, or a high surrogate whose partner was cut. Repeats until none is
    left, since removing one can expose another (``"\\ud83d&am"`` → ``"\\ud83d"`` → ``""``)."""
    while True:
        trimmed = _drop_partial_entity(head).rstrip(ZWJ)
        if trimmed and "\ud800" <= trimmed[-1] <= "\udbff":
            trimmed = trimmed[:-1]
        if trimmed == head:
            return head
        head = trimmed


def _drop_partial_entity(head: str) -> str:
    amp = head.rfind("&", max(0, len(head) - 4))
    if amp == -1:
        return head
    tail = head[amp:]
    if ";" not in tail and any(e.startswith(tail) for e in _ENTITIES):
        return head[:amp]
    return head


def clip(text: str, limit: int | None, marker: str = ELLIPSIS) -> str:
    """Shorten `text` to at most `limit` UTF-16 units, ending in `marker` when something was cut.

    Never splits a surrogate pair / astral character or an ``&amp;``/``&lt;``/``&gt;`` entity, and
    never leaves a dangling zero-width joiner at the cut.
    """
    if limit is None or slack_len(text) <= limit:
        return text
    if limit <= 0:
        return ""
    if slack_len(marker) > limit:
        marker = ""
    return _trim_cut(text[: _units_prefix(text, limit - slack_len(marker))]) + marker


def clip_mrkdwn(text: str, limit: int, marker: str = ELLIPSIS) -> str:
    """`clip` for composed mrkdwn: also never cuts inside one of our own ``<url|label>`` links.

    Every ``<`` from input is escaped, so a raw ``<`` in composed text is always ours.
    """
    if slack_len(text) <= limit:
        return text
    out = clip(text, limit, marker)
    head = out[: len(out) - len(marker)] if marker and out.endswith(marker) else out
    opened = head.rfind("<")
    if opened > head.rfind(">"):
        head = head[:opened]
    return head + (marker if slack_len(head + marker) <= limit else "")


def plain_text(text: str, limit: int, fallback: str = "-") -> str:
    """Text for a ``plain_text`` object: one line, sanitized, mentions neutralised, clipped.

    plain_text objects are never parsed for markup, so nothing is entity-escaped here (escaping
    would show up literally). Never returns an empty string (Slack requires at least 1 char).
    """
    out = clip(neutralize_mentions(one_line(sanitize(text))), limit)
    return out if out.strip() else clip(fallback, limit)


def is_safe_url(url: str | None) -> bool:
    """True for an absolute http(s) URL that cannot break out of a ``<url|label>`` link."""
    if not url or slack_len(url) > URL_MAX or _URL_FORBIDDEN_RE.search(url) or sanitize(url) != url:
        return False
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    # A netloc with "@" carries credentials (or hides the real host): never a link.
    return parts.scheme.lower() in ("http", "https") and bool(parts.netloc) and "@" not in parts.netloc


def link_target(url: str) -> str:
    """A safe URL with ``@`` after the host percent-encoded, so ``…/1@here`` cannot read as a broadcast."""
    parts = urlsplit(url)
    encoded = parts._replace(
        path=parts.path.replace("@", "%40"),
        query=parts.query.replace("@", "%40"),
        fragment=parts.fragment.replace("@", "%40"),
    )
    return urlunsplit(encoded)


def link(url: str | None, label: str, label_limit: int = 150, url_limit: int = 1000) -> str:
    """A mrkdwn link ``<url|label>`` when `url` is safe; otherwise the escaped label and URL as text.

    A URL whose escaped form is longer than `url_limit` is shown as clipped text, so one link can
    never overflow a text object.
    """
    text = safe_inline(label, label_limit)
    target = escape_mrkdwn(link_target(url)) if url and is_safe_url(url) else ""
    if target and slack_len(target) <= url_limit:
        return f"<{target}|{text}>" if text else f"<{target}>"
    if url:
        shown = safe_inline(url, 200)
        return f"{text} ({shown})" if text else shown
    return text


def split_mrkdwn(text: str, limit: int) -> list[str]:
    """Split composed mrkdwn into non-empty chunks of at most `limit` UTF-16 units.

    Prefers newline, then space boundaries; never splits a surrogate pair, an escape entity, or one of
    our own ``<url|label>`` links (unless a single link is longer than `limit`, which `link` prevents).
    """
    chunks: list[str] = []
    rest = text
    while slack_len(rest) > limit:
        cut = _units_prefix(rest, limit)
        window = rest[:cut]
        for sep in ("\n", " "):
            at = window.rfind(sep)
            if at > cut // 2:
                cut = at + 1
                break
        head = _trim_cut(rest[:cut])
        opened = head.rfind("<")
        if opened > head.rfind(">") and opened > 0:
            head = head[:opened]
        if not head:  # pathological: cannot cut cleanly, fall back to a hard entity-safe clip
            head = clip(rest, limit, marker="") or rest[:1]
        chunks.append(head)
        rest = rest[len(head) :]
    chunks.append(rest)
    return [c.strip("\n ") for c in chunks if c.strip()]
