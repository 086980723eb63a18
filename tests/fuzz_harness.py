"""A seeded mutator over the real templates and sources, run against coderbundle's validation.

Each input is one mutation (byte flips, token edits, truncation, random
Terraform and Jinja snippets) of a real file: a template source (``.j2``,
``template.toml``, ``versions.toml``, ``bundle.toml``) rendered and
validated through the CLI's own ``main()`` in-process, or a rendered ``.tf``
validated directly.  Every ``--cli-every``-th input also goes through the
real CLI in a subprocess, with terraform on the PATH.

An input fails when the exit code is not 0, 1 or 2, a traceback is printed,
a file is left outside the documented outputs (``build/``, ``dist/``), a
staging folder is left behind, or it takes longer than ``--limit`` seconds.

    python tests/fuzz_harness.py --count 10000 --seed 1

Used by ``tests/test_fuzz.py`` (a few hundred inputs) and ``nox -s fuzz``.
"""

from __future__ import annotations

import _thread
import argparse
import contextlib
import io
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from bundle_files import copy_settings

REPO = Path(__file__).resolve().parent.parent
TOOLS = REPO / "tools"
if str(TOOLS) not in sys.path:
    sys.path.insert(0, str(TOOLS))

TEMPLATES = ("nodejs", "python", "go", "docker", "kubernetes")
OK_CODES = {0, 1, 2}

