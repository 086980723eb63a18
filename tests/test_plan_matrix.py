"""The plan matrix: every choice a developer makes in the workspace form is planned."""

from __future__ import annotations

import itertools
import json
import re
import runpy
import tomllib
from pathlib import Path

import pytest

from coderbundle import plan_matrix, plantest
from coderbundle.plan_matrix import Factor, choice_rows, factors, pairwise

AGENTS = ("none", "claude-code", "goose", "aider", "copilot")


def _parameter(name: str, kind: str = "string", options=(), validation=()) -> dict:
    return {
        "mode": "data",
        "type": "coder_parameter",
        "address": f"data.coder_parameter.{name}",
        "values": {
            "name": name,
            "type": kind,
            "option": [{"value": o} for o in options] or None,
            "validation": list(validation),
        },
    }


def _plan() -> dict:
    """The parameters of the nodejs template as `terraform show -json` reports them (a module's too)."""
    root = [
        _parameter("ai_agent", options=AGENTS),
        _parameter("cpu", "number", options=("1", "2", "4", "8")),
        _parameter("cursor", "bool"),
        _parameter("home_disk_size", "number", validation=[{"min": 10, "max": 1000}]),
        _parameter("node_version", options=("24", "22")),
        _parameter("repo_url", validation=[{"regex": "^$|^(https://|ssh://|git@)[^\\s]+$"}]),
        _parameter("free_text"),
    ]
    dotfiles = [_parameter("dotfiles_uri"), _parameter("dotfiles_branch")]
    module = {"resources": root, "child_modules": [{"resources": dotfiles}]}
    return {"prior_state": {"values": {"root_module": module}}}


def test_factors_cover_options_bools_ranges_and_the_free_text_people_fill_in():
    found = {f.name: f.values for f in factors(_plan())}
    assert found["ai_agent"] == AGENTS
    assert found["cursor"] == ("true", "false")
    assert found["home_disk_size"] == ("10", "1000")
    assert found["repo_url"][0] == ""
    assert any(v.startswith("https://") for v in found["repo_url"])
    assert any(v.startswith("git@") for v in found["repo_url"])
    assert found["dotfiles_uri"][0] == ""
    assert "free_text" not in found  # nothing to choose: it keeps its default


def test_pairwise_rows_hold_every_pair():
    fs = [
        Factor("a", ("1", "2", "3")),
        Factor("b", ("x", "y")),
        Factor("c", ("p", "q")),
        Factor("d", ("0", "1")),
    ]
    rows = pairwise(fs)
    for f, g in itertools.combinations(fs, 2):
        for x, y in itertools.product(f.values, g.values):
            assert any(r[f.name] == x and r[g.name] == y for r in rows), (f.name, x, g.name, y)
    assert len(rows) < 3 * 2 * 2 * 2  # fewer than the full product


def test_every_agent_with_and_without_a_repository_and_every_option_at_least_once():
    found = factors(_plan())
    rows = choice_rows(found)
    for agent in AGENTS:
        assert any(r["ai_agent"] == agent and r["repo_url"] for r in rows), agent
        assert any(r["ai_agent"] == agent and not r["repo_url"] for r in rows), agent
    for factor in found:
        for value in factor.values:
            assert any(r[factor.name] == value for r in rows), (factor.name, value)
    assert any(r["dotfiles_uri"] for r in rows)
    assert any(not r["dotfiles_uri"] for r in rows)


def test_the_choice_cases_plan_every_agent_on_start_and_stop():
    cases = plantest._cases("nodejs", _plan(), presets=False, choices=True)
    starts = {dict(c.parameters).get("ai_agent") for c in cases if c.transition == "start"}
    stops = {dict(c.parameters).get("ai_agent") for c in cases if c.transition == "stop"}
    assert set(AGENTS) <= starts
    assert set(AGENTS) <= stops
    # a stop case shares its preset name with a start case (the invariants compare the two)
    names = {c.preset for c in cases if c.transition == "start"}
    assert {c.preset for c in cases if c.transition == "stop"} <= names
    assert len({c.label for c in cases}) == len(cases)
    assert plan_matrix.PAIRWISE[0] == "ai_agent"


def test_the_pins_span_exactly_the_versions_the_matrix_plans():
    repo = Path(__file__).resolve().parent.parent
    versions = tomllib.loads((repo / "templates" / "_shared" / "versions.toml").read_text())
    build_tools = runpy.run_path(str(repo / "scripts" / "build_tools.py"))
    lowest, highest = build_tools["MATRIX_CODER"]
    match = re.fullmatch(r">= (\d+\.\d+\.\d+), < (\d+)\.(\d+)\.0", versions["providers"]["coder"]["version"])
    assert match, versions["providers"]["coder"]["version"]
    # from the lowest planned to just above the highest planned: the range stops where the proof does
    assert match.group(1) == lowest
    major, minor, _ = highest.split(".")
    assert (match.group(2), match.group(3)) == (major, str(int(minor) + 1))
    coder = json.loads((repo / "tools" / "coderbundle" / "data" / "coder.json").read_text())
    assert coder["version"] == lowest  # the schema checks describe the lowest
    oldest, newest = build_tools["MATRIX_TERRAFORM"]
    assert oldest == versions["terraform"]["version"]
    assert versions["terraform"]["required_version"] == ">= " + ".".join(oldest.split(".")[:2])
    assert tuple(map(int, newest.split("."))) < (1, 14, 9)  # Coder v2.30.0's maxTerraformVersion


def test_the_schedule_plans_every_choice_on_both_ends_of_both_ranges(tmp_path):
    from test_ci_pipelines import _load_noxfile  # noqa: PLC0415 - nox registers a noxfile once

    pytest.importorskip("nox", reason="nox is not installed here (it is in the test dependency group)")
    matrix = tmp_path / "matrix"
    matrix.mkdir()
    # Lexical order is not version order: 1.14.8 sorts before 1.9.8 as text.
    (matrix / "MATRIX.json").write_text(
        json.dumps(
            {
                "terraform": {"1.14.8": "terraform/1.14.8/terraform", "1.9.8": "terraform/1.9.8/terraform"},
                "provider_mirrors": {"2.20.0": "matrix/coder-2.20.0", "2.18.0": "matrix/coder-2.18.0"},
            }
        )
    )
    schedule = [
        (Path(env["CODERBUNDLE_TERRAFORM"]).parent.name, Path(env["CODERBUNDLE_PROVIDER_MIRROR"]).name, extra)
        for env, extra in _load_noxfile().matrix_schedule(tmp_path)
    ]
    assert schedule == [
        ("1.9.8", "coder-2.18.0", ()),
        ("1.9.8", "coder-2.20.0", ("--no-choices",)),
        ("1.14.8", "coder-2.18.0", ("--no-choices",)),
        ("1.14.8", "coder-2.20.0", ()),
    ]
