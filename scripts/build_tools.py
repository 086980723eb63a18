r"""Build the real Terraform components from source, once per version, into a cache.

    python scripts/build_tools.py [--cache DIR] [--print-env]

What it builds (versions from templates/_shared/versions.toml):

* ``terraform`` at ``[terraform] version``, from the Go module proxy.  The module
  zip lacks the nested Go modules of eight remote-state backends (azurerm,
  consul, cos, gcs, kubernetes, oss, pg, s3), which its ``go.mod`` replaces with
  local folders; those backends are left out of the build (validation and
  plans use no backend).  Everything else is terraform as released.
* the ``coder/coder`` provider at the pinned version, built inside the
  downloaded module (its ``go.mod`` has replace directives);
* the ``hashicorp/kubernetes`` provider at the pinned version when the Go module
  proxy serves it; otherwise the stand-in provider of tests/standin/ (schema
  data over Terraform's plugin protocol), recorded as a stand-in, never as the
  real provider;
* the Coder server and CLI (one ``coder`` binary, the AGPL build of
  ``./cmd/coder``) for the tests that publish to a real deployment: the
  chart's ``appVersion`` first, then the newest fallback the Go module proxy
  serves whole (``CODER_SERVER_FALLBACKS``); the manifest records which one;
* the plan matrix: terraform and coder provider versions of MATRIX_TERRAFORM and
  MATRIX_CODER beside the pinned ones (``terraform@<v>``, ``coder/coder@<v>``
  in the manifest), a provider mirror per coder provider under ``matrix/`` and
  ``matrix/MATRIX.json`` (``nox -s test-templates`` plans on each pair);
* ``kube-apiserver`` 1.34.2 (``KUBE_VERSION``) from the ``k8s.io/kubernetes`` module, for the
  chart tests on a real API server (tests/kube_fixtures.py; etcd comes from Debian);
* stub modules for every ``[modules.*]`` pin, generated from
  tools/coderbundle/data/modules.json (the exact variables and their types;
  outputs are strings, as every pinned module's outputs are).

Layout of the cache (default ``~/.cache/coderbundle/tools``)::

    terraform/<version>/terraform
    coder/<version>/coder
    kubernetes/<version>/kube-apiserver
    providers/registry.terraform.io/<ns>/<type>/<version>/<os>_<arch>/terraform-provider-<type>_v<version>
    modules/registry.coder.com/<ns>/<name>/coder/<version>/main.tf
    terraform.tfrc        provider_installation { filesystem_mirror } + plugin cache
    manifest.json         every component: version, kind, sha256, source, notes

A second run checks the manifest and the files' sha256 and builds nothing.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

from coderbundle.mirrors import BUILDINFO, provider_binary_path, write_stub_module  # noqa: E402

VERSIONS = ROOT / "templates" / "_shared" / "versions.toml"
MODULES_DATA = ROOT / "tools" / "coderbundle" / "data" / "modules.json"
STANDIN = ROOT / "tests" / "standin" / "kubernetes_provider.py"
STANDIN_SOURCES = (
    STANDIN,
    ROOT / "tests" / "standin" / "kubernetes_provider_server.py",
    ROOT / "tools" / "coderbundle" / "data" / "kubernetes.json",
)
GO_MODULES = {
    "terraform": "github.com/hashicorp/terraform",
    "coder/coder": "github.com/coder/terraform-provider-coder/v2",
    "hashicorp/kubernetes": "github.com/hashicorp/terraform-provider-kubernetes",
}
CODER_MODULE = "github.com/coder/coder/v2"
# Tried after the chart's appVersion, newest first: the Go module proxy refuses every
# 2.31+ zip here, and 2.30.0 builds from its unmodified go.mod (the refused modules,
# aibridge and boundary, are imported under enterprise/ only, which ./cmd/coder leaves out).
CODER_SERVER_FALLBACKS = ("2.30.0",)
CHART = ROOT / "chart" / "Chart.yaml"
# The plan matrix (docs/offline.md): the oldest and newest terraform the templates support
# (required_version; the newest the Go module proxy serves below Coder v2.30.0's limit,
# maxTerraformVersion 1.14.9 in provisioner/terraform/install.go), and the lowest and highest
# coder provider the pin allows.
MATRIX_TERRAFORM = ("1.9.8", "1.14.8")
MATRIX_CODER = ("2.18.0", "2.20.0")
# The kubernetes provider's module path lacks /v2, so its v2 tags are reachable
# only through a pseudo-version of the tag's commit.
PSEUDO_VERSIONS = {("hashicorp/kubernetes", "2.38.0"): "v1.13.5-0.20250721172020-be88f4427105"}


def log(message: str) -> None:
    """Progress on stderr."""
    print(f"build-tools: {message}", file=sys.stderr, flush=True)


def sha256(path: Path) -> str:
    """The file's sha256 (hex)."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def pinned(constraint: str) -> str:
    """``~> 2.18.0`` -> ``2.18.0``: the exact version a pessimistic pin starts from."""
    match = re.search(r"(\d+\.\d+\.\d+)", constraint)
    if not match:
        raise SystemExit(f"{VERSIONS}: cannot read an exact version from {constraint!r}")
    return match.group(1)


