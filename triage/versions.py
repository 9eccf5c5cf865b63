"""The one version comparison of the project (registries, known-bug fixed-in, drafts, synthesis).

Versions are compared with `packaging.version` semantics (PEP 440), after normalising what tickets, npm
and tags write: a `pkg@` prefix and a leading `v`/range operator are dropped, semver build metadata
(`+build.5`) is ignored, and npm pre-releases map onto PEP 440 ones (`1.2.3-beta.1` → `1.2.3b1`,
`-alpha.2` → `a2`, `-rc.1` → `rc1`); any other npm pre-release label (`-next.3`, `-canary.5`) is a
pre-release too (`.dev3`), so it still sorts before its release. Trailing zeros do not matter
("3.6" == "3.6.0"). Text that is no version sorts below every version.
"""

from __future__ import annotations

import re

from packaging.version import InvalidVersion, Version

_NPM_PRE = re.compile(r"^(\d+(?:\.\d+)*)-([0-9A-Za-z.-]+)$")
_KNOWN_PRE = {
    "alpha": "a",
    "a": "a",
    "beta": "b",
    "b": "b",
    "rc": "rc",
    "pre": "rc",
    "preview": "rc",
    "dev": "dev",
}
_VERSION_IN_TEXT = re.compile(r"\d+(?:\.\d+)+(?:[-.+]?[0-9A-Za-z]+(?:\.[0-9A-Za-z]+)*)?")


def parse_version(text: str | None) -> Version | None:
    """A comparable version, or None when the text holds none."""
    if not text:
        return None
    value = str(text).strip()
    if "@" in value:
        value = value.rsplit("@", 1)[1]
    value = value.lstrip("vV=^~<> ").split("+", 1)[0]
    if (m := _NPM_PRE.match(value)) is not None:
        release, pre = m.group(1), m.group(2)
        label, _, rest = pre.partition(".")
        label_word = re.match(r"[A-Za-z]+", label)
        number = "".join(re.findall(r"\d+", rest or label)) or "0"
        kind = _KNOWN_PRE.get(label_word.group(0).lower()) if label_word else None
        value = f"{release}{kind}{number}" if kind and kind != "dev" else f"{release}.dev{number}"
    try:
        return Version(value)
    except InvalidVersion:
        return None


def compare_versions(a: str | None, b: str | None) -> int:
    """-1 if a < b, 0 if equal, 1 if a > b; text that is no version sorts lowest."""
    va, vb = parse_version(a), parse_version(b)
    if va is None or vb is None:
        return (va is not None) - (vb is not None)
    return (va > vb) - (va < vb)


def older_than(current: str | None, target: str | None) -> bool | None:
    """True when `current` is strictly older than `target`; None when either is not a version."""
    va, vb = parse_version(current), parse_version(target)
    if va is None or vb is None:
        return None
    return va < vb


def is_behind(customer: str | None, latest: str | None) -> bool:
    """True when the customer's version is strictly older than `latest` (False when either is unknown)."""
    return older_than(customer, latest) is True


def version_from_tag(tag: str) -> str | None:
    """ "v1.161.2" / "posthog-js@1.161.2" / "posthog-react-native-v3.4.0" → "1.161.2" / "3.4.0"."""
    found = _VERSION_IN_TEXT.findall(tag.rsplit("@", 1)[-1])
    return found[-1] if found else None
