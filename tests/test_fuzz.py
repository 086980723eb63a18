"""Fuzzing: a few hundred mutated inputs on every test run, and every crash found kept as a fixture.

``nox -s fuzz -- --count 10000`` runs the same harness (``tests/fuzz_harness.py``) at scale.
"""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path

import pytest

from coderbundle.__main__ import main
from conftest import make_bundle
from fuzz_harness import fuzz, leftovers

FUZZ_FIXTURES = Path(__file__).resolve().parent / "fixtures" / "fuzz"
REGRESSIONS = sorted(p.name for p in FUZZ_FIXTURES.iterdir() if p.is_dir())
SEED = 20261130
COUNT = 400


def test_fuzz_a_few_hundred_inputs():
    summary = fuzz(COUNT, SEED, limit=30.0, cli_every=50)
    assert len(summary.outcomes) == COUNT
    report = "\n\n".join(f"[{o.index}] {o.target}: {o.problem}\n{o.output}" for o in summary.failures)
    assert not summary.failures, report
    assert max(o.seconds for o in summary.outcomes) < 30
    # The inputs reach every outcome: clean, findings and settings errors.
    assert {0, 1, 2} <= {o.code for o in summary.outcomes}


@pytest.mark.parametrize("case", REGRESSIONS)
def test_fuzz_regression(case, tmp_path, monkeypatch, capsys):
    """A minimised reproducer of a crash the fuzzer found: now a clear exit code, no traceback."""
    monkeypatch.setenv("CODERBUNDLE_TERRAFORM_VALIDATE", "never")
    spec = tomllib.loads((FUZZ_FIXTURES / case / "case.toml").read_text())
    root = make_bundle(tmp_path / "bundle", "good")
    for path in (FUZZ_FIXTURES / case).iterdir():
        if path.name != "case.toml":
            shutil.copy(path, root / "templates" / "good" / path.name)
    code = main(["-v", "--root", str(root), "validate", "--no-cache"])
    err = capsys.readouterr().err
    assert code == spec["code"], err
    assert "Traceback" not in err
    assert leftovers(root) == []
