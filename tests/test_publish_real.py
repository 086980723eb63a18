"""Publishing against a REAL Coder server (tests/coder_deployment.py) with the real `coder` CLI.

The deployment is built from source by `nox -s tools` and runs real terraform
with the real coder provider and registry modules on every import; only the
kubernetes provider is the declared stand-in.  One deployment serves the whole
session, so every test publishes templates under names of its own.
"""

from __future__ import annotations

import itertools
import json
import re
import secrets
import shutil
import time
import tomllib
from pathlib import Path

import pytest

from coderbundle import publish as publish_module
from coderbundle.__main__ import main
from coderbundle.hcl import is_expression, literal, parse_file
from standin.bundle import API_KEY_ENV, make_bundle, write_template
from standin.fault_proxy import FaultProxy

REPO = Path(__file__).resolve().parent.parent
TEMPLATES = ("nodejs", "python", "go", "docker", "kubernetes")
API_KEY = "sk-ant-real-SECRET-api-key-77"
DIGEST = "sha256:" + "cd" * 32

pytestmark = pytest.mark.slow


_USERS = itertools.count(1)


class _AsUser:
    """The deployment, with ``admin`` being the template admin of one test."""

    def __init__(self, deployment, user) -> None:
        self._deployment = deployment
        self.admin = user

    def __getattr__(self, name: str):
        return getattr(self._deployment, name)


@pytest.fixture
def coder(coder_deployment, monkeypatch, tmp_path):
    """The environment pointing publish at the real deployment as a template admin of the test's own.

    coderd limits uploads per user (12 a minute): a user per test keeps one test's
    publishes from spending the next one's budget.
    """
    user = coder_deployment.create_user(f"publisher-{next(_USERS)}", roles=("template-admin",))
    d = _AsUser(coder_deployment, user)
    monkeypatch.setenv("CODER_URL", d.url)
    monkeypatch.setenv("CODER_SESSION_TOKEN", user.token)
    monkeypatch.setenv("CODERBUNDLE_CODER", str(d.binary))
    monkeypatch.setenv("CODER_CONFIG_DIR", str(tmp_path / "coder-config"))
    monkeypatch.setenv("CODERBUNDLE_TERRAFORM_VALIDATE", "never")  # validation has its own tests
    monkeypatch.setenv(API_KEY_ENV, API_KEY)
    for name in ("CODER_ORGANIZATION", "CODERBUNDLE_EXTERNAL_AUTH", "CODERBUNDLE_REGISTRY"):
        monkeypatch.delenv(name, raising=False)
    return d


def publish(root: Path, capsys, *args: str) -> tuple[int, dict, str]:
    code = main(["--root", str(root), "publish", "--format", "json", *args])
    out, err = capsys.readouterr()
    return code, json.loads(out), err


def statuses(summary: dict) -> dict[str, str]:
    return {t["name"]: t["status"] for t in summary["templates"]}


def pin_images(root: Path, *names: str) -> None:
    """``build/images.json`` as `coderbundle images build --push` writes it."""
    images = {
        n: {
            "repository": f"127.0.0.1:5000/coderbundle/{n}",
            "reference": f"127.0.0.1:5000/coderbundle/{n}@{DIGEST}",
            "pushed": True,
        }
        for n in names
    }
    (root / "build").mkdir(exist_ok=True)
    (root / "build" / "images.json").write_text(json.dumps({"version": 1, "images": images}))


def template(d, name: str) -> dict | None:
    org = d.default_org()
    try:
        return d.api("GET", f"/organizations/{org}/templates/{name}", d.admin.token)
    except RuntimeError as exc:
        if "HTTP 404" in str(exc):
            return None
        raise


def versions(d, name: str) -> list[dict]:
    found = template(d, name)
    return d.api("GET", f"/templates/{found['id']}/versions", d.admin.token) if found else []


def active_version(d, name: str) -> dict:
    return d.api("GET", f"/templateversions/{template(d, name)['active_version_id']}", d.admin.token)


def small_bundle(tmp_path: Path, *names: str) -> Path:
    root = make_bundle(tmp_path / "bundle", names, secret=names[:1])
    pin_images(root, "base")
    return root


