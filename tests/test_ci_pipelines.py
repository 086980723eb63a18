"""Lint both CI pipelines: they parse, call only what exists, wire what publish reads.

The slow test runs the pipelines' `--format json` command lines through the real
nox and checks that the artifact they write parses as JSON.
"""

from __future__ import annotations

import ast
import functools
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
GITHUB = REPO / ".github" / "workflows" / "templates.yml"
GITLAB = REPO / ".gitlab-ci.yml"
NOX_CALL = re.compile(r"\bnox -s ((?:[a-z][\w-]* ?)+)")
REPO_PATH = re.compile(r"(?<![\w/.$])((?:scripts|\.ci)/[\w./-]+)")


def nox_sessions() -> set[str]:
    """Session names in noxfile.py (the function name, or `name=` when given)."""
    names = set()
    for node in ast.parse((REPO / "noxfile.py").read_text()).body:
        if not isinstance(node, ast.FunctionDef):
            continue
        for deco in node.decorator_list:
            target = deco.func if isinstance(deco, ast.Call) else deco
            if ast.unparse(target) != "nox.session":
                continue
            kwargs = {k.arg: k.value for k in deco.keywords} if isinstance(deco, ast.Call) else {}
            names.add(ast.literal_eval(kwargs["name"]) if "name" in kwargs else node.name)
    return names


def github() -> dict:
    return yaml.safe_load(GITHUB.read_text())


def gitlab() -> dict:
    return yaml.safe_load(GITLAB.read_text())


def github_scripts() -> list[str]:
    return [step["run"] for job in github()["jobs"].values() for step in job["steps"] if "run" in step]


def gitlab_scripts() -> list[str]:
    doc = gitlab()
    lines = []
    for job in doc.values():
        if isinstance(job, dict):
            for key in ("before_script", "script", "after_script"):
                lines += job.get(key, [])
    return lines


def publish_time_env() -> set[str]:
    """Every environment variable publishing reads: template variables and bundle settings."""
    names = set()
    for toml in REPO.glob("templates/*/template.toml"):
        names |= {spec["env"] for spec in tomllib.loads(toml.read_text()).get("variables", {}).values()}
    settings = (REPO / "tools" / "coderbundle" / "settings.py").read_text()
    names |= set(re.findall(r'"(CODER(?:BUNDLE)?_[A-Z_]+)"', settings))
    return names


@pytest.mark.parametrize("path", [GITHUB, GITLAB], ids=["github", "gitlab"])
def test_pipeline_parses(path):
    assert isinstance(yaml.safe_load(path.read_text()), dict)


@pytest.mark.parametrize("scripts", [github_scripts, gitlab_scripts], ids=["github", "gitlab"])
def test_pipeline_calls_only_existing_nox_sessions_and_files(scripts):
    sessions = nox_sessions()
    called, paths = set(), set()
    for script in scripts():
        for match in NOX_CALL.finditer(script):
            called |= set(match.group(1).split())
        paths |= set(REPO_PATH.findall(script))
    assert called, "the pipeline calls no nox session"
    assert called <= sessions, f"unknown nox sessions: {sorted(called - sessions)}"
    assert all((REPO / p).exists() for p in paths), sorted(p for p in paths if not (REPO / p).exists())


def test_nox_sessions_are_found():
    assert {"lint", "tests", "validate", "publish", "images", "vault-setup", "cli"} <= nox_sessions()


def test_github_publish_job_wires_every_variable_publish_reads():
    job = github()["jobs"]["publish"]
    wired = set(job.get("env", {}))
    for step in job["steps"]:
        wired |= set(step.get("env", {}))
        for line in step.get("run", "").splitlines():
            if "GITHUB_ENV" in line:
                wired |= set(re.findall(r"\b(CODER\w+)=", line))
    missing = publish_time_env() - wired
    assert not missing, f"not wired in the publish job: {sorted(missing)}"


