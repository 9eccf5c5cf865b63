"""`RegistrySource`: the latest published version of each SDK the ticket names (npm, PyPI).

One task per SDK whose catalogue entry has a registry: npm `GET {npm}/{pkg}/latest` (scoped names as
`@scope%2Fname`), PyPI `GET {pypi}/pypi/{project}/json`. The evidence says whether the customer is behind.
Also home of the small dependency-free version comparison the GitHub source reuses.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx

from integrations.http import SourceHttpError, get_json, tls_context
from triage.models import Evidence, EvidenceStatus, Intake, ResearchTask, Sdk
from triage.versions import compare_versions, is_behind, version_from_tag

if TYPE_CHECKING:
    from triage.playbooks import Playbook

USER_AGENT = "triagebot (+https://github.com/; support triage research)"

# Used only when the intake's Sdk has no package/registry of its own.
BUILTIN_PACKAGES: dict[str, tuple[str, str]] = {
    "posthog-js": ("npm", "posthog-js"),
    "posthog-node": ("npm", "posthog-node"),
    "posthog-react-native": ("npm", "posthog-react-native"),
    "posthog-python": ("pypi", "posthog"),
}

# ---------------------------------------------------------------- versions


# ---------------------------------------------------------------- the source


def _package_of(sdk: Sdk) -> tuple[str, str] | None:
    if sdk.package and sdk.registry:
        registry = sdk.registry.lower()
        return (registry, sdk.package) if registry in ("npm", "pypi") else None
    return BUILTIN_PACKAGES.get(sdk.name)


class RegistrySource:
    """ResearchSource "registry": latest versions on npm / PyPI versus the customer's version."""

    name = "registry"

    def __init__(
        self,
        npm_url: str = "https://registry.npmjs.org",
        pypi_url: str = "https://pypi.org",
        *,
        timeout_s: float = 10,
        max_retries: int = 2,
        transport: httpx.AsyncBaseTransport | None = None,
        max_wait_s: float = 20.0,
        backoff_s: float = 0.5,
    ) -> None:
        self.npm_url = npm_url.rstrip("/")
        self.pypi_url = pypi_url.rstrip("/")
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.max_wait_s = max_wait_s
        self.backoff_s = backoff_s
        self._transport = transport

    def plan(self, intake: Intake, playbook: Playbook) -> list[ResearchTask]:
        tasks: list[ResearchTask] = []
        seen: set[tuple[str, str]] = set()
        for sdk in intake.identifiers.sdks:
            found = _package_of(sdk)
            if not found or found in seen:
                continue
            seen.add(found)
            registry, package = found
            label = "npm" if registry == "npm" else "PyPI"
            tasks.append(
                ResearchTask(
                    key=f"registry:{registry}:{package}",
                    source=self.name,
                    tool=f"{registry}_latest",
                    arguments={
                        "registry": registry,
                        "package": package,
                        "sdk": sdk.name,
                        "customer_version": sdk.version,
                    },
                    description=f"latest {package} on {label} vs the customer's version",
                )
            )
        return tasks

    def url_for(self, registry: str, package: str) -> str:
        if registry == "npm":
            return f"{self.npm_url}/{quote(package, safe='@')}/latest"
        return f"{self.pypi_url}/pypi/{quote(package, safe='')}/json"

    async def check(self) -> str:
        """For `triagebot check`: both registries answer for the default SDK packages."""
        async with httpx.AsyncClient(
            transport=self._transport, headers={"User-Agent": USER_AGENT}, verify=tls_context()
        ) as client:
            found = []
            for registry, package in (("npm", "posthog-js"), ("pypi", "posthog")):
                data = await get_json(
                    client,
                    self.url_for(registry, package),
                    timeout_s=self.timeout_s,
                    max_retries=self.max_retries,
                    max_wait_s=self.max_wait_s,
                    backoff_s=self.backoff_s,
                    service=registry,
                )
                version = data.get("version") or (data.get("info") or {}).get("version")
                found.append(f"{package} {version}")
        return f"{self.npm_url}, {self.pypi_url}: " + ", ".join(found)

    async def execute(self, task: ResearchTask) -> list[Evidence]:
        started = time.monotonic()
        args = task.arguments
        registry = str(args.get("registry") or "npm")
        package = str(args.get("package") or "")
        sdk_name = str(args.get("sdk") or package)
        customer = args.get("customer_version") or None
        url = self.url_for(registry, package)
        base = Evidence(
            task_key=task.key,
            source=self.name,
            tool=task.tool,
            query=f"{registry} {package} latest",
            status=EvidenceStatus.ok,
            url=_public_page(registry, package),
        )
        try:
            async with httpx.AsyncClient(
                transport=self._transport, headers={"User-Agent": USER_AGENT}, verify=tls_context()
            ) as client:
                body = await get_json(
                    client,
                    url,
                    headers={"Accept": "application/json"},
                    timeout_s=self.timeout_s,
                    max_retries=self.max_retries,
                    max_wait_s=self.max_wait_s,
                    backoff_s=self.backoff_s,
                    service="npm" if registry == "npm" else "PyPI",
                    expect=dict,
                )
            latest = _latest_from(registry, body)
        except SourceHttpError as exc:
            elapsed = _ms(started)
            if exc.status == 404:
                return [
                    base.model_copy(
                        update={
                            "status": EvidenceStatus.empty,
                            "title": f"{package} not found on {registry}",
                            "summary": f"{registry} has no package named {package}",
                            "latency_ms": elapsed,
                        }
                    )
                ]
            status = EvidenceStatus.timeout if exc.kind == "timeout" else EvidenceStatus.error
            return [
                base.model_copy(
                    update={
                        "status": status,
                        "title": f"{package}: registry lookup failed",
                        "summary": str(exc),
                        "latency_ms": elapsed,
                        "data": {"error_kind": exc.kind, "package": package, "registry": registry},
                    }
                )
            ]
        except Exception as exc:  # never raise out of execute
            return [
                base.model_copy(
                    update={
                        "status": EvidenceStatus.error,
                        "title": f"{package}: registry lookup failed",
                        "summary": f"{type(exc).__name__}: {exc}"[:300],
                        "latency_ms": _ms(started),
                    }
                )
            ]

        behind = is_behind(customer, latest)
        if customer:
            summary = f"{sdk_name}: customer on {customer}, latest is {latest}"
            if behind:
                summary += " (customer is behind)"
            elif compare_versions(customer, latest) == 0:
                summary += " (customer is on the latest)"
        else:
            summary = f"{sdk_name}: latest is {latest} (customer's version unknown)"
        return [
            base.model_copy(
                update={
                    "title": f"{package} {latest} is the latest on {'npm' if registry == 'npm' else 'PyPI'}",
                    "summary": summary,
                    "latency_ms": _ms(started),
                    "data": {
                        "package": package,
                        "registry": registry,
                        "latest": latest,
                        "customer_version": customer,
                        "behind": behind,
                    },
                }
            )
        ]


def _latest_from(registry: str, body: dict[str, Any]) -> str:
    if registry == "npm":
        version = body.get("version")
    else:
        info = body.get("info")
        version = info.get("version") if isinstance(info, dict) else None
    if not isinstance(version, str) or not version.strip():
        raise SourceHttpError("malformed", f"{registry}: response has no version")
    return version.strip()


def _public_page(registry: str, package: str) -> str:
    if registry == "npm":
        return f"https://www.npmjs.com/package/{package}"
    return f"https://pypi.org/project/{package}/"


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


__all__ = [
    "BUILTIN_PACKAGES",
    "RegistrySource",
    "compare_versions",
    "is_behind",
    "version_from_tag",
]
