"""Validate rendered templates: parse, rule set, schemas, terraform fmt and validate.

Every problem across every template is collected before anything fails; the
report is printed once.  Results are cached by the rendered content digest,
so an unchanged re-run parses nothing and starts no subprocess.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import re
import shutil
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from coderbundle import __version__, sourcemap, terraform
from coderbundle.configured import find_tool
from coderbundle.console import err_console
from coderbundle.errors import CommandFailed
from coderbundle.findings import Problem
from coderbundle.render import load_versions

if TYPE_CHECKING:
    from collections.abc import Sequence

    from coderbundle import hcl
    from coderbundle.render import RenderedTemplate
    from coderbundle.settings import Settings

FmtFindings = list[tuple["Path", int, str]]

__all__ = ["Problem", "Report", "TemplateResult", "print_report", "validate_templates"]


@dataclass
class TemplateResult:
    """Everything found in one rendered template."""

    name: str
    path: str
    problems: list[Problem] = field(default_factory=list)
    terraform_validate: str = "not run"
    cached: bool = False
    # What terraform validate ran with (kept in the cache, so a cached report says it too).
    toolchain: str = ""
    # The checks that ran: always parse, rules, schemas; terraform fmt and validate where they could.
    checks: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        """The word for a clean template: valid only where terraform validate ran."""
        if self.problems:
            return f"{len(self.problems)} problem(s)"
        return "valid" if self.terraform_validate == "passed" else "checked without terraform"


@dataclass
class Report:
    """All templates' results; ``ok`` when no template has a problem."""

    results: list[TemplateResult]
    # What terraform validate ran with: versions, built from source or stand-in, module stubs.
    toolchain: str = ""

    @property
    def ok(self) -> bool:
        """True when nothing was found."""
        return not any(r.problems for r in self.results)

    def summary(self) -> str:
        """The last line: what was found, and what ran, with which terraform."""
        total = sum(len(r.problems) for r in self.results)
        if total:
            return f"{total} problem(s) in {len(self.results)} template(s)"
        unchecked = [r for r in self.results if r.verdict != "valid"]
        if not unchecked:
            return f"all {len(self.results)} template(s) valid (terraform validate ran)"
        reasons = sorted({r.terraform_validate for r in unchecked})
        valid = len(self.results) - len(unchecked)
        head = f"{valid} template(s) valid, " if valid else ""
        return (
            f"{head}{len(unchecked)} template(s) checked without terraform: no problems found by "
            f"{', '.join(unchecked[0].checks)}; terraform validate {'; '.join(reasons)}"
        )

    def checks_json(self) -> dict[str, Any]:
        """What ran and with which toolchain, per template (also in the publish summary and plan)."""
        return {
            "toolchain": self.toolchain,
            "summary": self.summary(),
            "templates": {
                r.name: {"verdict": r.verdict, "checks": r.checks, "terraform_validate": r.terraform_validate}
                for r in self.results
            },
        }

    def to_json(self) -> dict[str, Any]:
        """A stable, machine-readable form for CI (``--format json``)."""
        return {
            "ok": self.ok,
            "summary": self.summary(),
            "toolchain": self.toolchain,
            "templates": [
                {
                    "name": r.name,
                    "path": r.path,
                    "terraform_validate": r.terraform_validate,
                    "verdict": r.verdict,
                    "checks": r.checks,
                    "cached": r.cached,
                    "problems": [asdict(p) for p in sorted(r.problems)],
                }
                for r in self.results
            ],
        }


def _code_fingerprint() -> str:
    """A hash of the validator's own code and data: a new rule invalidates the cache."""
    h = hashlib.sha256(__version__.encode())
    package = Path(str(resources.files("coderbundle")))
    for entry in sorted(package.rglob("*")):
        if entry.suffix in {".py", ".json"} and entry.is_file():
            h.update(entry.relative_to(package).as_posix().encode())
            h.update(entry.read_bytes())
    return h.hexdigest()


def _image_inputs(settings: Settings, r: RenderedTemplate) -> bytes:
    """The Dockerfiles the image rules read for this template (its image and the base)."""
    found = b""
    for name in ("base", r.template.settings.image):
        try:
            found += (settings.images_dir / name / "Dockerfile").read_bytes()
        except OSError:
            found += b"-"
    return found


def _parse(r: RenderedTemplate, problems: list[Problem]) -> dict[str, hcl.Block]:
    from coderbundle import hcl  # noqa: PLC0415 - lark loads only on a cache miss

    files: dict[str, hcl.Block] = {}
    for rel in r.files:
        if not rel.endswith(".tf"):
            continue
        path = r.path / rel
        try:
            files[str(path)] = hcl.parse_file(path)
        except hcl.HclSyntaxError as exc:
            problems.append(Problem(str(path), exc.line, "CB001", f"syntax error: {exc}"))
    problems += [Problem(f, ln, "CB001", msg) for f, ln, msg in hcl.structure_problems(files)]
    return files