def test_github_export_loop_covers_the_names_it_is_given():
    # The settings step exports the variables set in its own env: each must be in the loop.
    steps = github()["jobs"]["publish"]["steps"]
    (step,) = [s for s in steps if s.get("name", "").startswith("Bundle settings")]
    loop = re.search(r"for name in (.*?); do", step["run"], re.DOTALL)
    assert loop
    names = set(loop.group(1).replace("\\", " ").split())
    assert names == set(step["env"]) - {"EXTRA_CA_PEM"}


def test_github_token_and_keys_reach_only_the_steps_that_talk_to_coder():
    doc = github()
    assert "secrets." not in json.dumps(doc.get("env", {}))
    holders = []
    for job_name, job in doc["jobs"].items():
        assert "secrets." not in json.dumps(job.get("env", {})), f"{job_name}: secrets in the job env"
        holders += [step for step in job["steps"] if "CODER_SESSION_TOKEN" in step.get("env", {})]
    runs = sorted(
        step["run"].split(" -- ")[0] + " -- " + step["run"].split(" -- ")[1].split()[0] for step in holders
    )
    assert runs == ["nox -s cli -- outdated", "nox -s cli -- rollback", "nox -s publish -- --no-images"]
    for step in holders:
        assert step["env"]["CODER_SESSION_TOKEN"] == "${{ secrets.CODER_SESSION_TOKEN }}"  # noqa: S105
    keys = [step for step in holders if "ANTHROPIC_API_KEY" in step["env"]]
    assert [step["run"].split()[2] for step in keys] == ["publish"]  # API keys: the publish step only


def test_github_follows_the_default_branch_not_main():
    doc = github()
    triggers = doc.get("on", doc.get(True))  # YAML 1.1 reads the key `on` as true
    assert "branches" not in triggers["push"]
    for name in ("validate", "publish"):
        assert "github.event.repository.default_branch" in doc["jobs"][name]["if"]
    assert not re.search(r"\bmain\b", GITHUB.read_text().replace("maintain", ""))


def test_github_json_artifact_is_stdout_alone():
    runs = [s for s in github_scripts() if "--format json" in s]
    assert runs
    assert all("2>&1" not in run and "|&" not in run for run in runs)


def test_gitlab_follows_the_default_branch_and_names_the_image_runner():
    text = GITLAB.read_text()
    assert "$CI_DEFAULT_BRANCH" in text
    assert not re.search(r"\bmain\b", text)
    comment = text[: text.index("\nimages:\n")].rsplit("\n\n", 1)[-1]
    assert "privileged" in comment
    assert "docker" in comment.lower()
    assert all("2>&1" not in line for line in gitlab_scripts() if "--format json" in line)


# --- the artifact, produced through the real nox -------------------------------------------


def _json_command_lines() -> list[str]:
    """The pipelines' `--format json` command lines, plus the one the README documents.

    Not the fleet report (`outdated`): it needs a Coder deployment; tests/test_rollout_real.py
    runs it against the real server.
    """
    lines = {
        line.strip()
        for script in [*github_scripts(), *gitlab_scripts()]
        for line in script.splitlines()
        if "--format json" in line and line.strip().startswith("nox ") and " outdated " not in line
    }
    return sorted(lines | {"nox -s validate -- --format json > validate-report.json"})


