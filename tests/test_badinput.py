"""The bad-input catalogue: templates, settings, environment, files on disk, chart values.

Each case sets up one mistake in a fresh bundle (the ``good`` fixture), runs
the CLI's ``main()`` and asserts the exit code (0 clean, 1 findings, 2 usage
or environment), that no traceback is printed, that the one message names the
file or setting and says what to do, and that nothing is half-written: no
staging folder is left, nothing outside ``build/`` and ``dist/`` appears, and
a failed render leaves no partial output.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from bundle_files import set_values_file
from coderbundle import process
from coderbundle.__main__ import main
from coderbundle.errors import CommandFailed
from conftest import REPO, make_bundle
from fuzz_harness import leftovers, snapshot

if TYPE_CHECKING:
    from collections.abc import Callable

TOOLS = REPO / "tools"
GOOD = "templates/good"
PARAM = """
data "coder_parameter" "extra" {{
  name         = "extra"
  display_name = "Extra"
  type         = "string"
  default      = "{default}"
  mutable      = true
  validation {{
    regex = "{regex}"
    error = "Use the expected form."
  }}
}}
"""


def write(rel: str, data: str | bytes) -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, bytes):
            path.write_bytes(data)
        else:
            path.write_text(data, encoding="utf-8")

    return setup


def edit(rel: str, old: str, new: str) -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        path = root / rel
        text = path.read_text(encoding="utf-8")
        assert old in text, f"{old!r} not in {rel}"
        path.write_text(text.replace(old, new, 1), encoding="utf-8")

    return setup


def append(rel: str, extra: str) -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        path = root / rel
        path.write_text(path.read_text(encoding="utf-8") + extra, encoding="utf-8")

    return setup


def both(*steps: Callable[[Path], None]) -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        for step in steps:
            step(root)

    return setup


def symlink(rel: str, target: str) -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        (root / rel).symlink_to(target)

    return setup


def mkdir(rel: str) -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        (root / rel).mkdir(parents=True)

    return setup


def images(*names: str) -> Callable[[Path], None]:
    def setup(root: Path) -> None:
        for name in names:
            shutil.copytree(REPO / "images" / name, root / "images" / name, dirs_exist_ok=True)

    return setup


def values_file_key(value: str) -> Callable[[Path], None]:
    """bundle.toml's ``values_file`` set to ``value``, whether the team's copy sets one or not."""

    def setup(root: Path) -> None:
        path = root / "bundle.toml"
        path.write_text(set_values_file(path.read_text(encoding="utf-8"), value), encoding="utf-8")

    return setup


def values_file(text: str | bytes) -> Callable[[Path], None]:
    return both(
        write("values.yaml", text),
        values_file_key("values.yaml"),
    )


@dataclass(frozen=True)
class Case:
    """One bad (or odd but valid) input."""

    id: str
    setup: Callable[[Path], None]
    argv: tuple[str, ...]
    code: int
    needles: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    absent: tuple[str, ...] = ()  # text that must not appear anywhere (secrets)


def nothing(root: Path) -> None:
    """No setup: the mistake is in the environment or the command line."""
    del root


def j2(text: str) -> Callable[[Path], None]:
    return write(f"{GOOD}/extra.tf.j2", text)


V = ("validate",)
R = ("render",)
P = ("publish",)
CASES = [
    # --- templates: sources and what they render to ---------------------------------------------
    Case(
        "tf-invalid-utf8",
        write(f"{GOOD}/extra.tf", b'locals {\n  a = "\xff"\n}\n'),
        V,
        1,
        ("extra.tf:2", "UTF-8"),
    ),
    Case(
        "j2-invalid-utf8-bytes",
        write(f"{GOOD}/extra.tf.j2", b"# ok\n# \xc3\x28\n"),
        R,
        1,
        ("extra.tf.j2:2", "not valid UTF-8", "save the file as UTF-8"),
    ),
    Case("jinja-zero-division", j2("# a\n# {{ 1/0 }}\n"), R, 1, ("extra.tf.j2:2", "ZeroDivisionError")),
    Case(
        "jinja-int-plus-str", j2('# {{ 1 + "" }}\n'), R, 1, ("extra.tf.j2:1", "TypeError", "fix the template")
    ),
    Case("jinja-extends-twice", j2('{% extends "a.j2" %}{% extends "b.j2" %}\n'), R, 1, ("extra.tf.j2",)),
    Case("jinja-recursive-include", j2('{% include "extra.tf.j2" %}\n'), R, 1, ("extra.tf.j2", "recursion")),
    Case(
        "jinja-recursive-macro",
        j2("{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}\n"),
        R,
        1,
        ("extra.tf.j2", "recursion"),
    ),
    Case("jinja-huge-power", j2("# {{ 2 ** 999999999 }}\n"), R, 1, ("extra.tf.j2:1", "exponent")),
    Case("jinja-huge-repeat", j2("# {{ 'ab' * 1000000000 }}\n"), R, 1, ("extra.tf.j2:1", "repeating")),
    Case("jinja-python-internals", j2("# {{ ''.__class__.__mro__ }}\n"), R, 1, ("extra.tf.j2:1", "unsafe")),
    Case(
        "jinja-undefined", j2("# ok\n# {{ template.nmae }}\n"), R, 1, ("extra.tf.j2:2", "nmae", "define it")
    ),
    Case("jinja-syntax", j2("a = 1\n{% if %}\n"), R, 1, ("extra.tf.j2:2", "jinja2 syntax error")),
    Case("jinja-missing-include", j2('{% include "nope.j2" %}\n'), R, 1, ("'nope.j2' not found",)),
    Case("jinja-index-error", j2("# {{ template.tags[99] }}\n"), R, 1, ("extra.tf.j2:1", "fix the name")),
    Case("directory-named-j2", mkdir(f"{GOOD}/parts.tf.j2"), R, 1, ("parts.tf.j2", "rename it")),
    Case(
        "dangling-symlink",
        symlink(f"{GOOD}/gone.tf", "/nonexistent/gone.tf"),
        R,
        1,
        ("gone.tf", "dangling symlink", "fix or remove"),
    ),
    Case("symlink-loop-file", symlink(f"{GOOD}/loop.tf", "loop.tf"), R, 1, ("loop.tf", "symlink loop")),
    Case(
        "symlink-loop-dir",
        both(mkdir(f"{GOOD}/sub"), symlink(f"{GOOD}/sub/up", "..")),
        R,
        1,
        ("symlink loop",),
    ),
    Case(
        "rendered-over-1mib",
        j2("{% for i in range(20000) %}# {{ 'x' * 60 }}\n{% endfor %}"),
        R,
        1,
        ("extra.tf", "Coder accepts at most", "make it smaller"),
    ),
    Case(
        "rendered-tf-over-256kib",
        j2("{% for i in range(5000) %}# {{ 'x' * 60 }}\n{% endfor %}"),
        R,
        1,
        ("extra.tf", "at most 262144 bytes", "split it into several files"),
    ),
    Case(
        "copied-tf-over-256kib",
        write(f"{GOOD}/big.tf", "# " + "x" * 300_000 + "\n"),
        R,
        1,
        ("big.tf", "split it into several files"),
    ),
    Case(
        "source-file-too-large", write(f"{GOOD}/big.bin", b"\0" * (2 << 20)), R, 1, ("big.bin", "larger than")
    ),
    Case(
        "duplicate-resource-across-files",
        write(f"{GOOD}/extra.tf", 'resource "coder_app" "hello" {\n  agent_id = "x"\n  slug = "b"\n}\n'),
        V,
        1,
        ("extra.tf:1", "CB001", "declared twice", "keep one"),
    ),
    Case(
        "resource-without-labels",
        write(f"{GOOD}/extra.tf", "resource {\n}\n"),
        V,
        1,
        ("extra.tf:1", "needs 2 labels"),
    ),
    Case(
        "data-with-one-label",
        write(f"{GOOD}/extra.tf", 'data "coder_parameter" {\n}\n'),
        V,
        1,
        ("extra.tf:1", "needs 2 labels"),
    ),
    Case(
        "attribute-set-twice",
        write(f"{GOOD}/extra.tf", "locals {\n  a = 1\n  a = 2\n}\n"),
        V,
        1,
        ("extra.tf:3", "set twice"),
    ),
    Case(
        "deep-nesting",
        write(f"{GOOD}/extra.tf", "locals {\n  x = " + "[" * 5000 + "]" * 5000 + "\n}\n"),
        V,
        1,
        ("extra.tf", "CB001"),
    ),
    Case(
        "regex-valid-in-re2-only",
        write(f"{GOOD}/extra.tf", PARAM.format(default="abc", regex="^\\\\pL+$")),
        V,
        0,
    ),
    Case(
        "regex-catastrophic",
        write(f"{GOOD}/extra.tf", PARAM.format(default="a" * 40 + "!", regex="^(a+)+$")),
        V,
        1,
        ("extra.tf", "CB114", "does not match"),
    ),
    Case(
        "regex-not-re2",
        write(f"{GOOD}/extra.tf", PARAM.format(default="b", regex="(?<=a)b")),
        V,
        1,
        ("extra.tf", "CB114", "RE2"),
    ),
    Case("non-ascii-identifier", write(f"{GOOD}/extra.tf", 'locals {\n  café = "x"\n}\n'), V, 0),
    # A BOM parses, as terraform accepts it: no CB001 (terraform fmt, which would drop it, runs
    # in its own tests).
    Case("bom", write(f"{GOOD}/extra.tf", '\ufefflocals {\n  bom = "x"\n}\n'), V, 0, absent=("CB001",)),
    Case("escaped-interpolation", write(f"{GOOD}/extra.tf", 'locals {\n  sh = "$${HOME}"\n}\n'), V, 0),
    Case("lone-cr-in-comment", write(f"{GOOD}/extra.tf", b"# a\rb\nlocals {\n  cr = 1\n}\n"), V, 0),
    Case("crlf", write(f"{GOOD}/extra.tf", b"locals {\r\n  crlf = 1\r\n}\r\n"), V, 0),
    Case(
        "readme-invalid-utf8", write(f"{GOOD}/README.md", b"# Good\n\n\xff\n"), V, 1, ("README.md", "CB117")
    ),
    # --- template.toml ---------------------------------------------------------------------------
    Case(
        "template-toml-invalid-utf8",
        write(f"{GOOD}/template.toml", b'display_name = "\xff"\n'),
        R,
        2,
        ("template.toml:1", "UTF-8"),
    ),
    Case(
        "template-toml-syntax",
        append(f"{GOOD}/template.toml", "x = \n"),
        R,
        2,
        ("template.toml", "invalid TOML"),
    ),
    Case(
        "variables-not-a-table",
        append(f"{GOOD}/template.toml", 'variables = "x"\n'),
        R,
        2,
        ("template.toml", "variables", "must be a table"),
    ),
    Case(
        "display-name-number",
        edit(f"{GOOD}/template.toml", 'display_name = "Good fixture"', "display_name = 42"),
        R,
        2,
        ("template.toml", "display_name", "must be a string"),
    ),
    Case(
        "misspelled-key",
        edit(f"{GOOD}/template.toml", "display_name", "displayname"),
        R,
        2,
        ("template.toml", "'displayname'", "did you mean 'display_name'"),
    ),
    Case(
        "misspelled-table",
        append(f"{GOOD}/template.toml", '[variabels.x]\nenv = "X"\n'),
        R,
        2,
        ("template.toml", "did you mean 'variables'"),
    ),
    Case(
        "tags-not-a-list",
        edit(f"{GOOD}/template.toml", 'tags = ["kubernetes", "fixture"]', 'tags = "k8s"'),
        R,
        2,
        ("template.toml", "tags", "array of strings"),
    ),
    Case(
        "variable-without-env",
        append(f"{GOOD}/template.toml", '[variables.x]\ndescription = "d"\n'),
        R,
        2,
        ("template.toml", "variables.x.env"),
    ),
    Case(
        "missing-required-key",
        edit(f"{GOOD}/template.toml", 'image = "base"', ""),
        R,
        2,
        ("template.toml", "missing key 'image'"),
    ),
    Case(
        "image-without-folder",
        both(images("base"), edit(f"{GOOD}/template.toml", 'image = "base"', 'image = "bsae"')),
        R,
        2,
        ("template.toml", "'bsae'", "did you mean 'base'"),
    ),
    Case(
        "tools-accepted",
        append(f"{GOOD}/template.toml", '[[tools]]\nname = "node"\ncheck = "node -v"\n'),
        R,
        0,
    ),
    Case(
        "tools-wrong-type",
        append(f"{GOOD}/template.toml", '[[tools]]\nname = 1\ncheck = "x"\n'),
        R,
        2,
        ("template.toml", "tools[0].name", "must be a string"),
    ),
    # --- bundle.toml -----------------------------------------------------------------------------
    Case(
        "concurrency-string",
        edit("bundle.toml", "concurrency = 3", 'concurrency = "three"'),
        R,
        2,
        ("bundle.toml", "coder.concurrency", "must be an integer"),
    ),
    Case(
        "concurrency-zero",
        edit("bundle.toml", "concurrency = 3", "concurrency = 0"),
        R,
        2,
        ("bundle.toml", "between 1 and"),
    ),
    Case(
        "registry-not-a-table",
        both(
            edit("bundle.toml", "[registry]\n", "[registry_]\n"),
            edit("bundle.toml", "[registry_]", 'registry = "x"\n[_r]'),
        ),
        R,
        2,
        ("bundle.toml", "registry"),
    ),
    Case(
        "misspelled-workspace",
        edit("bundle.toml", "[workspace]", "[worksapce]"),
        R,
        2,
        ("bundle.toml", "did you mean 'workspace'"),
    ),
    Case(
        "namespace-not-dns-label",
        edit("bundle.toml", 'namespace = "coder-workspaces"', 'namespace = "Coder_WS"'),
        R,
        2,
        ("bundle.toml", "workspace.namespace", "Kubernetes namespace"),
    ),
    Case(
        "bundle-invalid-utf8",
        write("bundle.toml", b'[coder]\nexecutable = "\xfe"\n'),
        R,
        2,
        ("bundle.toml:2", "UTF-8"),
    ),
    Case(
        "disk-size-fraction",
        edit("bundle.toml", 'home_disk_size = "50Gi"', 'home_disk_size = "1.5Gi"'),
        R,
        2,
        ("bundle.toml", "home_disk_size", "whole Gi"),
    ),
    Case(
        "duration-words",
        edit("bundle.toml", 'inactivity_timeout = "4h"', 'inactivity_timeout = "forever"'),
        R,
        2,
        ("bundle.toml", "inactivity_timeout", "duration"),
    ),
    Case(
        "registry-host-bad",
        edit("bundle.toml", 'host = ""', 'host = "bad::host"'),
        R,
        2,
        ("registry.host", "host[:port]"),
    ),
    Case(
        "new-settings-accepted",
        both(
            edit("bundle.toml", 'provider_mirror = ""', 'provider_mirror = "m"'),
            edit("bundle.toml", 'module_mirror = ""', 'module_mirror = "n"'),
            edit("bundle.toml", 'download_source = "upstream"', 'download_source = "registries"'),
            edit("bundle.toml", "[workspace]\n", "[workspace]\nsubdomain_apps = true\n"),
        ),
        R,
        0,
    ),
    Case(
        "download-source-bad",
        edit("bundle.toml", 'download_source = "upstream"', 'download_source = "mirror"'),
        R,
        2,
        ("images.download_source", "'upstream' or 'registries'"),
    ),
    Case(
        "external-auth-id-bad",
        edit("bundle.toml", 'external_auth = "gitlab"', 'external_auth = "git lab"'),
        R,
        2,
        ("coder.external_auth", "CODER_EXTERNAL_AUTH_<n>_ID"),
    ),
    Case(
        "external-auth-none-renders",
        edit("bundle.toml", 'external_auth = "gitlab"', 'external_auth = ""'),
        R,
        0,
    ),
    Case(
        "pinned-image-bad",
        edit("bundle.toml", "[terraform]\n", '[images.pinned]\nbase = "Not An Image!"\n\n[terraform]\n'),
        R,
        2,
        ("images.pinned.base", "registry/repository"),
    ),
    Case("no-bundle-toml", lambda root: (root / "bundle.toml").unlink(), R, 2, ("bundle.toml",)),
    # --- versions.toml ---------------------------------------------------------------------------
    Case(
        "versions-invalid-utf8",
        write("templates/_shared/versions.toml", b'[terraform]\nrequired_version = "\xff"\n'),
        R,
        2,
        ("versions.toml:2", "UTF-8"),
    ),
    Case(
        "versions-providers-string",
        write("templates/_shared/versions.toml", 'providers = "x"\n'),
        R,
        2,
        ("versions.toml", "providers", "must be a table"),
    ),
    Case(
        "versions-module-version-number",
        append("templates/_shared/versions.toml", '\n[modules.extra]\nsource = "s"\nversion = 1\n'),
        R,
        2,
        ("versions.toml", "modules.extra.version", "must be a string"),
    ),
    Case(
        "versions-misspelled",
        append("templates/_shared/versions.toml", '\n[module.x]\nsource = "s"\n'),
        R,
        2,
        ("versions.toml", "did you mean 'modules'"),
    ),
    # --- chart values (workspace.values_file) ----------------------------------------------------
    Case(
        "values-file-missing",
        values_file_key("nope.yaml"),
        R,
        2,
        ("nope.yaml", "file not found"),
    ),
    Case("values-invalid-yaml", values_file("coder: [\n"), R, 2, ("values.yaml", "invalid YAML")),
    Case(
        "values-coder-not-a-mapping",
        values_file("coder: x\n"),
        R,
        2,
        ("values.yaml", "coder must be a mapping"),
    ),
    Case("values-invalid-utf8", values_file(b'coder:\n  x: "\xff"\n'), R, 2, ("values.yaml:2", "UTF-8")),
    Case(
        "values-bad-quantity",
        values_file("coder:\n  workspaces:\n    storage:\n      size: lots\n"),
        R,
        2,
        ("home_disk_size", "Kubernetes quantity"),
    ),
    Case(
        "values-size-a-list",
        values_file("coder:\n  workspaces:\n    storage:\n      size: [1]\n"),
        R,
        2,
        ("values.yaml", "home_disk_size", "must be a string"),
    ),
    # --- chart values for deploy (-f) ----------------------------------------------------------
    Case(
        "deploy-values-invalid-utf8",
        write("v.yaml", b'coder:\n  image: "\xff"\n'),
        ("deploy", "--dry-run", "-f", "v.yaml"),
        1,
        ("v.yaml:2", "UTF-8"),
    ),
    Case(
        "deploy-values-missing",
        nothing,
        ("deploy", "--dry-run", "-f", "nope.yaml"),
        2,  # usage (docs/errors.md)
        ("nope.yaml", "file not found", "check the -f path"),
    ),
    Case(
        "deploy-values-not-a-mapping",
        write("v.yaml", "- 1\n"),
        ("deploy", "--dry-run", "-f", "v.yaml"),
        1,
        ("v.yaml", "mapping"),
    ),
    Case(
        "deploy-values-too-deep",
        write("v.yaml", "a: " + "[" * 5000 + "]" * 5000 + "\n"),
        ("deploy", "--dry-run", "-f", "v.yaml"),
        1,
        ("v.yaml", "invalid YAML"),
    ),
    # --- environment -----------------------------------------------------------------------------
    Case(
        "coder-url-not-a-url", nothing, P, 2, ("CODER_URL", "no scheme"), {"CODER_URL": "not-a-url"}
    ),
    Case(
        "coder-url-ftp",
        nothing,
        P,
        2,
        ("CODER_URL", "scheme 'ftp'"),
        {"CODER_URL": "ftp://x.example"},
    ),
    Case(
        "coder-url-bad-ipv6",
        nothing,
        P,
        2,
        ("CODER_URL", "not a valid URL"),
        {"CODER_URL": "http://[::1"},
    ),
    Case(
        "coder-url-bad-port",
        nothing,
        P,
        2,
        ("CODER_URL",),
        {"CODER_URL": "https://c.example:99999"},
    ),
    Case(
        "coder-url-userinfo",
        nothing,
        P,
        2,
        ("CODER_URL", "CODER_SESSION_TOKEN", "***@"),
        {"CODER_URL": "https://admin:hunter2secret@c.example"},
        absent=("hunter2secret",),
    ),
    Case(
        "registry-env-bad",
        nothing,
        R,
        2,
        ("CODERBUNDLE_REGISTRY", "host[:port]"),
        {"CODERBUNDLE_REGISTRY": "bad::host"},
    ),
    Case(
        "prefix-env-bad",
        nothing,
        R,
        2,
        ("CODERBUNDLE_REPOSITORY_PREFIX",),
        {"CODERBUNDLE_REPOSITORY_PREFIX": "Bad Prefix"},
    ),
    Case(
        "token-missing",
        nothing,
        P,
        2,
        ("CODER_SESSION_TOKEN is not set", "coder tokens create"),
        {"CODER_URL": "http://127.0.0.1:9", "CODER_SESSION_TOKEN": ""},
    ),
    Case(
        "token-with-newline",
        nothing,
        ("publish", "--dry-run", "--no-images"),
        2,
        ("CODER_SESSION_TOKEN", "line breaks"),
        {"CODER_URL": "http://127.0.0.1:9", "CODER_SESSION_TOKEN": "sekr3t-part\nsecond-part"},
        absent=("sekr3t-part",),
    ),
    Case(
        "docker-host-malformed",
        images("base"),
        ("images", "build", "base"),
        2,
        ("DOCKER_HOST",),
        {"DOCKER_HOST": "tcp://[::1"},
    ),
    Case(
        "vault-token-missing",
        write("v.yaml", "coder: {}\n"),
        ("vault-setup", "-f", "v.yaml", "--vault-addr", "http://127.0.0.1:9"),
        2,
        ("VAULT_TOKEN",),
        {"VAULT_TOKEN": ""},
    ),
    Case(
        "ca-file-missing",
        images("base"),
        ("images", "build", "base"),
        2,
        ("nope.pem", "file not found", "CODERBUNDLE_EXTRA_CA_CERT"),
        {"CODERBUNDLE_EXTRA_CA_CERT": "nope.pem"},
    ),
    Case(
        "docker-daemon-missing",
        images("base"),
        ("images", "build", "base"),
        2,
        ("cannot reach the Docker daemon", "DOCKER_HOST"),
        {"DOCKER_HOST": "unix:///nonexistent/docker.sock"},
    ),
    Case(
        "push-without-registry-keeps-brackets",
        images("base"),
        ("images", "build", "--push", "base"),
        2,
        ("[registry] host in bundle.toml",),
    ),
    Case("markup-in-argument", nothing, ("render", "[/x]"), 2, ("unknown template '[/x]'",)),
    Case(
        "markup-in-template-name", nothing, ("render", "[bold]x[/bold]"), 2, ("'[bold]x[/bold]'",)
    ),
    # --- files on disk ---------------------------------------------------------------------------
    Case(
        "build-is-a-file", write("build", "not a directory\n"), R, 2, ("build", "is a file", "move or remove")
    ),
    Case("build-templates-is-a-file", write("build/templates", "x\n"), R, 2, ("templates", "is a file")),
    Case(
        "rendered-target-is-a-file",
        write("build/templates/good", "x\n"),
        R,
        2,
        ("build/templates/good", "move or remove"),
    ),
    Case("dist-is-a-file", write("dist", "x\n"), P, 2, ("dist", "is a file")),
    Case("dist-templates-is-a-file", write("dist/templates", "x\n"), P, 2, ("templates", "is a file")),
]

ENV_KEYS = (
    "CODER_URL",
    "CODER_SESSION_TOKEN",
    "CODER_ORGANIZATION",
    "CODERBUNDLE_REGISTRY",
    "CODERBUNDLE_REPOSITORY_PREFIX",
    "CODERBUNDLE_EXTRA_CA_CERT",
    "CODERBUNDLE_UPSTREAM_IMAGE",
    "CODERBUNDLE_DOWNLOAD_SOURCE",
    # fmt and terraform validate run in their own tests (and with `nox -s tools`' terraform)
    "CODERBUNDLE_TERRAFORM",
    "CODERBUNDLE_PROVIDER_MIRROR",
    "CODERBUNDLE_MODULE_MIRROR",
    "DOCKER_HOST",
)


def _no_terraform_path() -> str:
    parts = os.environ.get("PATH", "").split(os.pathsep)
    return os.pathsep.join(p for p in parts if not (Path(p) / "terraform").exists())


@pytest.fixture
def quiet_env(monkeypatch):
    for key in ENV_KEYS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("CODERBUNDLE_TERRAFORM_VALIDATE", "never")
    monkeypatch.setenv("PATH", _no_terraform_path())  # fmt runs in its own tests; these stay fast
    return monkeypatch


def test_catalogue_has_every_class():
    assert len(CASES) >= 60
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_bad_input(case, tmp_path, quiet_env, capsys):
    root = make_bundle(tmp_path / "bundle", "good")
    case.setup(root)
    for key, value in case.env.items():
        quiet_env.setenv(key, value)
    quiet_env.chdir(root)  # relative paths (-f values.yaml) are the user's, from the bundle root
    before = snapshot(root)
    start = time.monotonic()
    code = main(["--root", str(root), *case.argv])
    took = time.monotonic() - start
    out, err = capsys.readouterr()
    assert code == case.code, err
    assert "Traceback" not in err
    assert took < 20, f"{case.id} took {took:.1f}s"
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    if case.code == 2:
        assert len(errors) == 1, err
    if case.needles:
        lines = errors if case.code == 2 else err.splitlines()
        for needle in case.needles:
            assert any(needle in ln for ln in lines), f"{needle!r} not in:\n{err}"
    for secret in case.absent:
        assert secret not in err + out
        for path in (root / "dist").rglob("*") if (root / "dist").is_dir() else ():
            if path.is_file():
                assert secret.encode() not in path.read_bytes()
    # Nothing half-written: no staging left, nothing new outside build/ and dist/.
    assert snapshot(root) == before
    assert leftovers(root) == []
    rendered = root / "build" / "templates" / "good"
    if case.code != 0 and "render" in case.argv and rendered.is_dir() and "-is-a-file" not in case.id:
        pytest.fail(f"{case.id}: a failed render left {rendered}")


@pytest.mark.usefixtures("quiet_env")
def test_failed_render_keeps_the_previous_output(bundle, capsys):
    root = bundle("good")
    assert main(["--root", str(root), "render"]) == 0
    before = {p.name: p.read_bytes() for p in (root / "build" / "templates" / "good").iterdir()}
    (root / "templates" / "good" / "extra.tf.j2").write_text("{{ 1/0 }}\n")
    assert main(["--root", str(root), "render"]) == 1
    after = {p.name: p.read_bytes() for p in (root / "build" / "templates" / "good").iterdir()}
    assert after == before
    assert leftovers(root) == []
    capsys.readouterr()


@pytest.mark.usefixtures("quiet_env")
def test_full_disk_while_publishing_keeps_the_old_dist(bundle):
    """A real write failure (RLIMIT_FSIZE makes the kernel refuse big writes): old dist/ stays whole."""
    root = bundle("good")
    env = {**os.environ, "PYTHONPATH": str(TOOLS)}
    argv = [sys.executable, "-m", "coderbundle", "--root", str(root), "publish", "--no-images"]
    first = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    assert first.returncode == 0, first.stderr
    old = {
        p.relative_to(root / "dist").as_posix(): p.read_bytes()
        for p in (root / "dist").rglob("*")
        if p.is_file()
    }
    (root / "templates" / "good" / "notes.txt").write_text("x" * 50_000)  # a new archive over the limit

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (40_000, 40_000))

    proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False, preexec_fn=limit)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "free space" in proc.stderr
    new = {
        p.relative_to(root / "dist").as_posix(): p.read_bytes()
        for p in (root / "dist").rglob("*")
        if p.is_file()
    }
    assert new == old
    assert leftovers(root) == []


@pytest.mark.usefixtures("quiet_env")
def test_concurrent_renders_in_one_checkout(bundle):
    root = bundle("good")
    env = {**os.environ, "PYTHONPATH": str(TOOLS)}
    argv = [sys.executable, "-m", "coderbundle", "--root", str(root), "render"]
    procs = [subprocess.Popen(argv, env=env, stderr=subprocess.PIPE, text=True) for _ in range(6)]
    results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
    for p in procs:
        p.stderr.close()
    assert [code for code, _ in results] == [0] * 6, results
    assert not any("Traceback" in err for _, err in results)
    assert leftovers(root) == []
    assert (root / "build" / "templates" / "good" / "main.tf").is_file()


@pytest.mark.usefixtures("quiet_env")
def test_publish_json_has_one_shape(bundle, capsys):
    root = bundle("good")
    assert main(["--root", str(root), "publish", "--no-images", "--format", "json"]) == 0
    passed = json.loads(capsys.readouterr().out)
    (root / "templates" / "good" / "extra.tf").write_text("resource {\n}\n")
    assert main(["--root", str(root), "publish", "--no-images", "--format", "json"]) == 1
    failed = json.loads(capsys.readouterr().out)
    assert set(failed) == set(passed)
    assert [set(t) for t in failed["templates"]] == [set(t) for t in passed["templates"]]
    assert failed["ok"] is False
    assert failed["templates"][0]["status"] == "invalid"
    assert failed["problems"][0]["rule"] == "CB001"
    assert passed["problems"] == []


def test_help_lists_exit_codes_in_user_words(capsys):
    commands = [
        (),
        ("render",),
        ("validate",),
        ("publish",),
        ("deploy",),
        ("vault-setup",),
        ("images", "build"),
        ("mirror",),
        ("test",),
    ]
    for command in commands:
        assert main([*command, "--help"]) == 0
        out = capsys.readouterr().out
        for line in (
            "0    success",
            "1    findings",
            "2    usage or environment",
            "3    a bug",
            "130  interrupted",
        ):
            assert line in out, (command, out)
    assert main(["--help"]) == 0
    assert "Command-line edge" not in capsys.readouterr().out


@pytest.mark.usefixtures("quiet_env")
def test_a_bug_is_one_line_and_asks_for_a_report(bundle, monkeypatch, capsys):
    root = bundle("good")

    def broken(*args, **kwargs):
        del args, kwargs
        raise RuntimeError("boom")

    monkeypatch.setattr("coderbundle.pipeline.render_all", broken)
    assert main(["--root", str(root), "render"]) == 3
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "please report it" in err
    assert main(["-v", "--root", str(root), "render"]) == 3
    assert "Traceback" in capsys.readouterr().err


def test_timeout_kills_the_whole_process_group(tmp_path):
    pidfile = tmp_path / "grandchild.pid"
    script = f"sleep 300 & echo $! > {pidfile}; wait"
    start = time.monotonic()
    with pytest.raises(CommandFailed, match="timed out"):
        process.run(["sh", "-c", script], timeout=1)
    assert time.monotonic() - start < 15
    grandchild = int(pidfile.read_text())
    for _ in range(50):
        try:
            os.kill(grandchild, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail("the grandchild survived the timeout")


def test_undecodable_subprocess_output_is_replaced():
    done = process.run([sys.executable, "-c", "import sys; sys.stdout.buffer.write(b'ok \\xff\\n')"])
    assert done.stdout == "ok \ufffd\n"


@pytest.mark.terraform
def test_what_only_terraform_rejects_is_a_finding_and_keeps_the_other_results(tmp_path, monkeypatch, capsys):
    """python-hcl2 reads a lone CR as a line end, terraform does not: a CB001 at file:line, not exit 2."""
    monkeypatch.setenv("CODERBUNDLE_TERRAFORM_VALIDATE", "never")
    root = make_bundle(tmp_path / "bundle", "good")
    shutil.copytree(root / "templates" / "good", root / "templates" / "odd")
    (root / "templates" / "odd" / "extra.tf").write_bytes(b'locals {\n  a = "x"\r  b = "y"\n}\n')
    code = main(["--root", str(root), "validate", "--format", "json"])
    out, err = capsys.readouterr()
    assert code == 1, err
    report = json.loads(out)
    by_name = {t["name"]: t for t in report["templates"]}
    problems = by_name["odd"]["problems"]
    assert problems
    for problem in problems:
        assert problem["rule"] == "CB001"
        assert problem["file"].endswith("odd/extra.tf")
        assert problem["line"] == 2
        assert "terraform rejects this" in problem["message"]
    assert by_name["good"]["problems"] == []


def test_the_ctrl_c_tests_children_get_sigint_as_a_terminal_gives_it():
    # Started in the background (`nox -s tests &`) the suite inherits an ignored SIGINT;
    # its children would too, and the Ctrl-C tests would time out instead of testing.
    probe = "import signal; print(signal.getsignal(signal.SIGINT).__name__)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "default_int_handler"


@pytest.mark.usefixtures("quiet_env")
def test_interrupt_exits_130_and_leaves_nothing_half_written(bundle):
    root = bundle("good")
    (root / "templates" / "good" / "slow.tf.j2").write_text(
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}\n"
    )
    env = {**os.environ, "PYTHONPATH": str(TOOLS)}
    argv = [sys.executable, "-m", "coderbundle", "--root", str(root), "render"]
    proc = subprocess.Popen(argv, env=env, stderr=subprocess.PIPE, text=True)
    time.sleep(2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "interrupted" in err
    assert "Traceback" not in err
    assert leftovers(root) == []
    assert not (root / "build" / "templates" / "good").exists()


def test_a_runaway_loop_in_a_template_is_stopped(bundle, quiet_env, capsys):
    quiet_env.setattr("coderbundle.render.RENDER_SECONDS", 1.0)
    root = bundle("good")
    (root / "templates" / "good" / "slow.tf.j2").write_text(
        "# a\n{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}\n"
    )
    start = time.monotonic()
    assert main(["--root", str(root), "render"]) == 1
    assert time.monotonic() - start < 10
    err = capsys.readouterr().err
    assert "slow.tf.j2:2" in err
    assert "runaway loop" in err


def test_a_dangling_symlink_in_an_image_folder_is_reported(tmp_path):
    from coderbundle import images  # noqa: PLC0415
    from coderbundle.errors import ImageBuildError  # noqa: PLC0415

    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "gone.sh").symlink_to(tmp_path / "nowhere.sh")
    with pytest.raises(ImageBuildError, match=r"gone\.sh: dangling symlink"):
        images.build_context(tmp_path)