def _check_one(r: RenderedTemplate, versions: dict[str, Any]) -> list[Problem]:
    from coderbundle import rules, schema  # noqa: PLC0415 - only needed on a cache miss

    problems: list[Problem] = []
    files = _parse(r, problems)
    if problems:  # rules on a partial parse would only report noise
        return problems
    problems += rules.check_template(r, files, versions)
    problems += schema.check_schemas(files, versions)
    return problems


def _check_all(
    todo: list[RenderedTemplate], versions: dict[str, Any], terraform_binary: str | None
) -> tuple[list[list[Problem]], FmtFindings | None]:
    """Check templates, in parallel worker processes when there are several and cores to use.

    Parsing dominates a cold run: the parser is built once here, before the
    workers fork, so each worker starts with it, and ``terraform fmt`` runs
    meanwhile.  Its findings are ``None`` when it could not run over all of
    them (a file that does not parse stops it); ``_run_terraform`` then
    formats the parsable ones alone.
    """
    workers = min(len(todo), os.cpu_count() or 1)
    if workers < 2 or "fork" not in multiprocessing.get_all_start_methods():
        return [_check_one(r, versions) for r in todo], None
    from coderbundle import hcl  # noqa: PLC0415

    hcl.warm_up()
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = [pool.submit(_check_one, r, versions) for r in todo]
        try:
            fmt: FmtFindings | None = terraform.fmt_check([r.path for r in todo], terraform_binary)
        except CommandFailed:
            fmt = None
        return [f.result() for f in futures], fmt


def _cache_file(settings: Settings, r: RenderedTemplate, fingerprint: str) -> Path:
    tf = terraform.fingerprint(settings)
    h = hashlib.sha256(f"{r.digest}\0{fingerprint}\0{tf}\0".encode())
    h.update(_image_inputs(settings, r))
    key = h.hexdigest()[:32]
    return settings.build_dir / ".cache" / "validate" / f"{r.name}-{key}.json"


def _load_cached(path: Path) -> TemplateResult | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        problems = [Problem(**p) for p in data.pop("problems")]
        return TemplateResult(**data, problems=problems, cached=True)
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None  # a damaged cache entry is a miss


def _store(path: Path, result: TemplateResult) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = asdict(result)
    data.pop("cached")
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
    tmp.replace(path)


def validate_templates(
    rendered: Sequence[RenderedTemplate],
    settings: Settings,
    *,
    use_cache: bool = True,
) -> Report:
    """Check every rendered template and return the report.

    Raises ``EnvError`` only when a configured terraform cannot run (a wrong setting is no skip).
    """
    if settings.terraform.binary_from:
        find_tool(settings.terraform.binary, configured_by=settings.terraform.binary_from, install_hint="")
    fingerprint = _code_fingerprint()
    versions = load_versions(settings.templates_dir)
    results: list[TemplateResult] = []
    todo: list[tuple[RenderedTemplate, TemplateResult, Path]] = []
    for r in rendered:
        cache = _cache_file(settings, r, fingerprint)
        cached = _load_cached(cache) if use_cache else None
        if cached is not None:
            results.append(cached)
            continue
        result = TemplateResult(r.name, str(r.path))
        results.append(result)
        todo.append((r, result, cache))
    if not todo:
        return Report(results, next((r.toolchain for r in results if r.toolchain), ""))
    binary = shutil.which(settings.terraform.binary)
    checked, fmt = _check_all([r for r, _, _ in todo], versions, binary)
    for (_, result, _), problems in zip(todo, checked, strict=True):
        result.problems = problems
    toolchain = _run_terraform([(r, res) for r, res, _ in todo], settings, fmt)
    for r, result, _ in todo:
        result.toolchain = toolchain
        result.checks = _checks_run(result, ran_fmt=binary is not None)
        result.problems = [_with_source(r, p) for p in result.problems]
    for _, result, cache in todo:
        _store(cache, result)
    return Report(results, toolchain or next((r.toolchain for r in results if r.toolchain), ""))


def _with_source(r: RenderedTemplate, problem: Problem) -> Problem:
    """Every finding on a rendered file names the template source line too (CB003 already does)."""
    if problem.rule == "CB003" or " (from " in problem.message:
        return problem
    annotated = sourcemap.annotate(r, problem.file, problem.line, problem.message)
    # A plain .tf source is the rendered file itself: only a .j2 source line adds anything.
    return replace(problem, message=annotated) if _FROM_J2.search(annotated) else problem


def _checks_run(result: TemplateResult, *, ran_fmt: bool) -> list[str]:
    ran = ["parse", "rules", "schemas"]
    if ran_fmt:
        ran.append("terraform fmt")
    if result.terraform_validate in ("passed", "failed"):
        ran.append("terraform validate")
    return ran


