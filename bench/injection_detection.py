"""Prompt-injection detection: precision and recall of the rule layer on the labelled set.

    python bench/injection_detection.py

`tests/data/injection_cases.json` holds benign tickets that mention AI, confirmation, instructions or
escalation, and attacks in several languages and spellings (Cyrillic look-alikes, zero-width and
full-width characters, chat markup, polite requests about the report's fields). Prints the confusion
counts, precision, recall and the cases it gets wrong. (The intake model's own classification, when a
model is configured, is OR-ed on top of this in `merge_refinement`; it is not measured here.)
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from triage.intake.injection import detect_injection, injection_signals

CASES = Path(__file__).resolve().parent.parent / "tests" / "data" / "injection_cases.json"


def main() -> None:
    cases = json.loads(CASES.read_text("utf-8"))
    started = time.perf_counter()
    flagged_attacks = [t for t in cases["attacks"] if detect_injection(t)]
    flagged_benign = [t for t in cases["benign"] if detect_injection(t)]
    elapsed_ms = (time.perf_counter() - started) * 1000
    tp, fp = len(flagged_attacks), len(flagged_benign)
    fn, tn = len(cases["attacks"]) - tp, len(cases["benign"]) - fp
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    print(f"{'':<10} {'flagged':>8} {'not':>5}")
    print(f"{'attacks':<10} {tp:>8} {fn:>5}")
    print(f"{'benign':<10} {fp:>8} {tn:>5}")
    print(
        f"precision {precision:.2f}  recall {recall:.2f}  ({elapsed_ms:.1f} ms for {tp + fp + fn + tn} texts)"
    )
    for text in cases["attacks"]:
        if text not in flagged_attacks:
            print("missed:", ascii(text[:80]))
    for text in flagged_benign:
        print("false alarm:", ascii(text[:80]), injection_signals(text))


if __name__ == "__main__":
    main()
