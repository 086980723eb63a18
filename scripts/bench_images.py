"""Benchmark the image pipeline on the real daemon (prepare it with .ci/docker-setup.sh).

1. cold build of base plus one child: their bench tags removed first and the
   builder's layer cache off (``nocache``), so every step really runs;
2. unchanged rebuild of every image buildable here (goal: at most 5 s in total);
3. unique bytes of those images together against the largest single image
   (goal: at most 1.5x, thanks to the shared base), and the size of each.

The images are built under the repository prefix ``coderbundle-bench`` from a
copy of ``images/`` in a temporary bundle, so the real manifest and tags are
left alone.  Downloads come from CODERBUNDLE_DOWNLOAD_SOURCE (default
registries, as in CI: see docs/images.md), so all six build here.

Usage: .venv/bin/python scripts/bench_images.py [--child python] [--skip-cold] [--json]
Environment: CODERBUNDLE_UPSTREAM_IMAGE (default coderbundle-upstream/debian:trixie),
CODERBUNDLE_EXTRA_CA_CERT (needed behind a TLS-intercepting proxy).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import docker

from coderbundle.images import ImageResult, build_images
from coderbundle.settings import Settings, load_settings

REPO = Path(__file__).resolve().parent.parent
PREFIX = "coderbundle-bench"
BUILDABLE = ("base", "python", "docker", "nodejs", "go", "kubernetes")
NOT_BUILDABLE: tuple[str, ...] = ()
UPSTREAM = os.environ.get("CODERBUNDLE_UPSTREAM_IMAGE", "coderbundle-upstream/debian:trixie")
MB = 1_000_000


def bench_root(tmp: Path) -> Path:
    """A throw-away bundle with a copy of the real images."""
    root = tmp / "bundle"
    root.mkdir()
    shutil.copy(REPO / "bundle.toml", root / "bundle.toml")
    shutil.copytree(REPO / "images", root / "images")
    return root


def remove_bench_images(client: docker.DockerClient) -> None:
    """Untag every earlier bench image so the cold build cannot skip anything."""
    for image in client.images.list():
        for tag in image.tags:
            if tag.startswith(f"{PREFIX}/"):
                client.images.remove(tag, force=True)


def timed(settings: Settings, names: list[str], **kwargs: Any) -> tuple[float, list[ImageResult]]:
    """Run ``build_images`` and return (wall seconds, results)."""
    start = time.perf_counter()
    results = build_images(settings, names, upstream_image=UPSTREAM, **kwargs)
    return time.perf_counter() - start, results


def sizes(client: docker.DockerClient, results: list[ImageResult]) -> dict[str, int]:
    """Uncompressed size of each image, by name."""
    return {r.name: int(client.images.get(r.ref).attrs["Size"]) for r in results}


def unique_bytes(size: dict[str, int]) -> int:
    """Children FROM the base share its layers: base + what each child adds."""
    return size["base"] + sum(s - size["base"] for n, s in size.items() if n != "base")


def run(child: str, *, cold: bool) -> dict[str, Any]:
    """Run the three measurements and return the report."""
    env = {
        "CODERBUNDLE_DOWNLOAD_SOURCE": "registries",
        **os.environ,
        "CODERBUNDLE_REPOSITORY_PREFIX": PREFIX,
        "CODERBUNDLE_REGISTRY": "",
    }
    client = docker.from_env()
    report: dict[str, Any] = {"upstream": UPSTREAM, "not_buildable_here": list(NOT_BUILDABLE)}
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(bench_root(Path(tmp)), env)
        if cold:
            remove_bench_images(client)
            seconds, _ = timed(settings, ["base", child], nocache=True, environ=env)
            report["cold_base_plus_child_s"] = round(seconds, 1)
            report["cold_child"] = child
        timed(settings, list(BUILDABLE), environ=env)
        seconds, results = timed(settings, list(BUILDABLE), environ=env)
        report["unchanged_rebuild_all_s"] = round(seconds, 2)
        report["unchanged_statuses"] = {r.name: r.status for r in results}
        size = sizes(client, results)
    report["size_bytes"] = size
    report["unique_bytes"] = unique_bytes(size)
    report["largest_bytes"] = max(size.values())
    report["unique_over_largest"] = round(unique_bytes(size) / max(size.values()), 2)
    client.close()
    return report


def print_report(report: dict[str, Any]) -> None:
    """Print the report for people."""
    if "cold_base_plus_child_s" in report:
        print(f"cold build base + {report['cold_child']}: {report['cold_base_plus_child_s']} s")
    rebuilt = report["unchanged_rebuild_all_s"]
    print(f"unchanged rebuild of {', '.join(BUILDABLE)}: {rebuilt} s (goal <= 5 s)")
    print(f"  statuses: {report['unchanged_statuses']}")
    for name, value in report["size_bytes"].items():
        print(f"  {name:<10} {value / MB:8.1f} MB")
    print(
        f"unique bytes of all images: {report['unique_bytes'] / MB:.1f} MB; "
        f"largest single image: {report['largest_bytes'] / MB:.1f} MB; "
        f"ratio {report['unique_over_largest']} (goal <= 1.5)"
    )
    print(f"not buildable here (download sites unreachable): {', '.join(NOT_BUILDABLE)}")


def main() -> None:
    """Parse the flags and run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", default="python", choices=("python", "docker"))
    parser.add_argument("--skip-cold", action="store_true", help="only the unchanged rebuild")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args()
    report = run(args.child, cold=not args.skip_cold)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_report(report)


if __name__ == "__main__":
    main()