# -- the five real templates -----------------------------------------------------------


def hcl_unescape(text: str | None) -> str | None:
    """An HCL string literal's value (``\\`` and ``\"`` escapes resolved)."""
    return None if text is None else re.sub(r'\\([\\"])', r"\1", text)


def static(value):
    """A static HCL value as the server stores a parameter value (a string); None for an expression."""
    if is_expression(value):
        return None
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return str(value)
    return hcl_unescape(literal(value))


def declared_parameters(directory: Path) -> dict[str, dict]:
    """What a rendered template declares: each coder_parameter's static attributes."""
    found = {}
    for tf in sorted(directory.glob("*.tf")):
        for block in parse_file(tf).blocks:
            if block.type == "data" and block.labels[:1] == ("coder_parameter",):
                name = literal(block.get("name"))
                validation = block.child("validation")
                found[name] = {
                    "type": literal(block.get("type", '"string"')),
                    "mutable": bool(block.get("mutable", False)),
                    "default_value": static(block.get("default", '""')),
                    "options": [
                        {"name": static(o.get("name")), "value": static(o.get("value"))}
                        for o in block.children("option")
                    ],
                    "validation_regex": static(validation.get("regex", '""')) if validation else "",
                    "validation_min": validation.get("min") if validation else None,
                    "validation_max": validation.get("max") if validation else None,
                    "validation_monotonic": static(validation.get("monotonic", '""')) if validation else "",
                }
    return found


def declared_presets(directory: Path) -> dict[str, dict[str, str]]:
    """Each coder_workspace_preset's name and parameter values."""
    return {
        literal(block.get("name")) if block.get("name") else block.labels[1]: {
            literal(k): static(v) for k, v in (block.get("parameters") or {}).items()
        }
        for tf in sorted(directory.glob("*.tf"))
        for block in parse_file(tf).blocks
        if block.type == "data" and block.labels[:1] == ("coder_workspace_preset",)
    }


def duration_ms(text: str) -> int:
    """``4h``, ``30m``, ``90s`` (bundle.toml's durations) in milliseconds."""
    units = {"h": 3_600_000, "m": 60_000, "s": 1000}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([hms])", text))


def assert_imported_as_declared(coder, root: Path, name: str) -> None:
    """The server's parameters, presets and settings of ``name`` are what the bundle declares."""
    bundle = tomllib.loads((root / "bundle.toml").read_text())
    rendered = root / "build" / "templates" / name
    active = active_version(coder, name)
    server = {
        p["name"]: p
        for p in coder.api("GET", f"/templateversions/{active['id']}/rich-parameters", coder.admin.token)
    }
    declared = declared_parameters(rendered)
    assert set(declared) <= set(server), name  # modules (dotfiles) add their own
    for pname, want in declared.items():
        got = server[pname]  # codersdk.TemplateVersionParameter leaves out empty fields
        where = (name, pname)
        assert got["type"] == want["type"], where
        assert got["mutable"] == want["mutable"], where
        if want["default_value"] is not None:  # a static default (none is computed today)
            assert got.get("default_value", "") == want["default_value"], where
        assert [{"name": o["name"], "value": o["value"]} for o in got.get("options") or []] == want[
            "options"
        ], where
        assert got.get("validation_regex", "") == want["validation_regex"], where
        assert got.get("validation_min") == want["validation_min"], where
        assert got.get("validation_max") == want["validation_max"], where
        assert got.get("validation_monotonic", "") == want["validation_monotonic"], where
    assert any(w["validation_min"] is not None for w in declared.values()), name  # bounds were compared
    presets = coder.api("GET", f"/templateversions/{active['id']}/presets", coder.admin.token) or []
    # codersdk.Preset and PresetParameter have no json tags: Name, Parameters, Value.
    assert {
        p["Name"]: {q["Name"]: q["Value"] for q in p["Parameters"] or []} for p in presets
    } == declared_presets(rendered), name
    # Display settings as template.toml writes them, scheduling as bundle.toml does.
    found = template(coder, name)
    toml = tomllib.loads((root / "templates" / name / "template.toml").read_text())
    for key in ("display_name", "description", "icon"):
        assert found[key] == toml[key].strip(), (name, key)
    inactivity = duration_ms(bundle["workspace"]["inactivity_timeout"])
    assert found["default_ttl_ms"] == inactivity, name
    assert found["activity_bump_ms"] == inactivity, name
    variables = coder.api("GET", f"/templateversions/{active['id']}/variables", coder.admin.token)
    image = next(v for v in variables if v["name"] == "image")
    assert image["value"].endswith(f"/coderbundle/{found['name']}@{DIGEST}")