def copy_repo(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    """The repository's files in a temporary directory, sharing one `.nox` per test run.

    nox's virtualenvs are the slow part; every copy links `.nox` to the same folder,
    so each session's environment is created once per test run.
    """
    ignore = shutil.ignore_patterns(".git", "build", "dist", ".nox", "__pycache__", "*.egg-info", ".*_cache")
    dest = shutil.copytree(REPO, tmp_path_factory.mktemp(name) / "repo", ignore=ignore)
    shared = tmp_path_factory.getbasetemp() / "nox-envs"
    shared.mkdir(exist_ok=True)
    (dest / ".nox").symlink_to(shared, target_is_directory=True)
    return dest


@pytest.fixture(scope="module")
def repo_copy(tmp_path_factory):
    return copy_repo(tmp_path_factory, "ci")


@pytest.mark.slow
@pytest.mark.parametrize("line", _json_command_lines())
def test_json_artifact_parses_when_made_through_nox(line, repo_copy):
    pytest.importorskip("nox", reason="nox is not installed here (it is in the test dependency group)")
    argv = shlex.split(line)
    assert argv[0] == "nox"
    assert argv[-2] == ">", f"{line}: the pipeline should redirect stdout to the artifact"
    artifact = repo_copy / argv[-1]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CODER_", "NOX_"))}
    with artifact.open("w") as out:
        proc = subprocess.run(
            [sys.executable, "-m", "nox", *argv[1:-2]],
            cwd=repo_copy,
            env=env,
            stdout=out,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
            timeout=600,
        )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(artifact.read_text())
    assert report["ok"] is True
    assert {t["name"] for t in report["templates"]} == {"docker", "go", "kubernetes", "nodejs", "python"}
    assert "nox > " in proc.stderr  # nox's own log went to stderr, beside the file


# --- `nox -s tests` behind a TLS-intercepting proxy, as .ci/run -------------------------------


@functools.cache
def _load_noxfile():
    """Import noxfile.py once per process (nox refuses to register a session twice)."""
    import importlib.util  # noqa: PLC0415

    cwd = Path.cwd()
    os.chdir(REPO)  # the noxfile reads pyproject.toml from the working directory
    try:
        spec = importlib.util.spec_from_file_location("noxfile_under_test", REPO / "noxfile.py")
        assert spec
        assert spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        os.chdir(cwd)
    return module


@pytest.fixture
def noxfile():
    pytest.importorskip("nox", reason="nox is not installed here (it is in the test dependency group)")
    return _load_noxfile()


PEM = "-----BEGIN CERTIFICATE-----\nMIIB{n}\n-----END CERTIFICATE-----"


def test_tests_session_passes_the_local_cas_like_ci_run(noxfile, tmp_path, monkeypatch):
    monkeypatch.delenv("CODERBUNDLE_EXTRA_CA_CERT", raising=False)
    cas = tmp_path / "ca-certificates"
    cas.mkdir()
    (cas / "b-proxy.crt").write_text(PEM.format(n=2))  # no final newline: must not merge lines
    (cas / "a-corp.crt").write_text(PEM.format(n=1) + "\n")
    (cas / "ignored.pem").write_text("not a .crt")
    env = noxfile.local_ca_env(cas, tmp_path / "build")
    bundle = Path(env["CODERBUNDLE_EXTRA_CA_CERT"])
    assert bundle == (tmp_path / "build" / "extra-ca.pem").resolve()
    assert bundle.read_text() == PEM.format(n=1) + "\n" + PEM.format(n=2) + "\n"


def test_no_local_cas_or_an_explicit_setting_leaves_the_environment_alone(noxfile, tmp_path, monkeypatch):
    monkeypatch.delenv("CODERBUNDLE_EXTRA_CA_CERT", raising=False)
    assert noxfile.local_ca_env(tmp_path / "missing", tmp_path / "build") == {}
    (tmp_path / "x.crt").write_text(PEM.format(n=1))
    monkeypatch.setenv("CODERBUNDLE_EXTRA_CA_CERT", "/etc/mine.pem")
    assert noxfile.local_ca_env(tmp_path, tmp_path / "build") == {}
    assert not (tmp_path / "build").exists()


def test_uv_uses_the_machine_certificate_store(noxfile):
    # Behind a TLS-intercepting proxy uv's bundled roots fail where pip and .ci/run work.
    del noxfile
    assert os.environ["UV_SYSTEM_CERTS"] in {"1", "true"}


def test_nox_and_ci_run_read_the_same_ca_directory(noxfile):
    ci_run = (REPO / ".ci" / "run").read_text()
    assert f"{noxfile.LOCAL_CA_DIR}/*.crt" in ci_run
    tests_session = ast.unparse(
        next(
            n
            for n in ast.parse((REPO / "noxfile.py").read_text()).body
            if isinstance(n, ast.FunctionDef) and n.name == "tests"
        )
    )
    assert "env=local_ca_env()" in tests_session