TF_TOKENS = [
    "{",
    "}",
    "[",
    "]",
    "(",
    ")",
    '"',
    "=",
    ",",
    ".",
    "\n",
    "${",
    "$${",
    "%{",
    "}}",
    "<<EOT\n",
    "\nEOT\n",
    "resource",
    "data",
    "variable",
    "locals",
    "module",
    "output",
    "count",
    "for_each",
    "dynamic",
    "content",
    "each.value",
    "var.x",
    "local.y",
    "null",
    "true",
    "false",
    "0",
    "-1",
    "1e309",
    "\ufeff",
    "\r",
    "\r\n",
    "é",
    "ü名",
    "#",
    "//",
    "/*",
    "*/",
    "?",
    ":",
    "=>",
    "...",
    "for",
    "in",
    "if",
    "\\",
    "\t",
    "\x00",
]
JINJA_TOKENS = [
    "{{",
    "}}",
    "{%",
    "%}",
    "{#",
    "#}",
    "-%}",
    "{%-",
    "|",
    "(",
    ")",
    "[",
    "]",
    "'",
    '"',
    "+",
    "*",
    "/",
    "%",
    "if",
    "endif",
    "for",
    "endfor",
    "include",
    "extends",
    "block",
    "endblock",
    "macro",
    "endmacro",
    "set",
    "raw",
    "endraw",
    "with",
    "endwith",
    "versions",
    "offers",
    "template",
    "workspace",
    "registry",
    "loop",
    "none",
    "undefined",
    "tfstring",
    "namespace",
    "range(3)",
    "0",
    "1",
    "-1",
]
TF_SNIPPETS = [
    'resource "kubernetes_pod" {\n}\n',
    "resource {\n}\n",
    'data "coder_parameter" {\n  name = "x"\n}\n',
    "variable {\n  default = 1\n}\n",
    'resource "coder_app" "x" {\n  slug = ["a"]\n  agent_id = {}\n}\n',
    (
        'data "coder_parameter" "p" {\n  name = {a = 1}\n  type = "string"\n  default = "x"\n'
        '  validation {\n    regex = "(?<=a)b"\n    error = "e"\n  }\n}\n'
    ),
    (
        'data "coder_parameter" "q" {\n  name = "q"\n  type = "string"\n'
        '  default = "aaaaaaaaaaaaaaaaaaaaaaaaaaaa!"\n'
        '  validation {\n    regex = "^(a+)+$"\n    error = "e"\n  }\n}\n'
    ),
    'data "coder_parameter" "r" {\n  name = "r"\n  type = "list(string)"\n  default = "[[[[[[[[[["\n}\n',
    "locals {\n  x = " + "[" * 3000 + "]" * 3000 + "\n}\n",
    "locals {\n  y = " + "(" * 2000 + "1" + ")" * 2000 + "\n}\n",
    "locals {\n  café = 1\n  ü = café\n}\n",
    '\ufefflocals {\n  a = "$${HOME}"\n}\n',
    "# comment\rstill comment\nlocals {\n  b = 1\n}\n",
    "locals {\n  s = <<-EOT\n    ${var.nope}\n  EOT\n}\n",
    'resource "kubernetes_deployment" "main" {\n}\n',
    'variable "image" {\n}\n',
    'module "m" {\n  source = "registry.coder.com/coder/code-server/coder"\n  version = 1\n}\n',
    (
        'data "coder_workspace_preset" "p" {\n  name = "p"\n'
        "  parameters = {(data.coder_parameter.x.name) = 1}\n}\n"
    ),
    'resource "coder_agent" "a" {\n  os = "linux"\n  os = "linux"\n}\n',
    'locals {\n  z = "\udcff"\n}\n'.encode("utf-8", "surrogatepass").decode("utf-8", "replace"),
]
JINJA_SNIPPETS = [
    "{{ 1/0 }}",
    "{{ 1 + '' }}",
    "{{ template.name + 1 }}",
    "{% extends 'a.j2' %}{% extends 'b.j2' %}",
    "{% include 'main.tf.j2' %}",
    "{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}",
    "{{ 9 ** 9 ** 9 }}",
    "{{ 'a' * 1000000000 }}",
    "{{ ''.__class__.__mro__ }}",
    "{{ versions.modules.x.y.z }}",
    "{{ nope }}",
    "{% for i in range(10) %}{{ i }}{% endfor %}",
    "{{ offers | tfstring }}",
    "{% raw %}{{ x }}",
    "{{ [1,2][5] }}",
    "{{ {}.x.y }}",
    "{{ 'x' | int(base=99) }}",
    "{{ '%d' % 'x' }}",
    "{{ range(-1, 10**9) | list }}",
    "{% set x = x %}{{ x }}",
    "{{ (1,) < ('a',) }}",
    "{{ '\\udcff' }}",
    "{{ 'é' | center(40) }}",
    "{% break %}",
    "{% include [] %}",
    "{% import 'macros.j2' as m %}{{ m.nope() }}",
    "{{ loop.index }}",
    "{{ ( }}",
    "{{ 1e309 | int }}",
    "{{ '%s' | format(*[]) }}",
    "{{ template.tags[99] }}",
    "{{ lipsum(1000, n=1000) }}",
]
TOML_EDITS = [
    ("display_name = ", "display_name = 42 #"),
    ("tags = ", "tags = 'x' #"),
    ("image = ", "image = 'nope' #"),
    ("[variables.", "[variabels."),
    ("env = ", "env = 3 #"),
    ("description = ", "description = [] #"),
    ("concurrency = 3", 'concurrency = "three"'),
    ("[registry]", "registry = 'x'\n[registryx]"),
    ('namespace = "coder-workspaces"', 'namespace = "Coder_WS"'),
    ("[workspace]", "[worksapce]"),
    ('version = "', 'version = 1 #"'),
    ("[modules.", "[module."),
    ('home_disk_size = "50Gi"', 'home_disk_size = "1.5Gi"'),
    ('cpu_request = "500m"', "cpu_request = 1"),
    ("[coder]", "[coder]\nfoo = 1"),
    ("[images]", "[images]\ndownload_source = 'x'"),
]


@dataclass
class Outcome:
    """One input's result."""

    index: int
    kind: str
    target: str
    code: int
    seconds: float
    problem: str = ""
    output: str = ""


@dataclass
class Summary:
    """All inputs' results."""

    seed: int
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.problem]


