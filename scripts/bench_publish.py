"""Benchmark publishing against the Coder stand-in (tests/standin/).

1. five unchanged templates: pushes (must be 0), REST requests, wall time;
2. five changed templates published in parallel vs the sum of five single
   pushes, with the stand-in's import taking ``--push-delay`` seconds.

Usage: .venv/bin/python scripts/bench_publish.py [--push-delay 1.5] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from coderbundle.pipeline import publish_all  # noqa: E402
from coderbundle.settings import load_settings  # noqa: E402
from standin.bundle import API_KEY_ENV, make_bundle, write_template  # noqa: E402
from standin.server import CoderStandin, install_cli  # noqa: E402

NAMES = ("one", "two", "three", "four", "five")


def timed_publish(root: Path, env: dict[str, str], names: tuple[str, ...] = ()) -> tuple[float, int]:
    """Publish and return (wall seconds, REST requests made by the publisher)."""
    settings = load_settings(root, env)
    start = time.perf_counter()
    result = publish_all(settings, names, env=env)
    elapsed = time.perf_counter() - start
    if not result.ok:
        msg = f"publish failed: {[(o.name, o.detail) for o in result.outcomes if o.detail]}"
        raise SystemExit(msg)
    return elapsed, result.api_requests


def change_all(root: Path, marker: str) -> None:
    """Edit every template so its content hash changes."""
    for name in NAMES:
        write_template(root, name, marker=marker, secret=name == "five")


def run(push_delay: float) -> dict[str, float | int]:
    """Run both scenarios against a fresh stand-in and return the figures."""
    os.environ["CODERBUNDLE_TERRAFORM_VALIDATE"] = "never"  # benchmark publishing, not terraform
    with tempfile.TemporaryDirectory() as tmp, CoderStandin() as coder:
        root = make_bundle(Path(tmp) / "bundle", NAMES, secret=("five",), concurrency=len(NAMES))
        cli = install_cli(Path(tmp) / "bin", sys.executable)
        env = {
            "CODER_URL": coder.url,
            "CODER_SESSION_TOKEN": coder.state.token,
            "CODERBUNDLE_CODER": str(cli),
            API_KEY_ENV: "sk-bench-not-a-real-key",
        }
        coder.state.push_delay = push_delay
        first, _ = timed_publish(root, env)
        pushes_before = len(coder.state.cli_calls)
        unchanged, requests = timed_publish(root, env)
        unchanged_pushes = len(coder.state.cli_calls) - pushes_before
        change_all(root, "-parallel")
        parallel, _ = timed_publish(root, env)
        change_all(root, "-serial")
        singles = [timed_publish(root, env, (name,))[0] for name in NAMES]
    return {
        "push_delay_s": push_delay,
        "first_publish_5_s": round(first, 2),
        "unchanged_5_pushes": unchanged_pushes,
        "unchanged_5_api_requests": requests,
        "unchanged_5_s": round(unchanged, 3),
        "changed_5_parallel_s": round(parallel, 2),
        "changed_5_sum_of_singles_s": round(sum(singles), 2),
        "speedup": round(sum(singles) / parallel, 2),
    }


def main() -> int:
    """Print the figures; exit 1 if an unchanged run pushed anything."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--push-delay", type=float, default=1.5, help="seconds per import")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    figures = run(args.push_delay)
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        for key, value in figures.items():
            print(f"{key:32} {value}")
    return 0 if figures["unchanged_5_pushes"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