def test_the_five_templates_import_as_declared_then_rerun_pushes_nothing(
    coder, tmp_path, capsys, monkeypatch
):
    root = tmp_path / "bundle"
    (root / "templates").mkdir(parents=True)
    shutil.copy(REPO / "bundle.toml", root / "bundle.toml")
    shutil.copytree(REPO / "images", root / "images")
    shutil.copytree(REPO / "templates" / "_shared", root / "templates" / "_shared")
    for name in TEMPLATES:
        shutil.copytree(REPO / "templates" / name, root / "templates" / name)
    pin_images(root, *{"nodejs", "python", "go", "docker", "kubernetes"})

    code, summary, err = publish(root, capsys)
    assert code == 0, (summary, coder.log[-3000:])
    assert statuses(summary) == dict.fromkeys(TEMPLATES, "pushed")
    assert summary["server_version"].lstrip("v").startswith(coder.version)
    # The open-source server does not apply dormant auto-deletion: said once, never sent.
    assert len(summary["notes"]) == 1
    assert "time_til_dormant_autodelete_ms" in summary["notes"][0]
    assert API_KEY not in err
    assert coder.admin.token not in err

    for name in TEMPLATES:
        assert_imported_as_declared(coder, root, name)

    before = {name: len(versions(coder, name)) for name in TEMPLATES}
    with FaultProxy(coder.url) as proxy:  # no faults: it records every request of the re-run
        monkeypatch.setenv("CODER_URL", proxy.url)
        code, summary, _ = publish(root, capsys)
    monkeypatch.setenv("CODER_URL", coder.url)
    assert code == 0
    assert statuses(summary) == dict.fromkeys(TEMPLATES, "unchanged")
    assert all(t["settings_changed"] == [] for t in summary["templates"])  # nothing re-PATCHed
    assert {name: len(versions(coder, name)) for name in TEMPLATES} == before
    # Reads only: organizations, external auth, build info, entitlements; a template and its
    # active version each.  No upload, no version, no PATCH.
    assert [x for x in proxy.state.log if not x.startswith("GET ")] == [], proxy.state.log
    assert summary["api_requests"] == len(proxy.state.log) == 4 + 2 * len(TEMPLATES), proxy.state.log

    settings = root / "templates" / "go" / "template.toml"
    settings.write_text(settings.read_text().replace('description = "', 'description = "Edited: ', 1))
    code, summary, _ = publish(root, capsys)
    assert code == 0
    assert statuses(summary) == {**dict.fromkeys(TEMPLATES, "unchanged"), "go": "pushed"}
    assert len(versions(coder, "go")) == before["go"] + 1


# -- external auth ---------------------------------------------------------------------


def test_a_deployment_without_the_external_auth_provider_is_refused_before_any_push(coder, tmp_path, capsys):
    root = small_bundle(tmp_path, "noauth-a")
    coder.restart(external_auth=False)
    try:
        code = main(["--root", str(root), "publish"])
        err = capsys.readouterr().err
        assert code == 2
        (line,) = [x for x in err.splitlines() if x.startswith("error:")]
        assert "no external auth provider 'gitlab'" in line
        assert "CODER_EXTERNAL_AUTH_0_ID=gitlab" in line
        assert "[coder] external_auth" in line
        assert template(coder, "noauth-a") is None  # nothing pushed
    finally:
        coder.restart(external_auth=True)


