"""Text outside {% block %} in a template that extends another is refused, not dropped (issue 21, item 7)."""

from __future__ import annotations

import os
import subprocess
import sys


def render(root):
    return subprocess.run(
        [sys.executable, "-m", "coderbundle", "--root", str(root), "render", "python"],
        capture_output=True,
        text=True,
        check=False,
    )


def test_text_after_the_last_block_names_file_and_line(bundle):
    root = bundle(real=("python",))
    main = root / "templates" / "python" / "main.tf.j2"
    text = main.read_text()
    main.write_text(text + '\nresource "null_resource" "forgotten" {}\n')
    line = len(text.splitlines()) + 2
    proc = render(root)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert f"{main}:{line}: text outside {{% block %}} is dropped" in proc.stderr
    assert "null_resource" in proc.stderr
    assert not (root / "build" / "templates" / "python").exists()


def test_an_expression_outside_blocks_is_refused_too(bundle):
    root = bundle(real=("python",))
    main = root / "templates" / "python" / "main.tf.j2"
    lines = main.read_text().splitlines(keepends=True)
    lines.insert(1, "{{ versions }}\n")
    main.write_text("".join(lines))
    proc = render(root)
    assert f"{main}:2: text outside {{% block %}}" in proc.stderr


def test_sets_macros_and_comments_outside_blocks_are_fine(bundle):
    root = bundle(real=("python",))
    main = root / "templates" / "python" / "main.tf.j2"
    main.write_text(main.read_text() + "\n{# a note #}\n{% set unused = 1 %}\n\n")
    proc = render(root)
    assert proc.returncode == 0, proc.stderr


def test_rule_findings_name_the_j2_source_line(bundle):
    root = bundle(real=("python",))
    main = root / "templates" / "python" / "main.tf.j2"
    text = main.read_text()
    jupyter = text.index('name         = "jupyter"')
    at = text.index('default      = "false"', jupyter)
    line = text[:at].count("\n") + 1
    main.write_text(text[:at] + 'default      = "maybe"' + text[at + len('default      = "false"') :])
    proc = subprocess.run(
        [sys.executable, "-m", "coderbundle", "--root", str(root), "validate", "python"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "CODERBUNDLE_TERRAFORM_VALIDATE": "never"},
    )
    assert proc.returncode == 1, proc.stderr
    findings = [ln for ln in proc.stderr.splitlines() if "CB114" in ln]
    assert findings, proc.stderr
    assert findings[0].endswith(f"(from templates/python/main.tf.j2:{line})"), findings[0]
