"""Benchmark: what a nox run costs when nothing changed, with and without the install (issue 21, item 8).

Runs real nox in this checkout, side by side: each session once to warm it,
then ``RUNS`` times with the install skipped (the stamp matches) and ``RUNS``
times with ``CODERBUNDLE_REINSTALL=1`` (what every run did before).  Prints
the medians, their ratio, and the goals: a second ``nox -s publish`` <= 3 s,
a cached ``nox -s validate`` <= 2 s.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RUNS = 3
SESSIONS = {  # session args -> goal in seconds (None: no goal, shown for comparison)
    ("-s", "publish"): 3.0,
    ("-s", "validate"): 2.0,
    ("-s", "cli", "--", "--version"): None,
}


def _run(args: tuple[str, ...], *, reinstall: bool) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CODER_URL", "NOX_"))}
    if reinstall:
        env["CODERBUNDLE_REINSTALL"] = "1"
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "nox", *args], cwd=REPO, env=env, check=True, capture_output=True, timeout=900
    )
    return time.perf_counter() - start


def main() -> int:
    """Print one line per session: skipped vs reinstalled medians, ratio, goal."""
    for args, goal in SESSIONS.items():
        _run(args, reinstall=False)  # warm: the virtualenv exists, the stamp is written, caches filled
        skipped = statistics.median(_run(args, reinstall=False) for _ in range(RUNS))
        forced = statistics.median(_run(args, reinstall=True) for _ in range(RUNS))
        verdict = "" if goal is None else (f"goal <= {goal:g} s: " + ("met" if skipped <= goal else "MISSED"))
        print(
            f"nox {' '.join(args)}: {skipped:.2f} s without the install, {forced:.2f} s with it "
            f"({forced / skipped:.1f}x); {verdict}"
        )
    return 0  # a benchmark reports (a loaded machine moves the absolute figures; the ratio holds)


if __name__ == "__main__":
    sys.exit(main())