def mutate_text(rng: random.Random, data: bytes, *, jinja: bool, toml: bool) -> bytes:  # noqa: C901, PLR0912 - one branch per mutation
    """One random mutation of ``data``."""
    ops = ["flip", "tokens", "truncate", "snippet", "snippet", "tokens"]
    if toml:
        ops += ["toml", "toml", "toml"]
    op = rng.choice(ops)
    if not data:
        op = "snippet"
    if op == "flip":
        buf = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            buf[rng.randrange(len(buf))] = rng.randrange(256)
        return bytes(buf)
    if op == "truncate":
        return data[: rng.randrange(len(data))]
    text = data.decode("utf-8", errors="replace")
    if op == "toml":
        old, new = rng.choice(TOML_EDITS)
        if old in text:
            return text.replace(old, new, 1).encode()
        return (text + "\n" + new.split("#")[0] + "\n").encode()
    if op == "snippet":
        pool = TF_SNIPPETS + (JINJA_SNIPPETS if jinja else [])
        snippet = rng.choice(pool)
        lines = text.splitlines(keepends=True)
        at = rng.randrange(len(lines) + 1)
        return ("".join(lines[:at]) + snippet + "\n" + "".join(lines[at:])).encode(
            "utf-8", errors="surrogatepass"
        )
    pieces = re.findall(r"\w+|\s+|.", text, flags=re.DOTALL)
    vocab = TF_TOKENS + (JINJA_TOKENS if jinja else [])
    for _ in range(rng.randint(1, 3)):
        if not pieces:
            break
        i = rng.randrange(len(pieces))
        action = rng.choice(("delete", "duplicate", "replace", "insert"))
        if action == "delete":
            del pieces[i]
        elif action == "duplicate":
            pieces.insert(i, pieces[i])
        elif action == "replace":
            pieces[i] = rng.choice(vocab)
        else:
            pieces.insert(i, rng.choice(vocab))
    return "".join(pieces).encode("utf-8", errors="surrogatepass")


def make_base(root: Path) -> Path:
    """A bundle at ``root``: the repository's settings, templates and image folder names."""
    (root / "templates").mkdir(parents=True)
    copy_settings(root)  # bundle.toml and the files it names (a values_file, getting-started step 8)
    for name in ("_shared", *TEMPLATES):
        shutil.copytree(REPO / "templates" / name, root / "templates" / name)
    for image in (REPO / "images").iterdir():
        if image.is_dir():
            (root / "images" / image.name).mkdir(parents=True)
    return root


def snapshot(root: Path) -> set[str]:
    """Every path under ``root`` outside the documented outputs."""
    found = set()
    for path in root.rglob("*"):
        rel = path.relative_to(root).as_posix()
        if rel.split("/")[0] not in ("build", "dist"):
            found.add(rel)
    return found


def leftovers(root: Path) -> list[str]:
    """Staging files a run must never leave behind."""
    bad = []
    for base in (root / "build" / "templates", root / "dist"):
        if base.is_dir():
            bad += [p.name for p in base.iterdir() if re.search(r"\.(tmp|old)$|^\.staging-|^\.old-", p.name)]
    return bad


class _Watchdog:
    """Interrupts the main thread when one input runs longer than ``limit`` seconds."""

    def __init__(self, limit: float) -> None:
        self.limit = limit
        self.fired = False
        self._timer: threading.Timer | None = None

    def __enter__(self) -> Self:
        self.fired = False
        self._timer = threading.Timer(self.limit, self._fire)
        self._timer.daemon = True
        self._timer.start()
        return self

    def _fire(self) -> None:
        self.fired = True
        _thread.interrupt_main()

    def __exit__(self, *exc: object) -> None:
        if self._timer is not None:
            self._timer.cancel()


def run_main(root: Path, argv: list[str], limit: float) -> tuple[int, str, bool]:
    """``coderbundle.__main__.main`` in-process; (exit code, stderr+stdout, hung)."""
    from coderbundle.__main__ import main  # noqa: PLC0415

    buf = io.StringIO()
    with _Watchdog(limit) as dog, contextlib.redirect_stderr(buf), contextlib.redirect_stdout(buf):
        try:
            code = main(["-v", "--root", str(root), *argv])
        except KeyboardInterrupt:
            code = 130
    return code, buf.getvalue(), dog.fired


def run_cli(root: Path, argv: list[str], limit: float) -> tuple[int, str, bool]:
    """The real CLI in a subprocess (terraform on the PATH when installed)."""
    env = {**os.environ, "PYTHONPATH": str(TOOLS), "CODERBUNDLE_TERRAFORM_VALIDATE": "never"}
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "coderbundle", "--root", str(root), *argv],
            capture_output=True,
            text=True,
            timeout=limit,
            env=env,
            check=False,
            errors="replace",
        )
    except subprocess.TimeoutExpired:
        return 130, "", True
    return proc.returncode, proc.stderr + proc.stdout, False