def test_external_auth_none_publishes_templates_that_ask_for_no_login(coder, tmp_path, capsys, monkeypatch):
    root = tmp_path / "bundle"
    (root / "templates").mkdir(parents=True)
    shutil.copy(REPO / "bundle.toml", root / "bundle.toml")
    shutil.copytree(REPO / "images", root / "images")
    shutil.copytree(REPO / "templates" / "_shared", root / "templates" / "_shared")
    shutil.copytree(REPO / "templates" / "python", root / "templates" / "noauth-python")
    pin_images(root, "python")
    monkeypatch.setenv("CODERBUNDLE_EXTERNAL_AUTH", "")
    coder.restart(external_auth=False)
    try:
        code, summary, _ = publish(root, capsys)
        assert code == 0, (summary, coder.log[-2000:])
        assert statuses(summary) == {"noauth-python": "pushed"}
        assert (
            "coder_external_auth"
            not in (root / "build" / "templates" / "noauth-python" / "main.tf").read_text()
        )
    finally:
        coder.restart(external_auth=True)


# -- images ----------------------------------------------------------------------------


def test_a_live_publish_never_ships_an_image_nobody_built(coder, tmp_path, capsys):
    root = make_bundle(tmp_path / "bundle", ("img-a", "img-b"))
    code = main(["--root", str(root), "publish"])
    err = capsys.readouterr().err
    assert code == 2
    (line,) = [x for x in err.splitlines() if x.startswith("error:")]
    assert "img-a (codercom/example-base:ubuntu)" in line
    assert "CODERBUNDLE_REGISTRY" in line
    assert "--allow-default-image" in line
    assert "[images.pinned]" in line
    assert template(coder, "img-a") is None
    assert template(coder, "img-b") is None

    code, summary, _ = publish(root, capsys, "--allow-default-image")
    assert code == 0
    assert {t["name"]: t["image"] for t in summary["templates"]} == dict.fromkeys(
        ("img-a", "img-b"), "codercom/example-base:ubuntu"
    )


def test_a_pinned_image_in_bundle_toml_is_published_as_is(coder, tmp_path, capsys):
    root = make_bundle(tmp_path / "bundle", ("pinned-a",))
    ref = f"registry.example.com/team/base@{DIGEST}"
    with (root / "bundle.toml").open("a") as fh:
        fh.write(f'\n[images.pinned]\nbase = "{ref}"\n')
    code, summary, _ = publish(root, capsys)
    assert code == 0, summary
    assert summary["templates"][0]["image"] == ref
    variables = coder.api(
        "GET", f"/templateversions/{active_version(coder, 'pinned-a')['id']}/variables", coder.admin.token
    )
    assert next(v for v in variables if v["name"] == "image")["value"] == ref
    plan = json.loads((root / "dist" / "publish-plan.json").read_text())
    assert plan["templates"][0]["image"]["source"] == "bundle.toml [images.pinned]"


# -- failures --------------------------------------------------------------------------


def test_a_failed_import_leaves_the_others_published_and_shows_the_servers_error(
    coder, tmp_path, capsys, monkeypatch
):
    root = small_bundle(tmp_path, "fail-ok", "fail-bad")
    main_tf = root / "templates" / "fail-bad" / "main.tf"
    main_tf.write_text(main_tf.read_text() + '\noutput "broken" {\n  value = tonumber("not-a-number")\n}\n')
    with FaultProxy(coder.url) as proxy:  # no faults: it counts the pushes
        monkeypatch.setenv("CODER_URL", proxy.url)
        code, summary, err = publish(root, capsys)
    assert code == 1
    assert statuses(summary) == {"fail-ok": "pushed", "fail-bad": "failed"}
    bad = next(t for t in summary["templates"] if t["name"] == "fail-bad")
    assert "not-a-number" in bad["detail"] or "Invalid function argument" in bad["detail"], bad
    assert template(coder, "fail-bad") is None
    # A bad template is not retried: one version created per template, one import each.
    assert "retried" not in bad["detail"]
    created = [
        x for x in proxy.state.log if re.match(r"POST /api/v2/organizations/[^/]+/templateversions ", x)
    ]
    assert len(created) == 2, proxy.state.log
    # Validation was forced off for these tests (the fixture): the summary and the plan say so.
    plan = json.loads((root / "dist" / "publish-plan.json").read_text())
    for checks in (summary["checks"], plan["checks"]):
        assert "checked without terraform" in checks["summary"]
        for name in ("fail-ok", "fail-bad"):
            entry = checks["templates"][name]
            assert entry["verdict"] == "checked without terraform"
            assert entry["terraform_validate"] == "skipped: disabled by CODERBUNDLE_TERRAFORM_VALIDATE=never"
    everything = json.dumps(summary) + err
    assert coder.admin.token not in everything
    assert API_KEY not in everything


