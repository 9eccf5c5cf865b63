"""The link policy: every URL in model-written text is an evidence URL or on the allowlist.

One helper (`LinkPolicy.police`) used by grading, drafts and follow-ups. It
- turns masked links (Slack `<url|text>`, Markdown `[text](url)`) into "text (url)", so link text never
  comes from the model (the text stays as plain words, the URL is judged on its own);
- keeps a URL when it is exactly the URL of a citable evidence row, or when it falls under an allowlisted
  prefix (http(s), same host, path under the prefix's path, no user info, port or query; an entry ending
  in "$" allows that page only);
- replaces any other URL with `LINK_REMOVED`, and reports how many it removed.

The allowlist is data: the profile's `_links.yaml` (the product's docs), the SDK catalogue's GitHub repos
and npm/PyPI package pages, plus `LINK_ALLOWLIST` from the settings.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from triage.models import Evidence
from triage.playbooks import BUNDLED_DIR, SdkSpec, load_sdk_catalogue
from triage.protocols import ConfigError

LINK_REMOVED = "[link removed]"
LINKS_FILE = "_links.yaml"

_URL = re.compile(r"(?i)\b(?:https?://|www\.)[^\s<>\"'`|]+")
_TRAILING = ".,;:!?)]}*_~'\""
_SLACK_MASKED = re.compile(r"<((?:https?://|www\.)[^|>\s]*)\|([^>]*)>", re.I)
_SLACK_BARE = re.compile(r"<((?:https?://|www\.)[^|>\s]*)>", re.I)
_MD_MASKED = re.compile(r"\[([^\]\n]*)\]\(\s*<?((?:https?://|www\.)[^)\s>]*)>?\s*\)", re.I)


@dataclass(frozen=True)
class _Prefix:
    host: str
    path: str  # "" or "/docs" (no trailing slash)
    exact: bool  # the page itself only (an entry ending in "$")

    def covers(self, host: str, path: str) -> bool:
        if host != self.host:
            return False
        if self.exact:
            return path == self.path
        return not self.path or path == self.path or path.startswith(self.path + "/")


def _prefix(entry: str) -> _Prefix:
    exact = entry.endswith("$")
    url = entry.removesuffix("$")
    parts = urlsplit(url if "://" in url else f"https://{url}")
    if not parts.hostname or parts.scheme not in ("http", "https"):
        raise ConfigError(f"link allowlist entry {entry!r} is not an http(s) URL prefix")
    return _Prefix(parts.hostname.lower(), parts.path.rstrip("/"), exact)


def _normal(url: str) -> str:
    """An evidence URL for exact comparison: no fragment, no trailing slash."""
    return url.split("#", 1)[0].rstrip("/")


@dataclass(frozen=True)
class LinkPolicy:
    allowlist: tuple[str, ...] = ()
    _prefixes: tuple[_Prefix, ...] = field(default=(), repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_prefixes", tuple(_prefix(u) for u in self.allowlist))

    # ------------------------------------------------------------ building

    @classmethod
    def from_profile(
        cls,
        directory: Path | str | None = None,
        *,
        extra: Sequence[str] = (),
        catalogue: Sequence[SdkSpec] | None = None,
    ) -> LinkPolicy:
        """The profile's docs prefixes, the catalogue's repos and package pages, plus `extra`."""
        folder = Path(directory) if directory else BUNDLED_DIR
        path = folder / LINKS_FILE
        if not path.is_file():
            path = BUNDLED_DIR / LINKS_FILE
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            docs = [str(u) for u in raw.get("docs", [])]
        except (yaml.YAMLError, AttributeError, TypeError) as exc:
            raise ConfigError(f"link allowlist {path} is invalid: {str(exc).splitlines()[0]}") from exc
        specs = catalogue if catalogue is not None else load_sdk_catalogue(directory)
        urls = [*docs, *catalogue_urls(specs), *extra]
        return cls(tuple(dict.fromkeys(u.strip() for u in urls if u.strip())))

    # ------------------------------------------------------------ judging

    def allows(self, url: str, evidence_urls: Iterable[str] = ()) -> bool:
        clean = url.rstrip(_TRAILING)
        if _normal(clean) in {_normal(u) for u in evidence_urls if u}:
            return True
        parts = urlsplit(clean if "://" in clean else f"https://{clean}")
        try:
            port = parts.port
        except ValueError:
            return False
        if parts.scheme not in ("http", "https") or parts.username or parts.password or port:
            return False
        if parts.query or not parts.hostname:
            return False
        host, path = parts.hostname.lower(), parts.path.rstrip("/")
        return any(p.covers(host, path) for p in self._prefixes)

    def police(self, text: str, evidence_urls: Iterable[str] = ()) -> tuple[str, int]:
        """(text with masked links unmasked and every URL outside evidence + allowlist removed, count)."""
        if not text or ("://" not in text and "www." not in text.lower()):
            return text, 0
        known = [u for u in evidence_urls if u]
        out = _SLACK_MASKED.sub(lambda m: f"{m.group(2).strip()} ({m.group(1)})".lstrip(), text)
        out = _SLACK_BARE.sub(lambda m: m.group(1), out)
        out = _MD_MASKED.sub(lambda m: f"{m.group(1).strip()} ({m.group(2)})".lstrip(), out)
        removed = 0

        def judge(m: re.Match[str]) -> str:
            nonlocal removed
            raw = m.group(0)
            url = raw.rstrip(_TRAILING)
            tail = raw[len(url) :]
            if self.allows(url, known):
                return raw
            removed += 1
            return LINK_REMOVED + tail

        out = _URL.sub(judge, out)
        return out, removed


def catalogue_urls(specs: Iterable[SdkSpec]) -> list[str]:
    """Each SDK's GitHub repo page (the page itself, so an issue number cannot be made up) and its
    releases, and its npm/PyPI package pages."""
    urls: list[str] = []
    for spec in specs:
        if spec.repo:
            urls += [f"https://github.com/{spec.repo}$", f"https://github.com/{spec.repo}/releases"]
        if spec.package and spec.registry == "npm":
            urls.append(f"https://www.npmjs.com/package/{spec.package}")
        if spec.package and spec.registry == "pypi":
            urls.append(f"https://pypi.org/project/{spec.package}")
    return urls


def evidence_urls(evidence: Iterable[Evidence], *, public_only: bool = False) -> list[str]:
    """URLs that research returned (internal rows excluded for customer-facing text)."""
    urls: list[str] = []
    for ev in evidence:
        if public_only and ev.internal:
            continue
        urls += [u for u in (ev.url, ev.data.get("fix_pr_url"), ev.data.get("release_url")) if u]
    return [str(u) for u in urls]


@lru_cache(maxsize=1)
def default_policy() -> LinkPolicy:
    """The bundled profile's policy (used when no policy is passed)."""
    return LinkPolicy.from_profile()