def run_rendered(root: Path, rendered, rel: str, mutated: bytes, limit: float) -> tuple[int, str, bool]:
    """Validate one rendered template whose file ``rel`` is replaced by ``mutated``, in-process."""
    import traceback  # noqa: PLC0415
    from dataclasses import replace  # noqa: PLC0415

    from coderbundle.render import digest_tree  # noqa: PLC0415
    from coderbundle.settings import load_settings  # noqa: PLC0415
    from coderbundle.validate import print_report, validate_templates  # noqa: PLC0415

    target = root / "build" / "fuzz-rendered" / rendered.name
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(rendered.path, target)
    (target / rel).write_bytes(mutated)
    r = replace(rendered, path=target, digest=digest_tree(target, rendered.files))
    buf = io.StringIO()
    with _Watchdog(limit) as dog, contextlib.redirect_stderr(buf), contextlib.redirect_stdout(buf):
        try:
            settings = load_settings(root, os.environ)
            report = validate_templates([r], settings, use_cache=False)
            print_report(report)
            code = 0 if report.ok else 1
        except KeyboardInterrupt:
            code = 130
        except Exception:  # noqa: BLE001 - what the CLI would report as a bug (exit 3)
            traceback.print_exc()
            code = 3
    return code, buf.getvalue(), dog.fired


def _judge(outcome: Outcome, *, text: str, hung: bool, before: set[str], root: Path) -> None:
    if hung:
        outcome.problem = "hang"
    elif outcome.code not in OK_CODES:
        outcome.problem = f"exit {outcome.code}"
    elif "Traceback (most recent call last)" in text:
        outcome.problem = "traceback"
    else:
        extra = sorted(snapshot(root) - before)
        stale = leftovers(root)
        if extra:
            outcome.problem = f"left files outside build/ and dist/: {extra[:3]}"
        elif stale:
            outcome.problem = f"left staging files: {stale[:3]}"
    if outcome.problem:
        outcome.output = text[-3000:]


@dataclass
class _Bench:
    """The bundles one fuzz run works in: a pristine copy, a work copy, the pristine renders."""

    pristine: Path
    work: Path
    rendered: dict
    sources: list[str]
    path_with_tf: str
    path_without_tf: str
    limit: float


def _one_rendered(bench: _Bench, rng: random.Random, index: int) -> tuple[Outcome, bytes]:
    r = bench.rendered[rng.choice(TEMPLATES)]
    rel = rng.choice([f for f in r.files if f.endswith(".tf")] + ["README.md"])
    mutated = mutate_text(rng, (r.path / rel).read_bytes(), jinja=False, toml=False)
    before = snapshot(bench.work)
    start = time.monotonic()
    os.environ["PATH"] = bench.path_without_tf
    try:
        code, text, hung = run_rendered(bench.work, r, rel, mutated, bench.limit)
    finally:
        os.environ["PATH"] = bench.path_with_tf
    target = f"build/templates/{r.name}/{rel}"
    outcome = Outcome(index, "rendered", target, code, time.monotonic() - start)
    _judge(outcome, text=text, hung=hung, before=before, root=bench.work)
    return outcome, mutated


def _one_source(bench: _Bench, rng: random.Random, index: int, *, use_cli: bool) -> tuple[Outcome, bytes]:
    rel = rng.choice(bench.sources)
    parts = rel.split("/")
    template = parts[1] if parts[0] == "templates" and parts[1] != "_shared" else rng.choice(TEMPLATES)
    data = (bench.pristine / rel).read_bytes()
    mutated = mutate_text(rng, data, jinja=rel.endswith(".j2"), toml=rel.endswith(".toml"))
    (bench.work / rel).write_bytes(mutated)
    argv = ["validate", "--no-cache", template] if rng.random() < 0.9 else ["publish", template]
    before = snapshot(bench.work)
    start = time.monotonic()
    if use_cli:
        code, text, hung = run_cli(bench.work, argv, bench.limit)
    else:
        os.environ["PATH"] = bench.path_without_tf
        try:
            code, text, hung = run_main(bench.work, argv, bench.limit)
        finally:
            os.environ["PATH"] = bench.path_with_tf
    outcome = Outcome(index, "cli" if use_cli else "in-process", rel, code, time.monotonic() - start)
    _judge(outcome, text=text, hung=hung, before=before, root=bench.work)
    if outcome.problem:
        outcome.output = f"argv={argv}\n{outcome.output}"
    (bench.work / rel).write_bytes(data)
    for junk in snapshot(bench.work) - snapshot(bench.pristine):
        path = bench.work / junk
        if path.is_file() or path.is_symlink():
            path.unlink()
    return outcome, mutated