def test_transient_faults_of_a_proxy_are_retried_and_4xx_are_not(coder, tmp_path, capsys, monkeypatch):
    root = small_bundle(tmp_path, "flaky-a", "flaky-b")
    with FaultProxy(coder.url) as proxy:
        monkeypatch.setenv("CODER_URL", proxy.url)
        upload = proxy.add(r"^POST /api/v2/files", 502, times=1)
        create = proxy.add(r"^POST /api/v2/organizations/[^/]+/templateversions", "reset", times=1)
        orgs = proxy.add(r"^GET /api/v2/organizations$", 503, times=2)
        code, summary, _ = publish(root, capsys)
        assert code == 0, (json.dumps(summary["templates"]), proxy.state.log)
        assert statuses(summary) == {"flaky-a": "pushed", "flaky-b": "pushed"}
        assert (upload.hits, create.hits, orgs.hits) == (1, 1, 2)
        details = " ".join(t["detail"] for t in summary["templates"])
        assert "retried 1x (Status code 502)" in details
        assert "retried 1x (connection reset)" in details

        readme = root / "templates" / "flaky-a" / "README.md"
        readme.write_text(readme.read_text() + "\nchanged\n")
        bad = proxy.add(r"^POST /api/v2/files", 400, times=5)
        code, summary, _ = publish(root, capsys)
        assert code == 1
        assert statuses(summary) == {"flaky-a": "failed", "flaky-b": "unchanged"}
        assert bad.hits == 1  # a 4xx is the request's fault: not retried


def test_a_rate_limited_upload_is_sent_again_after_the_wait_the_server_names(
    coder, tmp_path, capsys, monkeypatch
):
    """coderd answers 429 past 12 uploads a minute per user; publish waits and goes on."""
    monkeypatch.setattr(publish_module, "_RATE_WAIT", 0.5)  # the CLI's wait; the API's comes from Retry-After
    root = small_bundle(tmp_path, "limited-a")
    assert publish(root, capsys)[0] == 0
    write_template(root, "limited-a", marker="-v2")
    with FaultProxy(coder.url) as proxy:
        monkeypatch.setenv("CODER_URL", proxy.url)
        api_upload = proxy.add(r"^POST /api/v2/files", 429, times=1)
        code, summary, _ = publish(root, capsys, "--dry-run")  # the gate's own upload
        assert code == 0, summary
        assert statuses(summary) == {"limited-a": "would-push"}
        assert api_upload.hits == 1
        cli_upload = proxy.add(r"^POST /api/v2/files", 429, times=1)
        code, summary, _ = publish(root, capsys)
        assert code == 0, summary
        assert "retried 1x (Status code 429)" in summary["templates"][0]["detail"]
        assert cli_upload.hits == 1


# coderd caches a template's modules archive once per content (files, created_by = nil UUID):
# in CompleteJob it looks the hash up and inserts it when missing.  Two imports of one new
# module set that complete together both miss and both insert; the second fails on
# files_hash_created_by_key.  This trigger holds every such insert for a moment before it
# lands, so imports completing within that moment of the first all meet the race.
SLOW_MODULE_ARCHIVES = """
CREATE OR REPLACE FUNCTION coderbundle_slow_module_archive() RETURNS trigger AS $$
BEGIN
  PERFORM pg_sleep(%s);
  RETURN NEW;
END $$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS coderbundle_slow_module_archive ON files;
CREATE TRIGGER coderbundle_slow_module_archive BEFORE INSERT ON files FOR EACH ROW
  WHEN (NEW.created_by = '00000000-0000-0000-0000-000000000000')
  EXECUTE FUNCTION coderbundle_slow_module_archive();
"""
NO_SLOW_MODULE_ARCHIVES = """
DROP TRIGGER IF EXISTS coderbundle_slow_module_archive ON files;
DROP FUNCTION IF EXISTS coderbundle_slow_module_archive();
"""
RACE_ROUNDS = 10