def target() -> str:
    """``linux_amd64``: the provider platform of this machine."""
    machine = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine(), "amd64")
    return f"{platform.system().lower()}_{machine}"


def go_download(module: str, version: str) -> Path | str:
    """The module's source folder, or the Go command's reason why it cannot be had."""
    proc = subprocess.run(
        ["go", "mod", "download", "-json", f"{module}@{version}"],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        info = json.loads(proc.stdout or "{}")
    except ValueError:
        info = {}
    if info.get("Dir"):
        return Path(info["Dir"])
    reason = info.get("Error") or proc.stderr.strip() or f"go exited with code {proc.returncode}"
    return " ".join(reason.split())


def go_build(src: Path, out: Path, ldflags: str = "-s -w", package: str = ".") -> None:
    """``go build`` the main ``package`` in ``src`` into ``out`` (static, trimmed paths)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod"}
    log(f"go build in {src} -> {out}")
    subprocess.run(
        ["go", "build", "-trimpath", f"-ldflags={ldflags}", "-o", str(out), package],
        cwd=src,
        env=env,
        check=True,
    )


def strip_missing_nested_modules(src: Path) -> list[str]:
    """Drop go.mod replaces (and their imports) that point at folders the zip lacks."""
    gomod = src / "go.mod"
    text = gomod.read_text(encoding="utf-8")
    missing = [
        m.group(1)
        for m in re.finditer(r"^replace (\S+) => \./(\S+)$", text, re.MULTILINE)
        if not (src / m.group(2)).is_dir()
    ]
    for module in missing:
        text = re.sub(rf"^replace {re.escape(module)} => .*\n", "", text, flags=re.MULTILINE)
        text = re.sub(rf"^\s*{re.escape(module)} \S+.*\n", "", text, flags=re.MULTILINE)
    gomod.write_text(text, encoding="utf-8")
    init = src / "internal" / "backend" / "init" / "init.go"
    code = init.read_text(encoding="utf-8")
    left_out = []
    for alias, path in re.findall(r'^\s*(\w+) "([^"]+)"$', code, re.MULTILINE):
        if any(path == m or path.startswith(m + "/") for m in missing):
            code = re.sub(rf'^\s*{alias} "{re.escape(path)}"\n', "", code, flags=re.MULTILINE)
            code = re.sub(rf"^.*\b{alias}\.New\(\).*\n", "", code, flags=re.MULTILINE)
            left_out.append(path.rsplit("/", 1)[-1])
    init.write_text(code, encoding="utf-8")
    return sorted(left_out)


class Cache:
    """The cache folder and its manifest of built components."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.manifest_path = root / "manifest.json"
        try:
            self.manifest: dict[str, Any] = json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            self.manifest = {}

    def current(self, key: str, version: str, inputs: str = "") -> bool:
        """True when ``key`` is recorded at ``version`` and its file still matches."""
        entry = self.manifest.get(key)
        if not entry or entry.get("version") != version or entry.get("inputs", "") != inputs:
            return False
        path = self.root / entry["path"]
        return path.is_file() and sha256(path) == entry["sha256"]

    def record(self, key: str, path: Path, **info: Any) -> None:
        """Record a built file (and, for a provider, BUILDINFO.json beside it)."""
        self.manifest[key] = {
            **info,
            "path": str(path.relative_to(self.root)),
            "sha256": sha256(path),
        }
        if key.count("/") == 1:  # a provider: say beside it how it was made (mirrors.provenance)
            buildinfo = path.parent / BUILDINFO
            buildinfo.write_text(
                json.dumps(self.manifest[key], indent=1, sort_keys=True) + "\n", encoding="utf-8"
            )
        self.root.mkdir(parents=True, exist_ok=True)
        # Several builds may share the cache (a tools run beside a test run): re-read the
        # manifest under a lock and change only this entry, so no build loses another's.
        with (self.root / "manifest.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                on_disk = json.loads(self.manifest_path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                on_disk = {}
            on_disk[key] = self.manifest[key]
            self.manifest = on_disk
            tmp = self.manifest_path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(self.manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
            tmp.replace(self.manifest_path)


def build_terraform(cache: Cache, version: str, key: str = "terraform") -> Path:
    """Terraform at ``version``, built unless the manifest says it is there."""
    out = cache.root / "terraform" / version / "terraform"
    if cache.current(key, version):
        return out
    src = go_download(GO_MODULES["terraform"], f"v{version}")
    if isinstance(src, str):
        raise SystemExit(f"terraform {version}: {src}")
    with tempfile.TemporaryDirectory(prefix="tf-src-") as tmp:
        work = Path(tmp) / "terraform"
        shutil.copytree(src, work)
        for path in work.rglob("*"):
            path.chmod(path.stat().st_mode | 0o200)
        left_out = strip_missing_nested_modules(work)
        go_build(work, out, "-s -w -X github.com/hashicorp/terraform/version.dev=no")
    notes = "built from the Go module proxy's zip"
    if left_out:
        notes += f"; remote-state backends left out (nested modules not in the zip): {', '.join(left_out)}"
    cache.record(
        key,
        out,
        version=version,
        kind="built from source",
        source=f"{GO_MODULES['terraform']}@v{version}",
        notes=notes,
    )
    return out


def chart_app_version() -> str:
    """The Coder release the chart deploys (``appVersion`` in chart/Chart.yaml)."""
    match = re.search(r'^appVersion:\s*"?([0-9][^"\s]*)"?', CHART.read_text(encoding="utf-8"), re.MULTILINE)
    if not match:
        raise SystemExit(f"{CHART}: no appVersion")
    return match.group(1)


def build_coder_server(cache: Cache) -> Path:
    """The ``coder`` binary (server and CLI) at the chart's appVersion, or the newest fallback.

    A version the proxy refuses is skipped with its reason; the manifest says which
    version was built and what was tried before it.
    """
    wanted = chart_app_version()
    entry = cache.manifest.get("coder-server", {})
    if entry and cache.current("coder-server", entry["version"], wanted):  # built for this appVersion
        return cache.root / entry["path"]
    tried: list[str] = []
    for version in dict.fromkeys((wanted, *CODER_SERVER_FALLBACKS)):
        out = cache.root / "coder" / version / "coder"
        src = go_download(CODER_MODULE, f"v{version}")
        if isinstance(src, str):
            reason = "refused by the Go module proxy" if "403" in src or "not available" in src else src
            log(f"coder {version} cannot be had here: {reason}")
            tried.append(f"{version}: {reason}")
            continue
        with tempfile.TemporaryDirectory(prefix="coder-src-") as tmp:
            work = Path(tmp) / "coder"
            shutil.copytree(src, work)
            for path in work.rglob("*"):
                path.chmod(path.stat().st_mode | 0o200)
            tag = f"-s -w -X github.com/coder/coder/v2/buildinfo.tag={version}"
            go_build(work, out, tag, package="./cmd/coder")
        notes = "the AGPL build of ./cmd/coder from the unmodified go.mod"
        if version != wanted:
            notes += f"; the chart's appVersion {wanted} could not be built ({'; '.join(tried)})"
        cache.record(
            "coder-server",
            out,
            version=version,
            inputs=wanted,
            kind="built from source",
            source=f"{CODER_MODULE}@v{version}",
            chart_app_version=wanted,
            notes=notes,
        )
        return out
    raise SystemExit(f"coder: no version could be built ({'; '.join(tried)})")


def standin_python(cache: Cache) -> str:
    """A virtualenv in the cache with the stand-in's packages (dependency group ``standin``)."""
    venv = cache.root / "standin-venv"
    python = venv / "bin" / "python"
    groups = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["dependency-groups"]
    marker = venv / "requirements.txt"
    wanted = "\n".join(groups["standin"]) + "\n"
    if python.is_file() and marker.is_file() and marker.read_text(encoding="utf-8") == wanted:
        return str(python)
    log(f"creating {venv} for the stand-in provider")
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", *groups["standin"]], check=True)
    marker.write_text(wanted, encoding="utf-8")
    return str(python)


def build_provider(cache: Cache, address: str, version: str, key: str = "") -> Path:
    """A provider built from source, or the declared stand-in when it cannot be built."""
    key = key or address
    out = provider_binary_path(cache.root / "providers", address, version, target())
    standin_inputs = hashlib.sha256(b"".join(p.read_bytes() for p in STANDIN_SOURCES)).hexdigest()
    entry = cache.manifest.get(key, {})
    inputs = standin_inputs if entry.get("kind") == "stand-in" else ""
    if cache.current(key, version, inputs):
        return out
    query = PSEUDO_VERSIONS.get((address, version), f"v{version}")
    src = go_download(GO_MODULES[address], query)
    if isinstance(src, Path):
        go_build(src, out, f"-s -w -X main.version={version}")
        cache.record(
            key,
            out,
            version=version,
            kind="built from source",
            source=f"{GO_MODULES[address]}@{query}",
            notes="",
        )
        return out
    log(f"{address} {version} cannot be built here ({src}); installing the stand-in")
    subprocess.run(
        [
            standin_python(cache),
            str(STANDIN),
            "install",
            "--mirror",
            str(cache.root / "providers"),
            "--python",
            standin_python(cache),
        ],
        check=True,
    )
    cache.record(
        address,
        out,
        version=version,
        kind="stand-in",
        inputs=standin_inputs,
        source="tests/standin/kubernetes_provider_server.py serving tools/coderbundle/data/kubernetes.json",
        notes=f"the real provider could not be built from source here: {src}",
    )
    return out


def build_module_stubs(cache: Cache) -> Path:
    """Stub modules for every pin in modules.json, regenerated when the data changes."""
    modules = json.loads(MODULES_DATA.read_text(encoding="utf-8"))["modules"]
    root = cache.root / "modules"
    digest = hashlib.sha256(MODULES_DATA.read_bytes()).hexdigest()
    entry = cache.manifest.get("modules")
    if entry and entry.get("data_sha256") == digest and root.is_dir():
        return root
    shutil.rmtree(root, ignore_errors=True)
    for spec in modules.values():
        write_stub_module(root, spec)
    index = root / "STUBS.json"
    index.write_text(
        json.dumps(sorted(s["source"] + "@" + s["version"] for s in modules.values()), indent=1) + "\n",
        encoding="utf-8",
    )
    cache.record(
        "modules",
        index,
        version=str(len(modules)),
        kind="stubs",
        data_sha256=digest,
        source="tools/coderbundle/data/modules.json",
        notes="variables and their types as pinned; outputs are placeholder strings",
    )
    return root


def _link_or_copy(src: str, dst: str) -> None:
    """A hard link (no second copy of a provider binary), or a copy where links are refused."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _mirrors_current(providers: Path, mirror: Path, sources: list[Path]) -> bool:
    """True when every file of ``sources`` is in ``mirror`` already (the same file, hard-linked)."""
    for source in sources:
        for path in source.rglob("*"):
            if path.is_file():
                copy = mirror / path.relative_to(providers)
                if not copy.is_file() or not path.samefile(copy):
                    return False
    return True


def build_matrix(cache: Cache, pinned_terraform: str, pinned_coder: str) -> Path:
    """The plan matrix's toolchains: the terraforms and the coder providers' own mirrors.

    Every terraform of MATRIX_TERRAFORM, and per coder provider of MATRIX_CODER a provider
    mirror of its own (hard links), so terraform picks exactly that one.

    Additive: the pinned versions keep their manifest keys; the others get ``<key>@<version>``.
    """
    terraforms = {}
    for version in MATRIX_TERRAFORM:
        key = "terraform" if version == pinned_terraform else f"terraform@{version}"
        terraforms[version] = str(build_terraform(cache, version, key).relative_to(cache.root))
    mirrors = {}
    kubernetes = cache.root / "providers" / "registry.terraform.io" / "hashicorp"
    for version in MATRIX_CODER:
        key = "coder/coder" if version == pinned_coder else f"coder/coder@{version}"
        binary = build_provider(cache, "coder/coder", version, key)
        mirror = cache.root / "matrix" / f"coder-{version}"
        sources = [binary.parent, kubernetes]
        if not _mirrors_current(cache.root / "providers", mirror, sources):
            shutil.rmtree(mirror, ignore_errors=True)  # a run planning with it meanwhile would fail
            for source in sources:
                relative = source.relative_to(cache.root / "providers")
                shutil.copytree(source, mirror / relative, copy_function=_link_or_copy, symlinks=True)
        mirrors[version] = str(mirror.relative_to(cache.root))
    index = cache.root / "matrix" / "MATRIX.json"
    data = {"terraform": terraforms, "provider_mirrors": mirrors}
    index.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    cache.record(
        "matrix",
        index,
        version=f"terraform {'/'.join(MATRIX_TERRAFORM)}; coder/coder {'/'.join(MATRIX_CODER)}",
        kind="plan matrix",
        source="scripts/build_tools.py MATRIX_TERRAFORM, MATRIX_CODER",
        notes="the oldest and newest terraform and coder provider the templates are planned with",
        **data,
    )
    return index
# The Kubernetes API server the chart tests run against (tests/kube_fixtures.py).
KUBE_VERSION = "1.34.2"
KUBE_MODULE = "k8s.io/kubernetes"


def build_kube_apiserver(cache: Cache, version: str = KUBE_VERSION) -> Path:
    """kube-apiserver at ``version``, built from the Go module proxy unless the manifest has it.

    The module zip lacks ``staging/`` (nested modules), which ``go.work`` and the
    ``k8s.io/x => ./staging/src/k8s.io/x`` replaces point at: the build drops ``go.work``
    and points each replace at the released ``k8s.io/x v0.<minor>.<patch>`` module instead,
    the very code staging holds at that tag.
    """
    out = cache.root / "kubernetes" / version / "kube-apiserver"
    if cache.current("kube-apiserver", version):
        return out
    src = go_download(KUBE_MODULE, f"v{version}")
    if isinstance(src, str):
        raise SystemExit(f"kube-apiserver {version}: {src}")
    staging = "v0." + version.split(".", 1)[1]
    with tempfile.TemporaryDirectory(prefix="kube-src-") as tmp:
        work = Path(tmp) / "kubernetes"
        shutil.copytree(src, work)
        for path in work.rglob("*"):
            path.chmod(path.stat().st_mode | 0o200)
        for name in ("go.work", "go.work.sum"):
            (work / name).unlink(missing_ok=True)
        gomod = work / "go.mod"
        text, count = re.subn(
            r"^(\s*)(k8s\.io/[\w.-]+) => \./staging/src/\S+$",
            rf"\1\2 => \2 {staging}",
            gomod.read_text(encoding="utf-8"),
            flags=re.MULTILINE,
        )
        gomod.write_text(text, encoding="utf-8")
        log(f"kube-apiserver {version}: {count} staging replaces -> {staging} (a cold build: minutes)")
        # The same flags as go_build (a shared Go build cache makes a rebuild quick); the
        # version variables are link-time only.
        minor = version.split(".")[1]
        stamp = " ".join(
            f"-X k8s.io/component-base/version.{k}={v}"
            for k, v in (("gitVersion", f"v{version}"), ("gitMajor", "1"), ("gitMinor", minor))
        )
        out.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["go", "build", "-trimpath", f"-ldflags=-s -w {stamp}", "-o", str(out), "./cmd/kube-apiserver"],
            cwd=work,
            env={**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod", "GOWORK": "off"},
            check=True,
        )
    cache.record(
        "kube-apiserver",
        out,
        version=version,
        kind="built from source",
        source=f"{KUBE_MODULE}@v{version}",
        notes=f"go.work dropped; staging replaces pointed at the released k8s.io/* {staging} modules",
    )
    return out


def write_cli_config(cache: Cache) -> Path:
    """The CLI configuration that installs providers from the mirror only."""
    config = cache.root / "terraform.tfrc"
    # No plugin cache: terraform links the mirror's unpacked packages in place, and a cache
    # would keep a stale copy once the mirror is rebuilt (as coderbundle's own config).
    shutil.rmtree(cache.root / "plugin-cache", ignore_errors=True)
    config.write_text(
        "# Written by scripts/build_tools.py: providers only from the local filesystem mirror.\n"
        "provider_installation {\n"
        "  filesystem_mirror {\n"
        f'    path    = "{cache.root / "providers"}"\n'
        '    include = ["registry.terraform.io/*/*"]\n'
        "  }\n"
        "}\n",
        encoding="utf-8",
    )
    return config


def main() -> int:
    """Build or reuse everything; ``--print-env`` prints the settings for a shell."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(
        os.environ.get("CODERBUNDLE_TOOLS_CACHE", Path.home() / ".cache" / "coderbundle" / "tools")
    )
    parser.add_argument("--cache", type=Path, default=default)
    parser.add_argument("--print-env", action="store_true", help="print export lines for a shell")
    args = parser.parse_args()
    if shutil.which("go") is None:
        raise SystemExit("build-tools: go is not installed; install Go to build terraform and the providers")
    versions = tomllib.loads(VERSIONS.read_text(encoding="utf-8"))
    cache = Cache(args.cache.resolve())
    terraform = build_terraform(cache, versions["terraform"]["version"])
    for address in ("coder/coder", "hashicorp/kubernetes"):
        key = address.split("/")[1]
        build_provider(cache, address, pinned(versions["providers"][key]["version"]))
    coder = build_coder_server(cache)
    modules = build_module_stubs(cache)
    build_matrix(cache, versions["terraform"]["version"], pinned(versions["providers"]["coder"]["version"]))
    build_kube_apiserver(cache)
    config = write_cli_config(cache)
    for key, entry in sorted(cache.manifest.items()):
        log(f"{key} {entry['version']}: {entry['kind']} (sha256 {entry['sha256'][:12]}…)")
    if args.print_env:
        print(f"export CODERBUNDLE_TERRAFORM={terraform}")
        print(f"export CODERBUNDLE_PROVIDER_MIRROR={cache.root / 'providers'}")
        print(f"export CODERBUNDLE_MODULE_MIRROR={modules}")
        print(f"# the coder CLI (and server) the real-deployment tests use: {coder}")
        print(f"# terraform by hand, providers from the mirror: export TF_CLI_CONFIG_FILE={config}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