def fuzz(count: int, seed: int, *, limit: float = 60.0, cli_every: int = 25, log=None) -> Summary:
    """Run ``count`` mutated inputs from ``seed``; return the summary (nothing raised).

    40% mutate a rendered file and validate it directly; the rest mutate a
    source and run ``validate`` (or ``publish``) through ``main()``; every
    ``cli_every``-th of those runs the real CLI in a subprocess instead.
    Most inputs run with terraform off the PATH (``fmt`` is a subprocess per
    input); the CLI sample keeps it.
    """
    saved = os.environ.get("CODERBUNDLE_TERRAFORM_VALIDATE")
    os.environ["CODERBUNDLE_TERRAFORM_VALIDATE"] = "never"
    try:
        return _fuzz(count, seed, limit=limit, cli_every=cli_every, log=log)
    finally:
        if saved is None:
            os.environ.pop("CODERBUNDLE_TERRAFORM_VALIDATE", None)
        else:
            os.environ["CODERBUNDLE_TERRAFORM_VALIDATE"] = saved


def _fuzz(count: int, seed: int, *, limit: float, cli_every: int, log) -> Summary:
    rng = random.Random(seed)  # noqa: S311 - reproducible inputs, not secrets
    summary = Summary(seed)
    with tempfile.TemporaryDirectory(prefix="cb-fuzz-") as tmp:
        pristine = make_base(Path(tmp) / "pristine")
        work = Path(tmp) / "work"
        shutil.copytree(pristine, work)
        path = os.environ.get("PATH", "")
        no_tf = os.pathsep.join(p for p in path.split(os.pathsep) if not (Path(p) / "terraform").exists())
        files = (pristine / "templates").rglob("*")
        sources = sorted(p.relative_to(pristine).as_posix() for p in files if p.is_file())
        bench = _Bench(
            pristine, work, _render_pristine(pristine), [*sources, *["bundle.toml"] * 3], path, no_tf, limit
        )
        for index in range(count):
            if rng.random() < 0.4:
                outcome, mutated = _one_rendered(bench, rng, index)
            else:
                use_cli = bool(cli_every) and index % cli_every == 0
                outcome, mutated = _one_source(bench, rng, index, use_cli=use_cli)
            if outcome.problem:
                shown = f"--- input {outcome.target} ---\n{mutated[:4000]!r}\n--- output ---\n"
                outcome.output = shown + outcome.output
                if log:
                    log(f"[{index}] {outcome.target}: {outcome.problem}")
            summary.outcomes.append(outcome)
    return summary


def _render_pristine(pristine: Path) -> dict:
    from coderbundle.pipeline import render_all  # noqa: PLC0415
    from coderbundle.settings import load_settings  # noqa: PLC0415

    return {r.name: r for r in render_all(load_settings(pristine, os.environ))}


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    """``python tests/fuzz_harness.py --count N --seed S``: print figures, exit 1 on any failure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--limit", type=float, default=60.0, help="seconds per input before it is a hang")
    parser.add_argument("--cli-every", type=int, default=25, help="every Nth input through the real CLI")
    parser.add_argument("--report", type=Path, help="write every failure's input and output here")
    args = parser.parse_args(argv)
    start = time.monotonic()
    summary = fuzz(args.count, args.seed, limit=args.limit, cli_every=args.cli_every, log=_say)
    took = time.monotonic() - start
    times = sorted(o.seconds for o in summary.outcomes)
    codes: dict[int, int] = {}
    for o in summary.outcomes:
        codes[o.code] = codes.get(o.code, 0) + 1
    shown = dict(sorted(codes.items()))
    _say(f"seed {args.seed}: {len(summary.outcomes)} inputs in {took:.0f}s; exit codes {shown}")
    if times:
        _say(f"per input: median {times[len(times) // 2]:.2f}s, max {times[-1]:.2f}s")
    failures = summary.failures
    kinds: dict[str, int] = {}
    for o in failures:
        kinds[o.problem.split(":")[0]] = kinds.get(o.problem.split(":")[0], 0) + 1
    _say(f"failures: {len(failures)} {kinds}")
    if args.report:
        args.report.write_text("\n\n".join(f"## [{o.index}] {o.problem}\n{o.output}" for o in failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
