"""Benchmark the plan matrix: every template x every choice x start/stop across the toolchains.

    python scripts/bench_matrix.py [--json] [--template NAME] [--all-before]

Needs the matrix `nox -s tools` builds (terraform 1.9.8 and 1.14.8, coder provider
2.18.0 and 2.20.0: matrix/MATRIX.json in the tools cache); the nox `bench`
session passes the module mirror.  Measures whole ``coderbundle test`` processes,
side by side in one run:

* "schedule": what ``nox -s test-templates`` runs (noxfile.matrix_schedule): every
  choice on the two ends (oldest terraform + lowest provider, newest + highest), the
  defaults and presets on the two mixed pairs; one process per toolchain under
  ``tests/standin/reattach.py`` (one kubernetes stand-in that every terraform reattaches
  to) with terraform.plan_json's GOGC;
* "every choice on all four": the mixed pairs with every choice too (the ends are the
  schedule's runs), the product the schedule stands for;
* "before" on the newest toolchain (``--all-before``: all four): every terraform starting
  its own stand-in over AutoMTLS, Go's default GOGC=100; the ratio to the same runs now;
* on one template and the newest toolchain: 1 worker against 2.

Each run does its ``terraform init`` once per template and toolchain (kept
``.terraform``, so warm after the first run).

Goal (issue 22): the matrix in <= 3 min on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from noxfile import matrix_schedule  # noqa: E402

REATTACH = [sys.executable, str(ROOT / "tests" / "standin" / "reattach.py"), "--"]
# What a run did before the stand-in was reattached and GOGC raised (Go's default).
BEFORE = {"GOGC": "100"}


def run(env: dict[str, str], *args: str, before: bool = False) -> tuple[float, int, str]:
    """Wall time, plan count and toolchain summary of one ``coderbundle test`` run."""
    argv = [sys.executable, "-m", "coderbundle", "test", "--format", "json", *args]
    if before:
        env = {**env, **BEFORE}
    else:
        argv = [*REATTACH, *argv]
    start = time.perf_counter()
    proc = subprocess.run(
        argv, cwd=ROOT, capture_output=True, text=True, check=False, env={**os.environ, **env}
    )
    elapsed = time.perf_counter() - start
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        raise SystemExit(
            f"coderbundle test printed no report (exit {proc.returncode}):\n{proc.stderr[-2000:]}"
        ) from None
    if not report["ok"]:
        raise SystemExit(f"coderbundle test failed on {report['toolchain']}; run it to see why")
    return elapsed, len(report["cases"]), report["toolchain"]


def main() -> int:
    """Run the measurements and print a table (and JSON with --json)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--template", default="nodejs", help="the template of the 1-vs-2 workers run")
    parser.add_argument("--all-before", action="store_true", help="'before' on every toolchain")
    args = parser.parse_args()
    schedule = matrix_schedule()
    if not schedule or not os.environ.get("CODERBUNDLE_MODULE_MIRROR"):
        raise SystemExit("bench_matrix: no plan matrix toolchains; run `nox -s tools` first")
    rows = []
    for env, extra in schedule:
        elapsed, plans, summary = run(env, *extra)
        row: dict[str, object] = {"toolchain": summary, "choices": not extra, "plans": plans}
        row["seconds"] = round(elapsed, 1)
        if extra:  # a mixed pair: what every choice would cost there
            full, full_plans, _ = run(env)
            row |= {"all_choices_seconds": round(full, 1), "all_choices_plans": full_plans}
        if args.all_before or env is schedule[-1][0]:
            old, old_plans, _ = run(env, *extra, before=True)
            row |= {"before_seconds": round(old, 1), "before_plans": old_plans}
            if old_plans != plans:
                raise SystemExit(f"before and now planned different cases on {summary}")
        rows.append(row)
    seconds = sum(float(r["seconds"]) for r in rows)
    plans_total = sum(int(r["plans"]) for r in rows)
    product_seconds = sum(float(r.get("all_choices_seconds", r["seconds"])) for r in rows)
    product_plans = sum(int(r.get("all_choices_plans", r["plans"])) for r in rows)
    compared = [r for r in rows if "before_seconds" in r]
    before = sum(float(r["before_seconds"]) for r in compared)
    now = sum(float(r["seconds"]) for r in compared)
    newest = schedule[-1][0]
    one, n1, _ = run(newest, "--workers", "1", args.template)
    two, _, _ = run(newest, "--workers", "2", args.template)
    result = {
        "matrix": rows,
        "schedule": {"plans": plans_total, "seconds": round(seconds, 1)},
        "every_choice_on_all_four": {
            "plans": product_plans,
            "seconds": round(product_seconds, 1),
            "ratio": round(product_seconds / seconds, 2),
        },
        "before_now": {
            "toolchains": len(compared),
            "before_seconds": round(before, 1),
            "now_seconds": round(now, 1),
            "ratio": round(before / now, 2),
        },
        "workers": {"template": args.template, "plans": n1, "1": round(one, 1), "2": round(two, 1)},
        "cores": os.cpu_count(),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    for row in rows:
        what = "every choice" if row["choices"] else "defaults + presets"
        extra = f"  (every choice: {row['all_choices_seconds']} s)" if "all_choices_seconds" in row else ""
        old_s = f"  (before: {row['before_seconds']} s)" if "before_seconds" in row else ""
        print(
            f"{row['plans']:4d} plans  {row['seconds']:6.1f} s  {what:18}{extra}{old_s}  {row['toolchain']}"
        )
    print(f"schedule (nox -s test-templates): {plans_total} plans in {seconds:.1f} s (goal <= 180 s)")
    print(
        f"every choice on all four toolchains: {product_plans} plans in {product_seconds:.1f} s "
        f"({product_seconds / seconds:.2f}x the schedule)"
    )
    print(
        f"before vs now on {len(compared)} toolchain(s): {before:.1f} s vs {now:.1f} s "
        f"({before / now:.2f}x; before = a stand-in per terraform, AutoMTLS, GOGC=100)"
    )
    print(f"{args.template}, {n1} plans: 1 worker {one:.1f} s, 2 workers {two:.1f} s ({one / two:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
