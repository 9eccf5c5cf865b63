"""Error messages in the shapes customers paste them.

- `TypeError: x is undefined`, `requests.exceptions.ConnectionError: …`, and the same after a stray dot
  (`ERROR: .FileNotFoundError: [Errno 2] …`);
- the last line of a Python traceback, whatever the exception class is called;
- `Error [PostHogFetchHttpError]: …` (Node's inspect format) → `PostHogFetchHttpError: …`;
- Docker's `Error response from daemon: …`;
- JSON bodies: `{"message": "…"}`, `"detail"`, `"error_description"`, `"errorMessage"`, and Python's repr of
  them (`{'detail': '…'}`);
- the SDKs' console lines (`[PostHog.js] Failed to load surveys: …`), Go's `panic: …`, Ruby's
  `NoMethodError (undefined method …)`;
- TypeScript: `Property 'x' does not exist on type 'Y'`, `Type 'X' is missing the following properties from
  type 'Y'` / `… is not assignable to …`, Next.js's `Type error: …` and `TS2339: …`;
- pydantic: `1 validation error for QuerySchemaRoot …`;
- Apple's uncaught exceptions: `… uncaught exception 'NSInvalidArgumentException', reason: '-[…]: …'`;
- the message after a lowercase "error:" in prose, or on the first line of the block below it;
- CLI failure lines (Docker, Go tools) without an error word: `unable to prepare context: path "rust" not found`;
- messages without a class prefix that browsers and runtimes print (`The string did not match the expected
  pattern.`, `Failed to fetch` …: the profile's `error_phrases`);
- a quoted sentence with an error word near "error"/"failed"…, any quoted message right after "error"
  (`fails with the error "Non-OK response"`), and HTTP status lines (`429 Too Many Requests`).

Messages are returned in text order, without duplicates (a message inside a longer one is dropped).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from triage.intake.scan import MAX_PER_TYPE, anchors, find_all, matches_near, word_list

MAX_MESSAGE = 300  # Docker/OCI messages put the telling part (the path) after ~200 characters

_ERROR_LINE = re.compile(  # matched where a class name ending in Error/Exception and a colon start
    r"((?:[A-Za-z_]\w{0,40}\.){0,4}(?:[A-Z]\w{0,40}?)?(?:Error|Exception)):[ \t]+([^\n]{3,300})"
)
_BRACKET_CLASS = re.compile(r"\b(?:Error|Exception)[ \t]*\[([A-Z]\w{2,60})\]:[ \t]+([^\n]{3,300})")
_DOCKER = re.compile(r"Error response from daemon:[ \t]+[^\n]{3,300}")
_JSON_MESSAGE = re.compile(
    r"[\"'](?:message|detail|error_description|errorMessage|error_message|error)[\"'][ \t]*:[ \t]*"
    r"(?:\"([^\"\n]{3,300})\"|'([^'\n]{3,300})')",  # JSON, or a Python dict's repr
    re.IGNORECASE,
)
# SDK console lines: "[PostHog.js] Failed to load surveys: …", "[PostHog] [ErrorTracking] …"
_SDK_LOG = re.compile(r"\[PostHog[\w .-]{0,30}\](?:[ \t]*\[[\w .-]{1,40}\])*[ \t]+([^\n]{3,250})")
_SDK_LOG_WORD = re.compile(
    r"\b(?:error|errors|failed|fail|failure|could not|cannot|unable|invalid|denied|refused|timed out|timeout)\b",
    re.IGNORECASE,
)
# "we get this error: Failed to load surveys", "el siguiente error:\n```\nNo se pudo …\n```": the message after a
# lowercase "error:" (not a class name), on the same line or as the first line of the block that follows
_ERROR_INTRO = re.compile(
    r"(?<![\w.])(?<!no )(?<!not )(?:error|errors|error message|exception|fehler|fehlermeldung|erreur|"
    r"erreur suivante|erro|mensaje de error|message d'erreur|mensagem de erro)[ \t\u00a0]?:[ \t]*"
    r"(?:\n[ \t]*(?:```[\w-]*[ \t]*\n[ \t]*)?|(?=\S))([^\n]{3,300})",
    re.IGNORECASE,
)
_PROSE_START = re.compile(
    r"(?:it|we|i|our|my|the app|this|that|nothing|none|n/a|see|please|wir|ich|es|on|nous|je|il|"
    r"nós|eu|ele)\b",
    re.IGNORECASE,
)
_NAMESPACE = re.compile(r"\b[A-Za-z]\w{0,30}::\Z")
_MODULE_ERROR = re.compile(
    r"((?:[a-z_]\w{0,40}\.){1,6}(?:errors?|exceptions?)\.[A-Z]\w{2,60}):[ \t]+([^\n]{3,300})"
)
_GO_PANIC = re.compile(r"\bpanic:[ \t]+([^\n]{3,300})")
_RUBY_ERROR = re.compile(r"\b([A-Z]\w{2,60}(?:Error|Exception))[ \t]+\(([^\n()]{3,250})\)")
_TS_PROPERTY = re.compile(r"Property '[^'\n]{1,80}' does not exist on type '[^'\n]{1,120}'")
_TS_CODE = re.compile(r"\bTS\d{4}:[ \t]+([^\n]{3,300})")
_TS_TYPE = re.compile(
    r"(?:Type|Argument of type) '[^'\n]{1,120}' (?:is missing the following properties from type|is not assignable"
    r" to (?:type|parameter of type)) '[^'\n]{1,120}'(?:: [^\n]{1,200})?"
)
_TYPE_ERROR_LINE = re.compile(r"\bType error:[ \t]+([^\n]{3,300})")  # Next.js / tsc build output
# pydantic: "1 validation error for QuerySchemaRoot InsightVizNode.source Field required [type=missing, …]"
_PYDANTIC = re.compile(r"\b\d{1,3} validation errors? for [A-Za-z_]\w{0,80}(?:[ \t]+[^\n]{1,250})?")
_NS_EXCEPTION = re.compile(
    r"uncaught exception '([A-Z]\w{2,60})',[ \t]*reason:[ \t]*'([^\n]{3,300}?)'(?=[ \t]*(?:$|\n|[,.;]))",
    re.IGNORECASE | re.MULTILINE,
)
# a whole line that is a CLI failure: "unable to prepare context: path "rust" not found", "failed to solve: …"
# (lowercase and one clause, as Go tools print them; a capitalised prose sentence is not one)
_FAILURE_LINE = re.compile(
    r"^[ \t]*((?:unable to|failed to|could not|cannot|can't)[ \t][^:\n]{2,80}:[ \t]*(?:(?!\.[ \t])[^\n]){2,200}?)"
    r"[ \t]*$",
    re.MULTILINE,
)
_TRACEBACK_END = re.compile(r"([A-Za-z_][\w.]{0,120})(?::[ \t]*([^\n]{0,300}))?")
_ERROR_QUOTED = re.compile(  # "…", “…”, `…`, '…', French « … » and German „…“
    r"[\"“`]([^\"”`\n]{3,400})[\"”`]|(?<![\w'])'((?:[^'\n]|(?<=[A-Za-z])'(?=[a-z])){3,200})'(?![\w'])"
    r"|‘((?:[^‘’\n]|(?<=[A-Za-z])’(?=[a-z])){3,400})’"
    r"|«[ \t\u00a0]*([^«»\n]{3,400}?)[ \t\u00a0]*»|„([^„“”\n]{3,400})[“”]"  # stop at the next opening quote
)
# the words around a quoted message, in the ticket languages the playbooks route (en, es, de, fr, pt)
_SAYING_WORDS = (
    "says|said|saying|shows|showing|displays|message|warning|reads|get|getting|see|seeing|"
    "dice|dijo|muestra|aparece|sale|mensaje|sagt|zeigt|steht|erscheint|meldet|meldung|"
    "dit|affiche|indique|apparaît|diz|mostra|exibe|mensagem|"
    "throws|threw|throwing|raises|raised|logs|logged|prints|printed|outputs|complains|lanza|arroja|wirft|"
    "lève|lança"
)
_ERROR_WORDS = (
    "error|exception|failed|failure|cannot|unable|denied|refused|invalid|unauthorized|forbidden|"
    "timed out|timeout|fehler|fehlgeschlagen|ungültig|erreur|échec|impossible de|invalide|erro|falha|"
    "inválido|não foi possível|no se pudo|no se puede|falló|konnte nicht|kann nicht|verweigert|refusé|denegado|"
    "negado|rechazado"
)
# a quoted sentence right after a verb of saying is the message the customer saw, error word or not
_SAID = re.compile(
    rf"\b(?:says?|shows?|displays?|reads?|gets|{_SAYING_WORDS})[ \t]*:?[ \t]*\Z",
    re.IGNORECASE,
)
# a quoted text right after the word "error" is the message itself, even without an error word in it
_AFTER_ERROR = re.compile(
    r"\b(?:error|exception|fehler|fehlermeldung|erreur|erro)(?:[ \t]+message)?[ \t]*:?[ \t]*\Z", re.IGNORECASE
)
_ERROR_QUOTED_WORD = re.compile(rf"\b(?:{_ERROR_WORDS})\b", re.IGNORECASE)
_ERROR_ANCHORS = word_list(_ERROR_WORDS)
_SAYING = word_list(_SAYING_WORDS)
_HTTP_ERROR = re.compile(
    r"\b([45]\d\d)[ \t]+(Bad Request|Unauthorized|Forbidden|Not Found|Method Not Allowed|Conflict"
    r"|Payload Too Large|Content Too Large|Too Many Requests|Internal Server Error|Bad Gateway"
    r"|Service Unavailable|Gateway Timeout)\b",
    re.IGNORECASE,
)
_HTTP_ANCHORS = word_list(
    "bad request|unauthorized|forbidden|not found|method not allowed|conflict|too large|"
    "too many requests|internal server error|bad gateway|service unavailable|gateway timeout"
)
# where a phrase-type message ends: a sentence end, a closing quote, or prose joined on after it
_PHRASE_END = re.compile(
    r"[\"”`]|[.!?](?:\s|$)|\n|\s(?:when|since|after|whenever|while|but|every time|each time|on our|in our"
    r"|for our|for some|for all|if we|if i|and then|and it|and the)\s",
    re.IGNORECASE,
)
# a log line with a level prefix: "ERROR: for web  Cannot start service web: …", "web_1 | error: …"
_LOG_LEVEL_LINE = re.compile(
    r"^[ \t]*(?:[\w.-]{1,40}[ \t]*\|[ \t]*)?(?:ERROR|FATAL|Fatal|error|fatal)(?:[ \t]*\[[^\]\n]{1,40}\])?:[ \t]+"
    r"(?:for[ \t]+[\w.-]{1,40}[ \t]+)?\.?([^\n]{3,300})",
    re.MULTILINE,
)
_BRACKET_PREFIX = re.compile(r"^(?:error|exception)[ \t]*\[(\w+)\]:[ \t]*")
_TOKEN_BEFORE = re.compile(r"[\w$.'\"()\[\]]{1,80}[ \t]+\Z")


def _trim(message: str) -> str:
    """One line, at most MAX_MESSAGE characters, without a final period, separator or dangling quote."""
    message = " ".join(message.split()).rstrip(" ,;.")
    while message and message[-1] in "\"'`" and message.count(message[-1]) % 2 == 1:
        message = message[:-1].rstrip(" ,;.")
    return message[:MAX_MESSAGE].rstrip()


def _in_code_span(text: str, pos: int, message: str) -> str:
    """A message that starts inside `inline code` ends at the closing backtick."""
    line_start = text.rfind("\n", 0, pos) + 1
    if text.count("`", line_start, pos) % 2 == 1 and "`" in message:
        return _trim(message.split("`", 1)[0])
    return message


def _phrase_messages(text: str, low: str, phrases: Sequence[str]) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for phrase in phrases:
        needle = phrase.lower()
        for pos in find_all(low, needle, word_start=needle[0].isalnum(), limit=20):
            start = pos
            if phrase.startswith("is "):  # "x is not a function": the message starts at the token before
                before = _TOKEN_BEFORE.search(text, max(0, pos - 82), pos)
                start = before.start() if before else pos
                if text[start] in "\"'`(":
                    start += 1
            tail_from = pos + len(phrase)
            end_m = _PHRASE_END.search(text, tail_from, min(len(text), tail_from + 160))
            end = end_m.start() if end_m else min(len(text), tail_from + 160)
            if phrase.endswith(".") or phrase.replace("_", "").isupper():  # "ECONNRESET": the code alone
                end = tail_from
            found.append((start, _trim(text[start:end])))
    return found


def _traceback_ends(text: str) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for pos in find_all(text, "Traceback (most recent call last)", word_start=False, limit=10):
        line_start = text.find("\n", pos)
        indented = False
        while 0 <= line_start < len(text) - 1:
            nxt = text.find("\n", line_start + 1)
            line = text[line_start + 1 : nxt if nxt >= 0 else len(text)]
            if not line.strip() or line[:1] in " \t":
                indented = indented or bool(line.strip())
                line_start = nxt
                continue
            m = _TRACEBACK_END.match(line.strip())
            if indented and m is not None and (any(c.isupper() for c in m.group(1)) or "." in m.group(1)):
                message = m.group(1) + (
                    f": {m.group(2).strip()}" if m.group(2) and m.group(2).strip() else ""
                )
                found.append((line_start + 1, _trim(message)))
            break
    return found


def extract_errors(text: str, low: str, error_phrases: Sequence[str] = ()) -> list[str]:
    """Every error message in the text (module docstring), in text order, at most MAX_PER_TYPE."""
    found: list[tuple[int, str]] = []
    error_anchors = anchors(low, ("error", "exception", "fehler", "erreur", "erro"), word_start=False)
    for pos in anchors(low, ("error:", "exception:"), word_start=False):
        start = pos  # walk back over the class name ("requests.exceptions.ConnectionError")
        while start > 0 and pos - start < 200 and (text[start - 1].isalnum() or text[start - 1] in "_."):
            start -= 1
        while start < pos and text[start] == ".":  # "ERROR: .FileNotFoundError: …"
            start += 1
        if (m := _ERROR_LINE.match(text, start)) is not None:
            namespace = _NAMESPACE.search(text, max(0, start - 40), start)  # ClickHouse's "DB::Exception"
            cls = (namespace.group(0) if namespace else "") + m.group(1)
            found.append((namespace.start() if namespace else m.start(), _trim(f"{cls}: {m.group(2)}")))
    for pos in anchors(low, (".errors.", ".exceptions.", ".error.", ".exception."), word_start=False):
        start = pos  # a Python class in an errors/exceptions module: "kafka.errors.NoBrokersAvailable: …"
        while start > 0 and pos - start < 120 and (text[start - 1].isalnum() or text[start - 1] in "_."):
            start -= 1
        if (m := _MODULE_ERROR.match(text, start)) is not None:
            found.append((m.start(), _trim(f"{m.group(1)}: {m.group(2)}")))
    if "traceback" in low:
        found += _traceback_ends(text)
    if "[" in text:
        for m in matches_near(_BRACKET_CLASS, text, error_anchors, 12, 400):
            found.append((m.start(), _trim(f"{m.group(1)}: {m.group(2)}")))
    for pos in find_all(low, "error response from daemon", limit=20):
        if (m := _DOCKER.match(text, pos)) is not None:
            found.append((pos, _trim(m.group(0))))
    for pos in find_all(low, "property '", limit=50):
        if (m := _TS_PROPERTY.match(text, pos)) is not None:
            found.append((pos, _trim(m.group(0))))
    for pos in find_all(low, "ts", limit=50):
        if (m := _TS_CODE.match(text, pos)) is not None:
            found.append((pos, _trim(m.group(1))))
    for pos in anchors(low, ("type '", "argument of type '"), limit=50):
        if (m := _TS_TYPE.match(text, pos)) is not None:
            found.append((pos, _trim(m.group(0))))
    for pos in find_all(low, "type error:", limit=20):
        if (m := _TYPE_ERROR_LINE.match(text, pos)) is not None:
            found.append((m.start(1), _trim(m.group(1))))
    for pos in find_all(low, "validation error", word_start=False, limit=20):
        start = pos
        while start > 0 and text[start - 1] in "0123456789 ":
            start -= 1
        if (m := _PYDANTIC.match(text, start + (text[start] == " "))) is not None:
            found.append((m.start(), _trim(m.group(0))))
    for pos in find_all(low, "uncaught exception '", limit=20):
        if (m := _NS_EXCEPTION.match(text, pos)) is not None:
            found.append((pos, _trim(f"{m.group(1)}: {m.group(2)}")))
    for m in matches_near(_LOG_LEVEL_LINE, text, anchors(low, ("error:", "fatal:", "error [")), 80, 340):
        rest = m.group(1)
        if _ERROR_LINE.match(rest) is None:  # "ERROR: .FileNotFoundError: …" is a class line, found above
            found.append((m.start(1), _trim(rest)))
    for m in matches_near(_SDK_LOG, text, find_all(low, "[posthog", word_start=False, limit=20), 0, 340):
        if _SDK_LOG_WORD.search(m.group(1)):
            found.append((m.start(1), _trim(m.group(1))))
    intro_anchors = anchors(low, ("error", "exception", "fehler", "erreur", "erro", "mensaje", "message d"))
    for m in matches_near(_ERROR_INTRO, text, intro_anchors, 0, 340):
        message = m.group(1).strip().strip("`").lstrip(".")
        if _ERROR_LINE.match(message) or _BRACKET_CLASS.match(message):
            continue  # "ERROR: .FileNotFoundError: …", "error: TypeError: …": the class line, found above
        if not _PROSE_START.match(message) and not message.startswith("```") and len(message.split()) >= 2:
            found.append((m.start(1), _trim(message)))
    for pos in find_all(low, "panic:", limit=10):
        if (m := _GO_PANIC.match(text, pos)) is not None:
            found.append((pos, _trim(m.group(1))))
    for m in matches_near(
        _RUBY_ERROR, text, anchors(low, ("error (", "exception ("), word_start=False), 64, 260
    ):
        found.append((m.start(), _trim(f"{m.group(1)}: {m.group(2)}")))
    failure_anchors = anchors(low, ("unable to", "failed to", "could not", "cannot", "can't"))
    for m in matches_near(_FAILURE_LINE, text, failure_anchors, 40, 300):
        found.append((m.start(1), _trim(m.group(1))))
    json_anchors = anchors(
        low,
        ('"message"', '"detail"', '"error', '"errormessage"', "'message'", "'detail'", "'error"),
        word_start=False,
    )
    for m in matches_near(_JSON_MESSAGE, text, json_anchors, 2, 340):
        value = m.group(1) or m.group(2)
        if " " in value.strip() and any(c.isalpha() for c in value):
            found.append((m.start(1), _trim(value)))
    found += _phrase_messages(text, low, error_phrases)
    quoted = matches_near(_ERROR_QUOTED, text, anchors(low, _ERROR_ANCHORS, word_start=False), 402, 402)
    quoted += matches_near(_ERROR_QUOTED, text, anchors(low, _SAYING), 0, 240, cover=False)
    quoted += matches_near(_ERROR_QUOTED, text, error_anchors, 0, 40, cover=False)
    for m in quoted:
        value = next((g for g in m.groups() if g), "").strip()
        said = _SAID.search(text, max(0, m.start() - 20), m.start()) is not None
        after_error = _AFTER_ERROR.search(text, max(0, m.start() - 24), m.start()) is not None
        words = len(value.split())
        if len(value) <= MAX_MESSAGE and (
            _ERROR_QUOTED_WORD.search(value) or (said and words >= 3) or (after_error and words >= 2)
        ):
            found.append((m.start() + 1, _trim(value)))
    for m in matches_near(_HTTP_ERROR, text, anchors(low, _HTTP_ANCHORS, word_start=False), 6, 40):
        found.append((m.start(), _trim(m.group(0))))

    kept: list[str] = []
    keys: list[str] = []
    for pos, message in sorted(found, key=lambda item: (item[0], -len(item[1]))):
        message = _in_code_span(text, pos, message)
        if len(message) < 3:
            continue
        key = _BRACKET_PREFIX.sub(r"\1: ", message.lower())  # "Error [X]: m" is the message "X: m"
        if any(key in k or k in key for k in keys):
            continue
        keys.append(key)
        kept.append(message)
        if len(kept) >= MAX_PER_TYPE:
            break
    return kept