def test_parallel_first_publishes_survive_the_servers_module_archive_race(
    coder, tmp_path, capsys, monkeypatch
):
    """Five templates with one module set new to the server, pushed at once.

    Each round renames the module (its key is in the archive's modules.json): a module
    set the server has never cached, so every round can race.  Rounds go on until an
    import was retried because of the race (at most RACE_ROUNDS); every round must
    publish all five.
    """
    coder.sql(SLOW_MODULE_ARCHIVES % 2)
    raced, rounds, started = 0, 0, time.monotonic()
    try:
        while not raced and rounds < RACE_ROUNDS:
            rounds += 1
            # A user per round: coderd limits uploads per user (12 a minute).
            user = coder.create_user(f"racer-{rounds}", roles=("template-admin",))
            monkeypatch.setenv("CODER_SESSION_TOKEN", user.token)
            names = tuple(f"race-{i}-{rounds}" for i in range(5))
            root = make_bundle(tmp_path / f"bundle-{rounds}", names, concurrency=5)
            key = f"code-server-{secrets.token_hex(4)}"
            for name in names:
                edit(root, name, 'module "code-server" {', f'module "{key}" {{')
            pin_images(root, "base")
            code, summary, _ = publish(root, capsys)
            assert code == 0, (rounds, summary)
            assert statuses(summary) == dict.fromkeys(names, "pushed"), rounds
            raced += sum("files_hash_created_by_key" in t["detail"] for t in summary["templates"])
    finally:
        coder.sql(NO_SLOW_MODULE_ARCHIVES)
    took = time.monotonic() - started
    assert raced, f"no import met the module-archive race in {rounds} rounds of 5 ({took:.0f} s)"
    print(  # noqa: T201 - a figure for -s
        f"module-archive races survived by a retry: {raced} in {rounds} round(s) of 5, {took:.0f} s"
    )


# -- the upgrade-safety gate -------------------------------------------------------------


def edit(root: Path, name: str, old: str, new: str) -> None:
    path = root / "templates" / name / "main.tf"
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


NEW_IMMUTABLE = (
    'data "coder_parameter" "repo" {',
    (
        'data "coder_parameter" "region" {\n  name         = "region"\n  display_name = "Region"\n'
        '  type         = "string"\n  mutable      = false\n}\n\ndata "coder_parameter" "repo" {'
    ),
)
RENAME_CLAIM = [
    (
        'resource "kubernetes_persistent_volume_claim_v1" "home" {',
        'resource "kubernetes_persistent_volume_claim_v1" "workspace" {',
    ),
    (
        "claim_name = kubernetes_persistent_volume_claim_v1.home.metadata[0].name",
        "claim_name = kubernetes_persistent_volume_claim_v1.workspace.metadata[0].name",
    ),
]
GATE_CASES = {
    "parameter-new-immutable:region": [NEW_IMMUTABLE],
    "parameter-removed:repo": [
        ('  name         = "repo"', '  name         = "repository"'),
        ('    "repo"                          = ""', '    "repository"                    = ""'),
    ],
    "option-removed:cpu=4": [('  option {\n    name  = "4 cores"\n    value = 4\n  }\n', "")],
    "type-changed:repo": [
        ('  type         = "string"\n  default      = ""', '  type         = "number"\n  default      = 0'),
        ('    regex = "^(|https://.*)$"\n    error = "Use an https URL."\n', "    min = 0\n"),
        ('    "repo"                          = ""', '    "repo"                          = "0"'),
    ],
    "made-immutable:repo": [
        ('  default      = ""\n  mutable      = true', '  default      = ""\n  mutable      = false')
    ],
    # A new address without a `moved` block: terraform destroys the claim (test_upgrade_gate.py
    # plans it with real terraform).  An attribute edit would not: the claim ignores all changes.
    "volume-replaced:kubernetes_persistent_volume_claim_v1.home": RENAME_CLAIM,
}


