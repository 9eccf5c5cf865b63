"""Project-level guarantees: layering, settings documented, lint clean."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bot.settings import Settings

ROOT = Path(__file__).resolve().parents[1]

FORBIDDEN = {
    "triage": {
        "bot",
        "integrations",
        "formatting",
        "slack_bolt",
        "slack_sdk",
        "zenpy",
        "anthropic",
        "mcp",
        "httpx",
        "httpx2",
        "sqlalchemy",
        "aiohttp",
    },
    "formatting": {
        "bot",
        "integrations",
        "slack_bolt",
        "slack_sdk",
        "zenpy",
        "anthropic",
        "mcp",
        "httpx",
        "sqlalchemy",
        "aiohttp",
    },
    "integrations": {"bot", "slack_bolt"},
}


def imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_dependencies_point_inward(package: str) -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(imported_roots(path) & FORBIDDEN[package])
        for path in (ROOT / package).rglob("*.py")
        if imported_roots(path) & FORBIDDEN[package]
    }
    assert offenders == {}


def test_every_setting_is_in_env_example_and_readme() -> None:
    example = (ROOT / "deploy" / ".env.example").read_text(encoding="utf-8")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    names = [name.upper() for name in Settings.model_fields]
    missing_example = [n for n in names if not re.search(rf"^{n}=", example, re.MULTILINE)]
    missing_readme = [n for n in names if f"`{n}`" not in readme]
    assert missing_example == []
    assert missing_readme == []


def _readme_default(value: object) -> str:
    """A setting's default as the README's configuration table writes it."""
    if value is None or value == "" or value == [] or value == {}:
        return "—"
    if isinstance(value, list):
        return f"`{','.join(map(str, value))}`"
    return f"`{value}`"


def test_configuration_table_lists_every_setting_with_its_default() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("\n## Configuration\n") : readme.index("\n## Operations\n")]
    rows = dict(re.findall(r"^\| `([A-Z0-9_]+)` \| ([^|]*?) \|", section, re.MULTILINE))
    fields = {name.upper(): field for name, field in Settings.model_fields.items()}
    assert sorted(set(fields) - set(rows)) == [], "settings missing from the table"
    assert sorted(set(rows) - set(fields)) == [], "the table lists variables that are not settings"
    wrong = {}
    for name, cell in rows.items():
        expected = _readme_default(fields[name].get_default(call_default_factory=True))
        # an empty default may say what it means instead: "— (host:pid)"
        if cell != expected and not (expected == "—" and cell.startswith("— (")):
            wrong[name] = (cell, expected)
    assert wrong == {}


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").strip().splitlines()[-1]
    assert ci in readme


# the venv's ruff (the dev extra), else the one on PATH (a venv that shares the system's packages)
RUFF = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")


@pytest.mark.skipif(RUFF is None, reason="ruff not installed")
def test_ruff_clean() -> None:
    ruff = RUFF
    assert ruff
    result = subprocess.run(
        [ruff, "check", "--quiet", str(ROOT)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
