"""Redaction coverage: our patterns next to detect-secrets on the labelled corpus of issue #10.

    python bench/redaction_coverage.py

The corpus (`tests/data/redaction_corpus.json`) holds synthetic secrets in real formats, personal data,
and benign ticket lines. A secret counts as caught when none of its needles survives; for detect-secrets
(which only reports, it does not rewrite) a line counts as caught when a reported secret value covers a
needle. A benign line counts as noise when anything in it is flagged. detect-secrets runs in two
configurations: every default plugin, and its vendor plugins only (no entropy or keyword plugins).
Prints a table per kind and the totals.
"""

from __future__ import annotations

import json
import unicodedata
from collections import defaultdict
from pathlib import Path
from typing import Any

from detect_secrets.core.scan import scan_line
from detect_secrets.settings import default_settings

from triage.redaction import Redactor

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "data" / "redaction_corpus.json"
GENERIC = ("High Entropy", "Keyword")


def _ds_values(text: str, vendor_only: bool) -> list[str]:
    found: list[str] = []
    with default_settings():
        for line in unicodedata.normalize("NFKC", text).split("\n"):
            for secret in scan_line(line):
                if vendor_only and any(g in secret.type for g in GENERIC):
                    continue
                if secret.secret_value:
                    found.append(secret.secret_value)
    return found


def _ds_caught(item: dict[str, Any], vendor_only: bool) -> bool:
    values = _ds_values(item["text"], vendor_only)
    needles = [unicodedata.normalize("NFKC", n) for n in item["needles"]]
    return bool(values) and all(any(n in v or v in n for v in values) for n in needles)


def main() -> None:
    corpus = json.loads(CORPUS.read_text("utf-8"))
    ours = Redactor()
    rows: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])  # total, ours, ds-all, ds-vendor
    for item in corpus["secrets"] + corpus["pii"]:
        row = rows[item["kind"]]
        out = ours.redact(item["text"])
        row[0] += 1
        row[1] += "[redacted:" in out and not any(n in out for n in item["needles"])
        row[2] += _ds_caught(item, vendor_only=False)
        row[3] += _ds_caught(item, vendor_only=True)
    noise = [0, 0, 0]
    for line in corpus["benign"]:
        noise[0] += ours.redact(line) != line
        noise[1] += bool(_ds_values(line, vendor_only=False))
        noise[2] += bool(_ds_values(line, vendor_only=True))
    print(f"{'kind':<18} {'n':>3} {'ours':>5} {'ds-all':>7} {'ds-vendor':>10}")
    totals = [0, 0, 0, 0]
    for kind, row in sorted(rows.items()):
        print(f"{kind:<18} {row[0]:>3} {row[1]:>5} {row[2]:>7} {row[3]:>10}")
        totals = [a + b for a, b in zip(totals, row, strict=True)]
    print(f"{'caught (total)':<18} {totals[0]:>3} {totals[1]:>5} {totals[2]:>7} {totals[3]:>10}")
    benign = len(corpus["benign"])
    print(f"{'benign flagged':<18} {benign:>3} {noise[0]:>5} {noise[1]:>7} {noise[2]:>10}")


if __name__ == "__main__":
    main()
