"""Every rule fires on its fixture and stays quiet on the good ones; terraform runs for real."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from coderbundle import rules, terraform
from coderbundle.pipeline import render_all
from coderbundle.settings import load_settings
from coderbundle.validate import validate_templates
from conftest import case_settings

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "templates"
CASES = sorted(p.name for p in FIXTURES.iterdir() if p.is_dir())
DOCS = Path(__file__).resolve().parent.parent / "docs" / "rules.md"
OFFLINE = {"CODERBUNDLE_TERRAFORM_VALIDATE": "auto"}


def expected(case: str) -> set[str]:
    return set(case_settings(case).get("expect", []))


def run(root: Path, *names: str, use_cache: bool = False):
    settings = load_settings(root, OFFLINE)
    return validate_templates(render_all(settings, names), settings, use_cache=use_cache)


@pytest.mark.terraform
@pytest.mark.parametrize("case", CASES)
def test_fixture_fires_exactly_its_rules(bundle, case):
    report = run(bundle(case))
    found = {p.rule for r in report.results for p in r.problems}
    assert found == expected(case), [str(p) for r in report.results for p in r.problems]
    for problem in (p for r in report.results for p in r.problems):
        assert problem.file.endswith(".tf") or problem.file.endswith("README.md")
        assert problem.line >= 0


def test_every_rule_has_a_firing_fixture_and_documentation():
    fired = set().union(*(expected(c) for c in CASES))
    docs = DOCS.read_text()
    for rule_id in [*rules.RULES, "CB001", "CB002", "CB003"]:
        assert rule_id in fired or rule_id == "CB118", f"{rule_id} has no fixture"
        assert re.search(rf"^## {rule_id}\b", docs, re.MULTILINE), f"{rule_id} not in docs/rules.md"


def test_upload_limit_fires_on_a_large_template(bundle):
    root = bundle("good")
    (root / "templates" / "good" / "big.sh").write_bytes(b"#" * (1 << 20))
    report = run(root)
    assert {p.rule for p in report.results[0].problems} == {"CB118"}


@pytest.mark.terraform
def test_terraform_validate_runs_for_real_offline(bundle):
    report = run(bundle("tf-offline-good", "tf-offline-bad"))
    by_name = {r.name: r for r in report.results}
    assert by_name["tf-offline-good"].terraform_validate == "passed"
    assert by_name["tf-offline-bad"].terraform_validate == "failed"
    (cb003,) = [p for p in by_name["tf-offline-bad"].problems if p.rule == "CB003"]
    assert cb003.line == 15
    assert "upper" in cb003.message


@pytest.mark.terraform
def test_terraform_validate_says_why_it_skipped(bundle):
    report = run(bundle("good"))
    status = report.results[0].terraform_validate
    if terraform._registry_unreachable():
        assert status.startswith("skipped: providers and modules cannot be fetched")
    else:  # a machine that reaches the registries runs it (users' CI)
        assert status in {"passed", "failed"} or status.startswith("skipped: terraform init")


def test_terraform_validate_can_be_disabled(bundle):
    root = bundle("tf-offline-good")
    settings = load_settings(root, {"CODERBUNDLE_TERRAFORM_VALIDATE": "never"})
    report = validate_templates(render_all(settings), settings, use_cache=False)
    expected_status = "skipped: disabled by CODERBUNDLE_TERRAFORM_VALIDATE=never"
    assert report.results[0].terraform_validate == expected_status


@pytest.mark.terraform
def test_unchanged_rerun_comes_from_the_cache(bundle):
    root = bundle("good", "bad-app-slug")
    first = run(root, use_cache=True)
    second = run(root, use_cache=True)
    assert not any(r.cached for r in first.results)
    assert all(r.cached for r in second.results)
    assert first.to_json()["templates"][0]["problems"] == second.to_json()["templates"][0]["problems"]
    # A change to one template re-checks only that one.
    main = root / "templates" / "good" / "main.tf"
    main.write_text(main.read_text().replace('slug     = "hello-app"', 'slug     = "hello-web"'))
    third = run(root, use_cache=True)
    assert [r.cached for r in third.results] == [True, False]


def test_findings_flow_one_way_validate_imports_rules_never_back():
    """rules/ and the schema checks take Problem from findings.py; nothing they load imports validate."""
    import ast  # noqa: PLC0415

    from coderbundle import findings, validate  # noqa: PLC0415

    package = Path(validate.__file__).parent
    checked = [*sorted((package / "rules").glob("*.py")), *sorted(package.glob("schema*.py"))]
    checked.append(package / "findings.py")
    for path in checked:
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom):
                names = [node.module or "", *(f"{node.module}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            assert not any(n == "coderbundle.validate" for n in names), f"{path.name} imports validate"
    assert validate.Problem is findings.Problem  # the old import path still names the same type


REPO = Path(__file__).resolve().parent.parent


def test_real_templates_keep_path_and_ship_their_modules_commands(bundle):
    """Issue 12 defects 1 and 2: PATH replaced (nodejs, python, go) and goose without bzip2 (all five)."""
    root = bundle(real=("docker", "go", "kubernetes", "nodejs", "python"))
    settings = load_settings(root, {"CODERBUNDLE_TERRAFORM_VALIDATE": "never"})
    report = validate_templates(render_all(settings, ()), settings, use_cache=False)
    found = [str(p) for r in report.results for p in r.problems if p.rule in {"CB124", "CB125", "CS110"}]
    assert found == []
    assert len(report.results) == 5


def test_module_command_table_describes_every_pinned_module_version():
    import tomllib  # noqa: PLC0415

    from coderbundle.rules.image import _data  # noqa: PLC0415

    table = _data("module_commands.json")["modules"]
    pins = tomllib.loads((REPO / "templates" / "_shared" / "versions.toml").read_text())["modules"]
    for name, pin in pins.items():
        assert pin["source"] in table, f"{name}: add it to data/module_commands.json"
        assert table[pin["source"]]["version"] == pin["version"], f"{name}: table describes another version"
    assert "bzip2" in table["registry.coder.com/coder/goose/coder"]["needs"]


def test_image_command_table_knows_every_apt_package_of_the_images():
    from coderbundle.rules.image import _APT, _data, instructions  # noqa: PLC0415

    apt = _data("image_commands.json")["apt"]
    for dockerfile in sorted((REPO / "images").glob("*/Dockerfile")):
        for _, keyword, rest in instructions(dockerfile.read_text()):
            for group in _APT.findall(rest) if keyword == "RUN" else []:
                for package in (t for t in group.split() if not t.startswith("-")):
                    assert package in apt, f"{dockerfile}: add {package} to data/image_commands.json"


def test_image_facts_come_from_the_real_dockerfiles():
    from coderbundle.rules.image import image_facts  # noqa: PLC0415

    images = str(REPO / "images")
    base, node, go = (image_facts(images, n) for n in ("base", "nodejs", "go"))
    assert base
    assert node
    assert go
    assert {"bzip2", "curl", "git", "jq", "sudo", "pipx"} <= base.commands
    # Every image ships Node.js (GitHub Copilot's CLI in every template needs it).
    assert {"node", "npm"} <= base.commands
    assert {"node", "npm"} <= node.commands
    assert {"go", "gofmt", "gopls", "golangci-lint"} <= go.commands
    assert {"kubectl", "helm"} <= image_facts(images, "kubernetes").commands  # type: ignore[union-attr]
    assert {"uv", "poetry"} <= image_facts(images, "python").commands  # type: ignore[union-attr]
    path, origin = go.env["PATH"]
    assert path.startswith("/usr/local/go/bin:")
    assert path.endswith(":/bin")
    assert origin.startswith("images/go/Dockerfile:")
    assert base.env["LANG"][0] == "en_US.UTF-8"
    assert image_facts(images, "no-such-image") is None


@pytest.mark.parametrize(
    ("value", "keeps"),
    [
        ("/x/bin:$PATH", True),
        ("/x/bin:$${PATH}", True),
        ("$PATH:/x/bin", True),
        ("/x/bin", False),
        ("/x/bin:$PATHX", False),
        ("/x/bin:$OTHER", False),
    ],
)
def test_a_value_keeps_the_variable_only_when_it_refers_to_it(value, keeps):
    from coderbundle.rules.image import _refers_to_itself  # noqa: PLC0415

    assert _refers_to_itself(value, "PATH") is keeps
