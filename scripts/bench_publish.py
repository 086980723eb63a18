"""Benchmark publishing against a REAL Coder server (tests/coder_deployment.py).

1. five unchanged templates: pushes (must be 0), REST requests, wall time;
2. five changed templates published in parallel (concurrency 5) vs one at a
   time (concurrency 1), each import a real terraform init + plan on the
   server's built-in provisioner (three provisioner daemons, Coder's default).

Both scenarios run in one process against one deployment, so the ratio is
measured side by side.  Needs `nox -s tools` (the Coder binary) and PostgreSQL.

Usage: python scripts/bench_publish.py [--json]
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

from coder_deployment import CoderDeployment, Unavailable  # noqa: E402
from coderbundle.pipeline import publish_all  # noqa: E402
from coderbundle.settings import load_settings  # noqa: E402
from standin.bundle import API_KEY_ENV, make_bundle, write_template  # noqa: E402

NAMES = ("one", "two", "three", "four", "five")


def timed_publish(root: Path, env: dict[str, str]) -> tuple[float, int, int]:
    """Publish and return (wall seconds, REST requests of the publisher, templates pushed)."""
    settings = load_settings(root, env)
    start = time.perf_counter()
    result = publish_all(settings, (), env=env, build_images=False, allow_default_image=True)
    elapsed = time.perf_counter() - start
    if not result.ok:
        msg = f"publish failed: {[(o.name, o.detail) for o in result.outcomes if o.detail]}"
        raise SystemExit(msg)
    return elapsed, result.api_requests, sum(o.status == "pushed" for o in result.outcomes)


def set_concurrency(root: Path, value: int) -> None:
    """Set ``[coder] concurrency`` in the bundle's bundle.toml."""
    toml = root / "bundle.toml"
    text = toml.read_text()
    start = text.index("concurrency = ")
    end = text.index("\n", start)
    toml.write_text(text[:start] + f"concurrency = {value}" + text[end:])


def change_all(root: Path, marker: str) -> None:
    """Edit every template so its content hash changes."""
    for name in NAMES:
        write_template(root, name, marker=marker, secret=name == "five")


def run() -> dict[str, float | int | str]:
    """Run both scenarios against a fresh deployment and return the figures."""
    os.environ["CODERBUNDLE_TERRAFORM_VALIDATE"] = "never"  # benchmark publishing, not terraform
    with tempfile.TemporaryDirectory() as tmp, CoderDeployment() as coder:
        if coder.admin is None:
            raise SystemExit("the deployment has no template admin")
        root = make_bundle(Path(tmp) / "bundle", NAMES, secret=("five",), concurrency=len(NAMES))
        env = {
            **os.environ,
            "CODER_URL": coder.url,
            "CODER_SESSION_TOKEN": coder.admin.token,
            "CODERBUNDLE_CODER": str(coder.binary),
            "CODER_CONFIG_DIR": str(Path(tmp) / "coder-config"),
            API_KEY_ENV: "sk-bench-not-a-real-key",
        }
        os.environ.update({k: env[k] for k in ("CODER_CONFIG_DIR",)})
        first, _, _ = timed_publish(root, env)
        unchanged, requests, unchanged_pushes = timed_publish(root, env)
        change_all(root, "-parallel")
        parallel, _, _ = timed_publish(root, env)
        change_all(root, "-serial")
        set_concurrency(root, 1)
        serial, _, _ = timed_publish(root, env)
        version = coder.version
    return {
        "coder_server": f"v{version} (built from source)",
        "first_publish_5_s": round(first, 2),
        "unchanged_5_pushes": unchanged_pushes,
        "unchanged_5_api_requests": requests,
        "unchanged_5_s": round(unchanged, 3),
        "changed_5_parallel_s": round(parallel, 2),
        "changed_5_serial_s": round(serial, 2),
        "speedup": round(serial / parallel, 2),
    }


def main() -> int:
    """Print the figures; exit 1 if an unchanged run pushed anything."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    try:
        figures = run()
    except Unavailable as exc:
        print(f"bench_publish skipped: {exc}")
        return 0
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        for key, value in figures.items():
            print(f"{key:32} {value}")
    return 0 if figures["unchanged_5_pushes"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
