"""Benchmark `coderbundle validate`: a cold full validation against an unchanged re-run.

Both runs are whole CLI processes (`python -m coderbundle validate`), as a
user or CI runs them, so interpreter start-up and imports are included.
Goal on a 2-core machine: cold <= 1.5 s for the five templates, cached far faster.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNS = 5


def timed(*args: str) -> float:
    """Wall time of one `coderbundle validate` process."""
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "coderbundle", "--root", str(ROOT), "validate", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        sys.exit(f"validate failed:\n{proc.stderr}")
    return elapsed


def main() -> int:
    """Print the cold and cached medians and their ratio."""
    templates = sorted(p.name for p in (ROOT / "templates").iterdir() if p.is_dir() and p.name[0] != "_")
    cold, cached = [], []
    for _ in range(RUNS):
        shutil.rmtree(ROOT / "build" / ".cache", ignore_errors=True)
        cold.append(timed())
        cached.append(timed())
    c, w = statistics.median(cold), statistics.median(cached)
    print(f"templates: {len(templates)} ({', '.join(templates)})")
    print(f"cold full validate (median of {RUNS}): {c:.3f} s  [goal <= 1.5 s]")
    print(f"unchanged re-run   (median of {RUNS}): {w:.3f} s")
    print(f"speed-up: {c / w:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