@pytest.mark.parametrize("finding", sorted(GATE_CASES))
def test_the_upgrade_gate_blocks_a_breaking_version_and_keeps_the_active_one(
    coder, tmp_path, capsys, finding
):
    name = "gate-" + finding.split(":")[0]
    root = small_bundle(tmp_path, name)
    code, _, _ = publish(root, capsys)
    assert code == 0
    active = template(coder, name)["active_version_id"]
    for old, new in GATE_CASES[finding]:
        edit(root, name, old, new)

    code, summary, _ = publish(root, capsys, "--dry-run")
    assert code == 1
    assert statuses(summary) == {name: "blocked"}
    assert [f["id"] for f in summary["templates"][0]["upgrade_findings"]] == [finding]
    plan = json.loads((root / "dist" / "publish-plan.json").read_text())
    assert plan["templates"][0]["upgrade_findings"][0]["id"] == finding

    code, summary, _ = publish(root, capsys)
    assert code == 1
    assert statuses(summary) == {name: "blocked"}
    detail = summary["templates"][0]["detail"]
    assert f'accept = ["{finding}"]' in detail
    assert "--accept-breaking" in detail
    assert template(coder, name)["active_version_id"] == active  # the old version stays active

    with (root / "templates" / name / "template.toml").open("a") as fh:
        fh.write(f'\n[upgrade]\naccept = ["{finding}"]\n')
    code, summary, _ = publish(root, capsys)
    assert code == 0, summary
    assert statuses(summary) == {name: "pushed"}
    assert template(coder, name)["active_version_id"] != active


@pytest.mark.usefixtures("coder")
def test_a_compatible_change_passes_the_gate_and_accept_breaking_overrides_it(tmp_path, capsys):
    name = "gate-compatible"
    root = small_bundle(tmp_path, name)
    assert publish(root, capsys)[0] == 0
    edit(
        root,
        name,
        'data "coder_parameter" "repo" {',
        'data "coder_parameter" "shell" {\n  name         = "shell"\n  display_name = "Shell"\n'
        '  type         = "string"\n  default      = "bash"\n  mutable      = true\n}\n\n'
        'data "coder_parameter" "repo" {',
    )
    edit(
        root,
        name,
        '  option {\n    name  = "4 cores"\n    value = 4\n  }\n',
        '  option {\n    name  = "4 cores"\n    value = 4\n  }\n  option {\n    name  = "8 cores"\n'
        "    value = 8\n  }\n",
    )
    # The claim ignores all changes: a new name is not applied to existing workspaces' claims.
    edit(
        root,
        name,
        'name      = "coder-${data.coder_workspace.me.id}-home"',
        'name      = "coder-${data.coder_workspace.me.id}-data"',
    )
    code, summary, _ = publish(root, capsys)
    assert code == 0, summary
    assert statuses(summary) == {name: "pushed"}
    assert summary["templates"][0]["upgrade_findings"] == []

    # A new address with a `moved` block: terraform moves the claim instead of deleting it.
    for old, new in RENAME_CLAIM:
        edit(root, name, old, new)
    with (root / "templates" / name / "main.tf").open("a") as fh:
        fh.write(
            "\nmoved {\n  from = kubernetes_persistent_volume_claim_v1.home\n"
            "  to   = kubernetes_persistent_volume_claim_v1.workspace\n}\n"
        )
    code, summary, _ = publish(root, capsys)
    assert code == 0, summary
    assert statuses(summary) == {name: "pushed"}
    assert summary["templates"][0]["upgrade_findings"] == []

    edit(root, name, '  name         = "shell"', '  name         = "login_shell"')
    code, summary, _ = publish(root, capsys, "--accept-breaking")
    assert code == 0, summary
    assert [f["id"] for f in summary["templates"][0]["upgrade_findings"]] == ["parameter-removed:shell"]
    assert summary["templates"][0]["upgrade_findings"][0]["accepted"] is True
