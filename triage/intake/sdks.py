"""SDKs named in a ticket, with the version mentioned next to them (catalogue from `_sdks.yaml`)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from triage.intake.scan import MAX_PER_TYPE, ascii_lower, find_all, word_list
from triage.models import Sdk
from triage.playbooks import SdkSpec, bundled_sdk_catalogue, implied_sdks

_VER = r"\d{1,4}\.\d{1,4}(?:\.\d{1,5})?(?:-[0-9A-Za-z]{1,20}(?:\.[0-9A-Za-z]{1,20}){0,3})?"
_CONNECT = (
    r"(?:(?:to|version|versión|versão|ver\.?|at|is|on|from|auf|sur|en|em|v|which|currently|now|the|latest"
    r"|vers|à|a|para|de|von|la|na|no|in|do|da)"
    r"[ \t]*[:,]?[ \t]+){0,4}[(\[]?[ \t]*"
)
# after the SDK's name: an optional entry point (`posthog-js/react`), a closing bracket (`(posthog_flutter)`),
# a separator, connecting words and a range operator (`^`, `~>`), then the version
_SDK_AFTER = re.compile(
    rf"(?![\w-])(?:(?:/[a-z][\w-]{{0,30}})?[)\]]?[\"']?[ \t]*(?:@|==|~=|>=|:|=|,|\(|\||–|—)?[ \t]*[\"']?[ \t]*{_CONNECT}"
    rf"[\^~>=v]{{0,3}}[ \t]*"
    rf"(?P<ver>{_VER})"
    rf"(?![\w.]*\d)(?:[ \t]+(?:to|a|à|auf|para|vers|naar)[ \t]+(?:la[ \t]+)?v?(?P<ver2>{_VER}))?)?",
    re.IGNORECASE,
)
_SDK_BEFORE = re.compile(
    rf"\b(?:version|versión|versão|v)[ \t]*(?P<ver>{_VER})[ \t]+(?:(?:of|de|von|du|da|do)[ \t]+)?"
    rf"(?:the[ \t]+)?\Z",
    re.IGNORECASE,
)
_PIP = re.compile(rf"[ \t]*(?:==|~=|>=)[ \t]*(?P<ver>{_VER})")
# "Version: 4.9.0", "### Version\n\n4.9.0" (issue templates), "versão 1.2.3": the version of the one SDK named
_VERSION_WORD = re.compile(
    r"\b(?P<owner>\w+[ \t]+)?(?:version|versión|versão|versao)[ \t]*[:=]?[ \t\n#]{0,12}v?"
    r"(?P<ver>\d{1,4}\.\d{1,4}\.\d{1,5}(?:-[0-9A-Za-z]{1,20}(?:\.[0-9A-Za-z]{1,20}){0,3})?)(?![\w.]*\d)",
    re.IGNORECASE,
)
# the one platform-implied SDK's version: "our Android app uses the PostHog SDK version 3.1.0"
_SDK_WORD_VERSION = re.compile(
    r"\b(?:posthog|sdk|library|lib)[ \t]+(?:version[ \t]*:?[ \t]*)?v?"
    r"(?P<ver>\d{1,4}\.\d{1,4}\.\d{1,5}(?:-[0-9A-Za-z]{1,20}(?:\.[0-9A-Za-z]{1,20}){0,3})?)(?![\w.]*\d)",
    re.IGNORECASE,
)
# "the posthog package version 6.3.3 (pip)": the PyPI package named in ordinary words, in a Python ticket
_PACKAGE_WORDS = re.compile(
    rf"[ \t]+(?:package|library|lib)[ \t]+(?:version[ \t]*:?[ \t]*)?v?(?P<ver>{_VER})"
)
_PYTHON_CONTEXT = re.compile(
    r"\bpip3?\b|\bpython\b|\bpypi\b|\.py\b|\bdjango\b|\bflask\b|\bfastapi\b", re.IGNORECASE
)
# a pasted event: "$lib": "web", "$lib_version": "1.130.0"
_LIB = re.compile(r"\$lib[\"']?[ \t]*[:=][ \t]*[\"']?([\w-]{2,40})")
_LIB_VERSION = re.compile(rf"\$lib_version[\"']?[ \t]*[:=][ \t]*[\"']?v?(?P<ver>{_VER})")
# a version word after one of these is some other software's version, not the SDK's
_OTHER_OWNER = frozenset(
    word_list(
        "app|os|ios|android|browser|chrome|safari|firefox|node|python|flutter|dart|react|next|nextjs|xcode|"
        "ruby|php|go|java|kotlin|swift|docker|compose|helm|chart|clickhouse|postgres|django|expo|api"
    )
)


def extract_sdks(
    text: str, sdk_catalogue: Sequence[SdkSpec] | None = None, *, low: str | None = None
) -> list[Sdk]:
    """SDKs named in the text, with the version mentioned next to them (first mention with a version wins)."""
    catalogue = list(sdk_catalogue) if sdk_catalogue is not None else list(bundled_sdk_catalogue())
    if not catalogue:
        return []
    low = low if low is not None and len(low) == len(text) else ascii_lower(text)
    found: dict[str, tuple[int, str | None]] = {}  # name → (first position, version)
    in_path: set[str] = set()  # names whose version so far came from a file path ("posthog-node@4.3.2/lib")

    def note(name: str, pos: int, version: str | None, path: bool = False) -> None:
        if name not in found:
            if len(found) >= MAX_PER_TYPE:
                return
            found[name] = (pos, None)
        if version and (not found[name][1] or (name in in_path and not path)):
            found[name] = (found[name][0], version)  # a stated version beats one read from a path
            (in_path.add if path else in_path.discard)(name)

    for spec in catalogue:
        for phrase in spec.phrases():
            for pos in find_all(low, phrase, limit=50):
                end = pos + len(phrase)
                if pos > 0 and low[pos - 1] in ".-":
                    continue
                after = _SDK_AFTER.match(text, end)
                if after is None:  # followed by a word character or "-": part of a longer name
                    continue
                version = after.group("ver2") or after.group("ver")
                path = bool(version) and text[after.end() : after.end() + 1] == "/"
                if not version:
                    before = _SDK_BEFORE.search(text, max(0, pos - 60), pos)
                    version = before.group("ver") if before else None
                note(spec.name, pos, version, path)
        if spec.registry == "pypi" and spec.package:
            python = _PYTHON_CONTEXT.search(text) is not None
            for pos in find_all(low, spec.package.lower(), limit=50):
                pip = _PIP.match(text, pos + len(spec.package))
                if pip is None and python:
                    pip = _PACKAGE_WORDS.match(text, pos + len(spec.package))
                if pip is not None:
                    note(spec.name, pos, pip.group("ver"))
    for spec in catalogue:
        for lock_name in spec.lock_names:  # "  - PostHog (3.19.0)" in a Podfile.lock
            lock = re.search(
                rf"^[ \t]*-[ \t]+{re.escape(lock_name)}[ \t]+\((?P<ver>{_VER})\)", text, re.MULTILINE
            )
            if lock is not None:
                note(spec.name, lock.start(), lock.group("ver"))
    if "$lib" in text:
        lib, lib_version = _LIB.search(text), _LIB_VERSION.search(text)
        by_lib = {v.lower(): s for s in catalogue for v in (s.name, *s.lib_values)}
        if lib is not None and (spec := by_lib.get(lib.group(1).lower())) is not None:
            note(spec.name, lib.start(), lib_version.group("ver") if lib_version else None)
    if len(found) == 1:  # one SDK named without a version: "Version: 4.9.0" elsewhere in the ticket is its
        ((name, (pos, version)),) = found.items()
        if not version:
            for m in _VERSION_WORD.finditer(text):
                owner = (m.group("owner") or "").strip().lower()
                if owner not in _OTHER_OWNER:
                    found[name] = (pos, m.group("ver"))
                    break
    result: list[Sdk] = []
    specs = {s.name: s for s in catalogue}
    for name, (_, version) in sorted(found.items(), key=lambda item: item[1][0]):
        spec = specs[name]
        result.append(Sdk(name=name, version=version, package=spec.package, registry=spec.registry))
    if not result:  # none named: platform words ("on Android", "Next.js") imply one (`implied=True`)
        implied = implied_sdks(text, catalogue)[:MAX_PER_TYPE]
        sdk_word = _SDK_WORD_VERSION.search(text) if len(implied) == 1 else None
        for spec in implied:
            version = sdk_word.group("ver") if sdk_word else None
            result.append(
                Sdk(
                    name=spec.name,
                    version=version,
                    package=spec.package,
                    registry=spec.registry,
                    implied=True,
                )
            )
    return result
