"""Shell completion for the CLI: `coderbundle completion` prints a bash script, run here in real bash."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest


def complete(*words: str) -> list[str]:
    """What bash offers after ``coderbundle <words>`` (the last word is the one being completed)."""
    script = subprocess.run(
        [sys.executable, "-m", "coderbundle", "completion"], capture_output=True, text=True, check=True
    ).stdout
    line = " ".join(["coderbundle", *words])
    probe = (
        f"{script}\nCOMP_WORDS=(coderbundle {' '.join(repr(w) for w in words)}); "
        f"COMP_CWORD={len(words)}; COMP_LINE={line!r}; _coderbundle; printf '%s\\n' \"${{COMPREPLY[@]}}\""
    )
    out = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, check=True).stdout
    return sorted(out.split())


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_subcommands_then_their_options():
    assert {"doctor", "publish", "validate", "changes", "deploy"} <= set(complete(""))
    assert complete("pub") == ["publish"]
    assert complete("publish", "--dr") == ["--dry-run"]
    assert complete("--root", ".", "deploy", "--out") == ["--output-dir"]
    assert complete("images", "b") == ["build"]
