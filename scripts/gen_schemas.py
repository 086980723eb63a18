r"""Regenerate the schema data files in tools/coderbundle/data/ (dev-only).

    .venv/bin/python scripts/gen_schemas.py \\
        --kubernetes-wheel /tmp/k8s/cdktf_cdktf_provider_kubernetes-12.1.1-py3-none-any.whl \\
        --provider-git-dir <coder/terraform-provider-coder .git> \\
        --registry-git-dir <coder/registry .git>

Without ``--kubernetes-wheel`` the wheel is fetched with
``pip download --no-deps cdktf-cdktf-provider-kubernetes==12.1.1``.  The two
git directories are any clones (bare or not) that have the release tags.
Module versions come from templates/_shared/versions.toml; the output is
deterministic, so a rerun on the same inputs changes nothing.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path
from typing import Any

from schemagen_coder import coder_schema
from schemagen_common import Interner, dump_json
from schemagen_kubernetes import kubernetes_schema
from schemagen_modules import module_schema

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tools" / "coderbundle" / "data"
VERSIONS = ROOT / "templates" / "_shared" / "versions.toml"
K8S_PACKAGE = "cdktf-cdktf-provider-kubernetes"
K8S_PACKAGE_VERSION = "12.1.1"
K8S_PROVIDER_VERSION = "2.38.0"  # the version the package was generated from
CODER_PROVIDER_VERSION = "2.18.0"


def _wheel(arg: str | None, tmp: Path) -> Path:
    if arg:
        return Path(arg)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--quiet",
            "-d",
            str(tmp),
            f"{K8S_PACKAGE}=={K8S_PACKAGE_VERSION}",
        ],
        check=True,
    )
    return next(tmp.glob("*.whl"))


def _kubernetes(wheel: Path) -> dict[str, Any]:
    interner = Interner()
    body = kubernetes_schema(wheel, interner)
    return {
        "provider": "hashicorp/kubernetes",
        "version": K8S_PROVIDER_VERSION,
        "source": f"PyPI {K8S_PACKAGE}=={K8S_PACKAGE_VERSION} (jsii assembly)",
        **body,
        "nodes": interner.nodes,
    }


def _coder(git_dir: str) -> dict[str, Any]:
    interner = Interner()
    body = coder_schema(git_dir, f"v{CODER_PROVIDER_VERSION}", interner)
    return {
        "provider": "coder/coder",
        "version": CODER_PROVIDER_VERSION,
        "source": f"github.com/coder/terraform-provider-coder v{CODER_PROVIDER_VERSION} docs/",
        **body,
        "nodes": interner.nodes,
    }


def _modules(git_dir: str, versions: dict[str, Any]) -> dict[str, Any]:
    modules = {
        key: module_schema(git_dir, spec["source"], spec["version"])
        for key, spec in sorted(versions.get("modules", {}).items())
    }
    return {"source": "github.com/coder/registry release tags", "modules": modules}


def _check_pins(versions: dict[str, Any]) -> None:
    pins = {
        "coder": versions["providers"]["coder"]["version"],
        "kubernetes": versions["providers"]["kubernetes"]["version"],
    }
    for name, described in (("coder", CODER_PROVIDER_VERSION), ("kubernetes", K8S_PROVIDER_VERSION)):
        if described.rsplit(".", 1)[0] not in pins[name]:
            raise SystemExit(f"versions.toml pins {name} {pins[name]}; the data describes {described}")


def main(argv: list[str] | None = None) -> int:
    """Write kubernetes.json, coder.json and modules.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubernetes-wheel")
    parser.add_argument("--provider-git-dir", required=True)
    parser.add_argument("--registry-git-dir", required=True)
    parser.add_argument("--out", default=str(DATA))
    args = parser.parse_args(argv)
    versions = tomllib.loads(VERSIONS.read_text(encoding="utf-8"))
    _check_pins(versions)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        files = {
            "kubernetes.json": _kubernetes(_wheel(args.kubernetes_wheel, Path(tmp))),
            "coder.json": _coder(args.provider_git_dir),
            "modules.json": _modules(args.registry_git_dir, versions),
        }
    for name, data in files.items():
        (out / name).write_text(dump_json(data), encoding="utf-8")
        print(f"wrote {out / name} ({(out / name).stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
