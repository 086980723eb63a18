"""Run the mistake catalogue through this validator, ``terraform fmt -check`` and checkov.

    .venv/bin/python scripts/mistake_catalogue.py [--checkov /tmp/checkov-venv/bin/checkov]

Each case in tests/fixtures/mistakes/<case>/ has ``main.tf`` (the mistake),
``fixed/main.tf`` (the same file, corrected) and ``expected`` (rule IDs).
A tool *catches* a mistake when it complains about ``main.tf`` in a way it
does not about ``fixed/main.tf``: this validator fires the expected rules;
``terraform fmt -check`` fails; checkov fails a check (or cannot parse) that
it passes on the fixed file -- so checkov's findings on both (missing probes,
image digests, ...) do not count as catching the mistake.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

from coderbundle import hcl, schema

ROOT = Path(__file__).resolve().parent.parent
CATALOGUE = ROOT / "tests" / "fixtures" / "mistakes"
VERSIONS = tomllib.loads((ROOT / "templates" / "_shared" / "versions.toml").read_text("utf-8"))


def _cases() -> list[Path]:
    return sorted(p for p in CATALOGUE.iterdir() if (p / "main.tf").is_file())


def _fixed(case: Path) -> Path:
    """The corrected file; a good case is its own fixed version."""
    fixed = case / "fixed" / "main.tf"
    return fixed if fixed.is_file() else case / "main.tf"


def _expected(case: Path) -> list[str]:
    lines = (case / "expected").read_text("utf-8").splitlines()
    return sorted(x.strip() for x in lines if x.strip() and not x.startswith("#"))


def _description(case: Path) -> str:
    first = (case / "expected").read_text("utf-8").splitlines()[0]
    return first.lstrip("# ").strip()


def _ours(path: Path) -> list[str]:
    problems = schema.check_schemas({str(path): hcl.parse_file(path)}, VERSIONS)
    return sorted(p.rule for p in problems)


def _fmt_fails(terraform: str, path: Path) -> bool:
    proc = subprocess.run([terraform, "fmt", "-check", str(path)], capture_output=True, check=False)
    return proc.returncode != 0


def _checkov(checkov: str, tree: Path) -> tuple[dict[str, set[str]], set[str]]:
    """Per file (relative to ``tree``): failed ``check_id resource`` and parse errors."""
    argv = [checkov, "-d", str(tree), "--framework", "terraform", "-o", "json", "--quiet"]
    proc = subprocess.run([*argv, "--skip-download"], capture_output=True, text=True, check=False)
    reports = json.loads(proc.stdout or "[]")
    failed: dict[str, set[str]] = {}
    errors: set[str] = set()
    for report in reports if isinstance(reports, list) else [reports]:
        results = report.get("results", {})
        for check in results.get("failed_checks", []):
            key = check["file_path"].lstrip("/")
            failed.setdefault(key, set()).add(f"{check['check_id']} {check['resource']}")
        errors.update(str(e).removeprefix(str(tree)).lstrip("/") for e in results.get("parsing_errors", []))
    return failed, errors


def _stage(cases: list[Path], tree: Path) -> None:
    for case in cases:
        for kind, src in (("mistake", case / "main.tf"), ("fixed", _fixed(case))):
            dest = tree / case.name / kind
            dest.mkdir(parents=True)
            shutil.copy(src, dest / "main.tf")


def _row(
    case: Path, terraform: str | None, checkov: tuple[dict[str, set[str]], set[str]] | None
) -> list[str]:
    expected = _expected(case)
    ours = _ours(case / "main.tf")
    caught = "yes" if ours == expected and not _ours(_fixed(case)) else f"no {ours}"
    fmt = "n/a"
    if terraform:
        fails = _fmt_fails(terraform, case / "main.tf") and not _fmt_fails(terraform, _fixed(case))
        fmt = "yes" if fails else "no"
    ckv = "n/a"
    if checkov is not None:
        failed, errors = checkov
        mistake, fixed = f"{case.name}/mistake/main.tf", f"{case.name}/fixed/main.tf"
        new = failed.get(mistake, set()) - failed.get(fixed, set())
        parse = mistake in errors and fixed not in errors
        ckv = "yes " + ",".join(sorted(new)) if new or parse else "no"
    return [case.name, " ".join(expected), caught, fmt, ckv]


def main(argv: list[str] | None = None) -> int:
    """Print one row per case and the catch counts."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkov", default=shutil.which("checkov") or "/tmp/checkov-venv/bin/checkov")  # noqa: S108
    parser.add_argument("--terraform", default=shutil.which("terraform"))
    args = parser.parse_args(argv)
    cases = _cases()
    checkov = None
    if args.checkov and Path(args.checkov).exists():
        with tempfile.TemporaryDirectory() as tmp:
            _stage(cases, Path(tmp))
            checkov = _checkov(args.checkov, Path(tmp))
    rows = [_row(case, args.terraform, checkov) for case in cases]
    header = ["case", "expected", "coderbundle", "terraform fmt", "checkov"]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[4])
    mistakes = [r for r in rows if r[1]]
    counts = [sum(r[i].startswith("yes") for r in mistakes) for i in (2, 3, 4)]
    totals = f"coderbundle {counts[0]}, terraform fmt {counts[1]}, checkov {counts[2]}"
    print(f"\n{len(mistakes)} mistakes caught: {totals}")
    silent = all(r[2] == "yes" for r in rows if not r[1])
    print("good cases silent:", "yes" if silent else "NO")
    return 0 if counts[0] == len(mistakes) and silent else 1


if __name__ == "__main__":
    sys.exit(main())
