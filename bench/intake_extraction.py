"""Benchmark: rule-layer extraction time on realistic tickets of growing size.

The ticket text repeats the realistic chunk of tests/test_intake_properties.py (a flag, a distinct id, an
email, a person URL, an API call and an error per 270 characters). Prints the best of five runs per size;
on an idle 2-core machine 100 kB takes about 50-100 ms.

    .venv/bin/python bench/intake_extraction.py [--sizes 1000,10000,50000,100000,200000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.test_intake_properties import REALISTIC_CHUNK
from triage.intake import extract_identifiers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", default="1000,10000,50000,100000,200000", help="ticket sizes in characters"
    )
    args = parser.parse_args()
    print(f"{'size':>8} | {'best of 5 (ms)':>14}")
    for size in (int(s) for s in args.sizes.split(",")):
        text = (REALISTIC_CHUNK * (size // len(REALISTIC_CHUNK) + 1))[:size]
        extract_identifiers(text)
        best = float("inf")
        for _ in range(5):
            t0 = time.perf_counter()
            extract_identifiers(text)
            best = min(best, time.perf_counter() - t0)
        print(f"{size:>8} | {best * 1000:>14.1f}")


if __name__ == "__main__":
    main()
