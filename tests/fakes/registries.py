"""A fake npm registry (`GET {prefix}/{pkg}/latest`) and PyPI JSON API (`GET /pypi/{project}/json`).

npm is served under `npm_prefix` (default "/npm") so tests also cover a registry base URL with a path
(e.g. an Artifactory npm remote). The raw (still percent-encoded) request paths are kept in `raw_paths`,
so a test can check that a scoped name travelled as `@scope%2Fname`.
Scripted failures per registry ("npm", "pypi"): "500", "malformed", "slow".
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from urllib.parse import unquote

from aiohttp import web

from tests.fakes.http import FakeServer, json_response


@dataclass
class RegistryFake(FakeServer):
    npm_prefix: str = "/npm"
    npm: dict[str, str] = field(default_factory=dict)  # package → latest version
    pypi: dict[str, str] = field(default_factory=dict)  # project → latest version
    failures: dict[str, list[str]] = field(default_factory=dict)
    slow_s: float = 1.0
    raw_paths: list[str] = field(default_factory=list)

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/pypi/{project}/json", self._pypi)
        app.router.add_get(f"{self.npm_prefix}/{{tail:.*}}", self._npm)

    def fail(self, registry: str, *failures: str) -> None:
        self.failures.setdefault(registry, []).extend(failures)

    async def _scripted(self, registry: str) -> web.Response | None:
        queue = self.failures.get(registry) or []
        if not queue:
            return None
        failure = queue.pop(0)
        if failure == "500":
            return json_response({"error": "internal"}, 500)
        if failure == "malformed":
            return web.Response(status=200, text="<html>oops</html>", content_type="application/json")
        if failure == "slow":
            await asyncio.sleep(self.slow_s)
            return None
        raise AssertionError(f"unknown scripted failure {failure!r}")

    async def _npm(self, request: web.Request) -> web.StreamResponse:
        raw = request.raw_path.split("?", 1)[0]
        self.raw_paths.append(raw)
        failed = await self._scripted("npm")
        if failed is not None:
            return failed
        tail = raw[len(self.npm_prefix) + 1 :]
        if not tail.endswith("/latest"):
            return json_response({"error": "not found"}, 404)
        package = unquote(tail.removesuffix("/latest"))
        version = self.npm.get(package)
        if version is None:
            return json_response({"error": "Not found"}, 404)
        return json_response({"name": package, "version": version, "dist": {"tarball": f"{package}.tgz"}})

    async def _pypi(self, request: web.Request) -> web.StreamResponse:
        self.raw_paths.append(request.raw_path.split("?", 1)[0])
        failed = await self._scripted("pypi")
        if failed is not None:
            return failed
        project = request.match_info["project"]
        version = self.pypi.get(project)
        if version is None:
            return json_response({"message": "Not Found"}, 404)
        return json_response(
            {
                "info": {"name": project, "version": version, "yanked": False},
                "releases": {version: []},
                "urls": [],
            }
        )
