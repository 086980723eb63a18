"""Benchmark `coderbundle impact` on 20 workspaces of a REAL Coder server (tests/coder_deployment.py).

The local-agent test template (tests/rollout_fixtures.py) is published and 20
workspaces are built on it for real: 19 of one user and 1 of another (its
``--owner`` run is the fixed cost: import, init, one plan).  Their agents are
not started (``start_agent = false``): impact never talks to an agent, and 20
agent processes would take the two cores the plans need.  Then, side by side
in one process against one deployment:

1. the unchanged repository on 1 workspace (``--owner``) and on all 20, two
   plans at a time: the marginal cost of a workspace;
2. the same 20 one plan at a time: what the second worker buys;
3. a candidate renaming the volume-naming parameter (every workspace has findings).

Each run imports the candidate (a real terraform init + plan on the server's
provisioner), runs one local ``terraform init``, then per workspace: its build
parameters, the dynamic-parameters evaluation, its state, ``terraform plan
-refresh=false`` and ``terraform show -json``.  Needs `nox -s tools` and PostgreSQL.

Usage: python scripts/bench_impact.py [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from coder_deployment import CoderDeployment, Unavailable  # noqa: E402
from coderbundle.pipeline import publish_all  # noqa: E402
from coderbundle.rollout.impact import impact_template  # noqa: E402
from coderbundle.settings import load_settings  # noqa: E402
from rollout_fixtures import local_agent_bundle  # noqa: E402

NAME = "bench-impact"
WORKSPACES = 20
VOLUMES = '\n[upgrade]\nvolumes = ["terraform_data.home_volume"]\n'


def build_workspaces(coder: CoderDeployment, tokens: list[str], template_id: str) -> None:
    """Start every workspace's build, then wait until all finished (they queue on the provisioners)."""
    org = coder.default_org()
    ids = []
    for i, token in enumerate(tokens):
        body = {
            "name": f"ws-{i:02d}",
            "template_id": template_id,
            "rich_parameter_values": [{"name": "volume_name", "value": f"vol-{i:02d}"}],
        }
        ids.append(
            (coder.api("POST", f"/organizations/{org}/members/me/workspaces", token, body)["id"], token)
        )
    deadline = time.monotonic() + 900
    for workspace_id, token in ids:
        while True:
            job = coder.api("GET", f"/workspaces/{workspace_id}", token)["latest_build"]["job"]["status"]
            if job == "succeeded":
                break
            if job in ("failed", "canceled") or time.monotonic() > deadline:
                raise SystemExit(f"workspace build {workspace_id}: {job}\n{coder.log[-2000:]}")
            time.sleep(0.5)


def timed(
    root: Path, env: dict[str, str], *, owner: str = "", workers: int = 2
) -> tuple[float, int, dict[str, int]]:
    """One impact run: (wall seconds, REST requests, workspaces per status)."""
    settings = load_settings(root, env)
    start = time.perf_counter()
    result = impact_template(settings, NAME, env=env, owner=owner, workers=workers)
    elapsed = time.perf_counter() - start
    counts: dict[str, int] = {}
    for w in result.workspaces:
        counts[w.status] = counts.get(w.status, 0) + 1
    failed = [w.error for w in result.workspaces if w.error]
    if failed:
        raise SystemExit(f"impact could not plan: {failed[0]}")
    return elapsed, result.api_requests, counts


def run() -> dict[str, object]:
    """Publish, build 20 workspaces, time the impact runs; the figures."""
    os.environ["CODERBUNDLE_TERRAFORM_VALIDATE"] = "never"  # benchmark impact, not validation
    with tempfile.TemporaryDirectory() as tmp, CoderDeployment() as coder:
        if coder.admin is None:
            raise SystemExit("the deployment has no template admin")
        root = local_agent_bundle(Path(tmp) / "bundle", (NAME,), coder, start_agent=False)
        with (root / "templates" / NAME / "template.toml").open("a") as toml:
            toml.write(VOLUMES)
        env = {
            **os.environ,
            "CODER_URL": coder.url,
            "CODER_SESSION_TOKEN": coder.admin.token,
            "CODERBUNDLE_CODER": str(coder.binary),
            "CODER_CONFIG_DIR": str(Path(tmp) / "coder-config"),
            "CODERBUNDLE_TERRAFORM": str(coder.terraform),
            "CODERBUNDLE_PROVIDER_MIRROR": str(coder.provider_mirror),
            "CODERBUNDLE_MODULE_MIRROR": str(coder.module_mirror),
        }
        os.environ["CODER_CONFIG_DIR"] = env["CODER_CONFIG_DIR"]
        published = publish_all(
            load_settings(root, env), (), env=env, build_images=False, allow_default_image=True
        )
        if not published.ok:
            raise SystemExit(f"publish failed: {[o.detail for o in published.outcomes]}")
        template = coder.api(
            "GET", f"/organizations/{coder.default_org()}/templates/{NAME}", coder.admin.token
        )
        other = coder.create_user("bench-other")
        began = time.perf_counter()
        build_workspaces(coder, [coder.admin.token] * (WORKSPACES - 1) + [other.token], template["id"])
        built = time.perf_counter() - began

        one, one_requests, _ = timed(root, env, owner=other.username)
        twenty, requests, clean = timed(root, env)
        serial, _, _ = timed(root, env, workers=1)
        text = (root / "templates" / NAME / "main.tf").read_text()
        renamed = text.replace('name        = "volume_name"', 'name        = "home_volume_name"')
        (root / "templates" / NAME / "main.tf").write_text(renamed)
        findings_s, _, findings = timed(root, env)
        version = coder.version
    marginal = (twenty - one) / (WORKSPACES - 1)
    return {
        "coder_server": f"v{version} (built from source)",
        "workspaces": WORKSPACES,
        "build_20_workspaces_s": round(built, 1),
        "impact_1_workspace_s": round(one, 2),
        "impact_20_workspaces_s": round(twenty, 2),
        "impact_20_workspaces_1_worker_s": round(serial, 2),
        "impact_20_with_findings_s": round(findings_s, 2),
        "per_workspace_marginal_s": round(marginal, 2),
        "ratio_20_to_1": round(twenty / one, 2),
        "ratio_1_worker_to_2": round(serial / twenty, 2),
        "api_requests_1": one_requests,
        "api_requests_20": requests,
        "statuses_clean_run": clean,
        "statuses_renamed_run": findings,
    }


def main() -> int:
    """Print the figures; exit 1 if the runs did not find what they should."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    try:
        figures = run()
    except Unavailable as exc:
        print(f"bench_impact skipped: {exc}")
        return 0
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        for key, value in figures.items():
            print(f"{key:34} {value}")
    right = figures["statuses_clean_run"] == {"clean": WORKSPACES} and figures["statuses_renamed_run"] == {
        "findings": WORKSPACES
    }
    return 0 if right else 1


if __name__ == "__main__":
    sys.exit(main())
