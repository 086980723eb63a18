"""Benchmark real-terraform validation and the plan matrix, side by side with checkov.

    python scripts/bench_terraform.py [--runs 3]

Needs the offline toolchain (`nox -s tools`; the nox `bench` session passes
its settings).  Measures whole CLI processes on this machine, in one run:

* cold ``coderbundle validate --no-cache`` of all five templates, *including*
  real ``terraform init`` + ``terraform validate`` (median of ``--runs``);
* ``checkov -d build/templates --framework terraform`` on the same rendered
  files (median of ``--runs``), when checkov is installed;
* a cached re-run of ``coderbundle validate`` (median of 5);
* ``coderbundle test``: every template x preset x transition (one run).

Goals (issue 10): cold validate faster than checkov, cached re-run <= 0.3 s,
plan matrix <= 60 s on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHECKOV_VENV = "/var/tmp/checkov-venv/bin/checkov"  # noqa: S108 - the venv .ci/run makes


def timed(argv: list[str], *, check: bool = True) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Wall time of one process and its result."""
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if check and proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {proc.returncode}:\n{proc.stderr[-2000:]}")
    return elapsed, proc


def median(argv: list[str], runs: int, *, check: bool = True) -> float:
    """Median wall time of ``runs`` runs."""
    return statistics.median(timed(argv, check=check)[0] for _ in range(runs))


def main() -> int:
    """Run the measurements and print a table (and JSON with --json)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not os.environ.get("CODERBUNDLE_PROVIDER_MIRROR"):
        raise SystemExit(
            "bench_terraform: no offline toolchain; run `nox -s tools` first (nox -s bench passes it)"
        )
    cli = [sys.executable, "-m", "coderbundle"]
    results: dict[str, float | str] = {}
    results["validate_cold_s"] = median([*cli, "validate", "--no-cache"], args.runs)
    _, last = timed([*cli, "validate", "--no-cache", "--format", "json"])
    toolchain = json.loads(last.stdout).get("toolchain", "")
    # checkov's pins clash with ours: it lives in a venv of its own (.ci/run makes it).
    checkov = os.environ.get("CHECKOV") or shutil.which("checkov")
    if checkov is None and Path(CHECKOV_VENV).is_file():
        checkov = CHECKOV_VENV
    if checkov:
        argv = [checkov, "-d", "build/templates", "--framework", "terraform", "--quiet", "--compact"]
        results["checkov_s"] = median(argv, args.runs, check=False)
    else:
        results["checkov_s"] = "not installed"
    results["validate_cached_s"] = median([*cli, "validate"], 5)
    elapsed, proc = timed([*cli, "test", "--format", "json"], check=False)
    report = json.loads(proc.stdout or "{}")
    results["plan_matrix_s"] = elapsed
    results["plans"] = len(report.get("cases", []))
    results["plan_matrix_ok"] = str(report.get("ok"))
    if args.json:
        print(json.dumps({"toolchain": toolchain, **results}, indent=2))
        return 0
    print(f"toolchain: {toolchain}")
    print(f"cold validate of 5 templates incl. terraform validate: {results['validate_cold_s']:.2f} s")
    if isinstance(results["checkov_s"], float):
        ratio = results["checkov_s"] / float(results["validate_cold_s"])
        print(f"checkov on the same rendered files: {results['checkov_s']:.2f} s ({ratio:.1f}x)")
    else:
        print("checkov:                                              not installed")
    print(f"cached re-run:                                        {results['validate_cached_s']:.2f} s")
    print(f"coderbundle test ({results['plans']} plans, ok={results['plan_matrix_ok']}): {elapsed:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
