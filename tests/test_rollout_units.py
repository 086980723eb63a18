"""The pure parts of the rollout verbs: health of a build, the log line, diffs, settings.

The flows themselves run against the real server in tests/test_rollout_real.py.
"""

from __future__ import annotations

import io
import tarfile

import pytest

from coderbundle.errors import EnvError, SettingsError, UsageError
from coderbundle.rollout import builds, canary, log
from coderbundle.rollout.archive import Archived
from coderbundle.rollout.diff import archive_files, compare_files, declared_defaults
from coderbundle.settings import canary_timeout, parse_canary


def workspace(job: str = "succeeded", transition: str = "start", *agents: tuple[str, str]) -> dict:
    return {
        "latest_build": {
            "build_number": 7,
            "transition": transition,
            "job": {"status": job, "error": "terraform apply: exit status 1\nError: boom"},
            "resources": [
                {
                    "agents": [
                        {"name": f"a{i}", "status": s, "lifecycle_state": lc}
                        for i, (s, lc) in enumerate(agents)
                    ]
                }
            ],
        }
    }


@pytest.mark.parametrize(
    ("ws", "state", "reason"),
    [
        (workspace("running"), "pending", "build #7 running"),
        (workspace("failed"), "failed", "build #7 failed: Error: boom"),
        (workspace("canceled"), "failed", "build #7 canceled"),
        (workspace("succeeded", "stop"), "ok", ""),
        (workspace("succeeded", "start", ("connected", "ready")), "ok", ""),
        (workspace("succeeded", "start"), "ok", ""),
        (workspace("succeeded", "start", ("connecting", "created")), "pending", "status connecting"),
        (workspace("succeeded", "start", ("connected", "start_error")), "failed", "startup script failed"),
        (workspace("succeeded", "start", ("connected", "start_timeout")), "failed", "timed out"),
        (workspace("succeeded", "start", ("timeout", "created")), "failed", "never connected"),
        (
            workspace("succeeded", "start", ("connected", "ready"), ("connected", "starting")),
            "pending",
            "a1: status connected, lifecycle starting",
        ),
    ],
)
def test_health_of_a_build(ws, state, reason):
    found = builds.health(ws)
    assert found.state == state
    assert reason in found.reason


def test_a_log_line_round_trips_and_other_message_lines_are_left_alone():
    entry = log.Entry(
        "canary", "2026-12-06T06:00:00.000000Z", "ci", "v2-id", "v2", "v1-id", "v1", "canary: ok"
    )
    message = f"publish abc123 (content cb-1234)\n{entry.line()}\ncoderbundle-rollout: {{not json\n"
    (parsed,) = log.parse({"id": "v2-id", "name": "v2", "message": message})
    assert parsed == entry
    assert log.latest({"id": "x", "message": "no log here"}) is None
    assert "v2-id" not in entry.line()  # the version a line sits on is where it is, not in it


def test_the_newest_entry_on_a_version_decides_where_rollback_goes():
    old = log.Entry("promote", "2026-12-01T00:00:00.000000Z", "ci", "v", "v", "a", "A")
    new = log.Entry("rollback", "2026-12-02T00:00:00.000000Z", "ci", "v", "v", "b", "B")
    version = {"id": "v", "name": "v", "message": f"{new.line()}\n{old.line()}"}
    assert log.latest(version) == new


def test_fresh_workspace_names_fit_coder_limits():
    assert canary.fresh_name("nodejs") == "canary-nodejs"
    long = canary.fresh_name("a-very-long-template-name-that-goes-on")
    assert len(long) <= 32
    assert not long.endswith("-")


def tar(files: dict[str, str]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as archive:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return out.getvalue()


def test_file_changes_are_unified_diffs_sorted_by_path():
    active = archive_files(tar({"main.tf": "a\nb\n", "old.tf": "x\n", "README.md": "r\n"}))
    candidate = archive_files(tar({"main.tf": "a\nc\n", "new.tf": "y\n", "README.md": "r\n"}))
    changes = compare_files(active, candidate, ("active:v1", "repository:v2"))
    assert [(c.path, c.change) for c in changes] == [
        ("main.tf", "changed"),
        ("new.tf", "added"),
        ("old.tf", "removed"),
    ]
    assert "--- active:v1/main.tf\n+++ repository:v2/main.tf\n" in changes[0].patch
    assert "-b\n+c\n" in changes[0].patch


def test_declared_defaults_are_what_coder_stores():
    files = archive_files(
        tar(
            {
                "main.tf": 'variable "s" {\n  default = "x"\n}\nvariable "b" {\n  default = true\n}\n'
                'variable "none" {\n  type = string\n}\n',
                "modules/m/main.tf": 'variable "nested" {\n  default = "n"\n}\n',
            }
        )
    )
    assert declared_defaults(files) == {"s": "x", "b": "true", "none": None}


def test_archive_summary_says_what_was_kept():
    assert Archived(0, 0).summary() == ""
    assert Archived(1, 0).summary() == "archived 1 old version"
    assert Archived(3, 2).summary() == "archived 3 old versions (2 in use, kept)"


def test_canary_users_and_timeouts_are_checked_with_one_line_naming_where():
    assert parse_canary("alice, bob,alice,,me", "--canary", UsageError) == ("alice", "bob", "me")
    assert parse_canary(["alice"], "bundle.toml: rollout.canary", SettingsError) == ("alice",)
    with pytest.raises(EnvError, match=r"^CODERBUNDLE_CANARY: 'a b' is not a Coder username"):
        parse_canary("a b", "CODERBUNDLE_CANARY", EnvError)
    assert canary_timeout("10m", "x", UsageError) == 600
    assert canary_timeout("1h30m", "x", UsageError) == 5400
    assert canary_timeout("45s", "x", UsageError) == 45
    for bad in ("", "0s", "ten minutes", "10"):
        with pytest.raises(UsageError, match=r"is not a duration; write e\.g\. 10m"):
            canary_timeout(bad, "--canary-timeout", UsageError)