def _run_terraform(
    batch: list[tuple[RenderedTemplate, TemplateResult]], settings: Settings, fmt: FmtFindings | None
) -> str:
    """Fmt findings, then init + validate (two at a time); returns the toolchain summary."""
    # terraform cannot format or validate what does not parse; CB001 already says why.
    batch = _parsable(batch)
    if fmt is None:
        try:
            fmt = terraform.fmt_check([r.path for r, _ in batch], shutil.which(settings.terraform.binary))
        except CommandFailed as exc:  # terraform rejects what python-hcl2 accepted: findings, per file
            fmt = []
            _fmt_failed(exc, batch)
    for path, line, message in fmt:
        for r, result in batch:
            if path.is_relative_to(r.path):
                result.problems.append(Problem(str(path), line, "CB002", message))
    # terraform fmt may have found that a template does not parse (CB001): nothing to validate.
    return _validate_all(_parsable(batch), settings)


def _parsable(
    batch: list[tuple[RenderedTemplate, TemplateResult]],
) -> list[tuple[RenderedTemplate, TemplateResult]]:
    """The templates without CB001; the others are marked skipped."""
    kept = []
    for r, result in batch:
        if any(p.rule == "CB001" for p in result.problems):
            result.terraform_validate = "skipped: the template does not parse (see CB001)"
        else:
            kept.append((r, result))
    return kept


def _validate_all(batch: list[tuple[RenderedTemplate, TemplateResult]], settings: Settings) -> str:
    """Run terraform init + validate on each template with the configured toolchain."""
    scratch = settings.build_dir / ".cache" / "terraform" / "validate"

    def validate_one(r: RenderedTemplate, tc: terraform.Toolchain) -> terraform.Outcome:
        try:
            return terraform.validate_dir(r.path, scratch, tc)
        except (CommandFailed, ValueError, OSError) as exc:
            return terraform.Outcome("failed", [(str(r.path), 0, f"terraform could not run: {exc}")])

    with terraform.toolchain(settings) as tc, ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = pool.map(lambda item: validate_one(item[0], tc), batch)
        for (r, result), outcome in zip(batch, outcomes, strict=True):
            result.terraform_validate = outcome.status
            result.problems += [
                Problem(f, ln, "CB003", sourcemap.annotate(r, f, ln, msg))
                for f, ln, msg in outcome.diagnostics
            ]
            if tc.mode == "always" and outcome.status.startswith("skipped"):
                reason = outcome.status.removeprefix("skipped: ")
                msg = f"terraform validate did not run ({reason}) and CODERBUNDLE_TERRAFORM_VALIDATE=always"
                result.problems.append(Problem(str(r.path), 0, "CB003", msg))
        return tc.summary


_FROM_J2 = re.compile(r" \(from \S+\.j2:\d+\)$")
_TF_ERROR = re.compile(r"^\s*Error: (.+)$")
_TF_WHERE = re.compile(r"^\s*on (.+?) line (\d+)")


def _fmt_failed(exc: CommandFailed, batch: list[tuple[RenderedTemplate, TemplateResult]]) -> None:
    """Turn terraform fmt's syntax errors (``Error: ...`` / ``on <dir>/<file> line N``) into CB001."""
    summary = ""
    placed = False
    for line in (exc.stderr + "\n" + exc.stdout).splitlines():
        if m := _TF_ERROR.match(line):
            summary = m.group(1).strip()
        elif (m := _TF_WHERE.match(line)) and summary:
            for r, result in batch:
                path = r.path.parent / m.group(1)
                if path.is_relative_to(r.path):
                    msg = f"terraform rejects this: {summary}"
                    result.problems.append(Problem(str(path), int(m.group(2)), "CB001", msg))
                    placed = True
            summary = ""
    if not placed:
        for r, result in batch:
            msg = f"terraform fmt failed ({exc}): {terraform.first_error(exc.stderr + exc.stdout)}"
            result.problems.append(Problem(str(r.path), 0, "CB002", msg))


def print_report(report: Report, *, fmt: str = "text") -> None:
    """Print the report: JSON on stdout, or readable text on stderr."""
    if fmt == "json":
        print(json.dumps(report.to_json(), indent=2, sort_keys=True))  # noqa: T201
        return
    for result in report.results:
        for problem in sorted(result.problems):
            err_console.print(str(problem), markup=False)
    for result in report.results:
        cached = " (cached)" if result.cached else ""
        err_console.print(
            f"{result.name}: {result.verdict}{cached}; terraform validate {result.terraform_validate}",
            markup=False,
        )
    if report.toolchain:
        err_console.print(f"terraform: {report.toolchain}", markup=False)
    style = "bold red" if not report.ok else "green" if report.summary().startswith("all ") else "yellow"
    err_console.print(report.summary(), style=style, markup=False)
