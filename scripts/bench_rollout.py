"""Benchmark a canary rollout against a REAL Coder server with a REAL agent.

Push to promotion of one new template version, three ways side by side in one
run against one deployment (tests/coder_deployment.py, the local-agent template
of tests/rollout_fixtures.py whose workspace is a `coder agent` process here):

1. no canary: push, gate, promote;
2. canary on the publisher's existing workspace: stop, start on the candidate,
   agent `ready`, promote;
3. canary with a fresh test workspace: create on the candidate, agent `ready`,
   delete, promote.

Prints seconds and the ratio to (1).  Needs `nox -s tools` and PostgreSQL.

Usage: python scripts/bench_rollout.py [--json]
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
from coderbundle.settings import load_settings  # noqa: E402
from rollout_fixtures import create_workspace, local_agent_bundle, write_local_agent  # noqa: E402


def timed(
    deployment: CoderDeployment, root: Path, env: dict[str, str], change: tuple[str, str, str]
) -> tuple[float, str]:
    """Change template ``name`` (``marker``), publish it with ``canary`` users; (seconds, detail)."""
    name, marker, canary = change
    write_local_agent(root, name, deployment, marker=marker)
    run_env = env | {"CODERBUNDLE_CANARY": canary}
    settings = load_settings(root, run_env)
    start = time.perf_counter()
    result = publish_all(settings, (name,), env=run_env, build_images=False, allow_default_image=True)
    elapsed = time.perf_counter() - start
    (outcome,) = result.outcomes
    if outcome.status != "pushed":
        msg = f"publish {marker}: {outcome.status}: {outcome.detail}"
        raise SystemExit(msg)
    return elapsed, outcome.detail


def main() -> int:
    """Run the three rollouts; print seconds and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    try:
        deployment = CoderDeployment(external_auth=False)
    except Unavailable as exc:
        print(f"bench_rollout skipped: {exc}", file=sys.stderr)
        return 0
    with deployment, tempfile.TemporaryDirectory(prefix="bench-rollout-") as tmp:
        if deployment.admin is None:  # start() made it
            return 1
        root = local_agent_bundle(Path(tmp) / "bundle", ("kept", "fresh"), deployment)
        env = {
            **os.environ,
            "CODER_URL": deployment.url,
            "CODER_SESSION_TOKEN": deployment.admin.token,
            "CODERBUNDLE_CODER": str(deployment.binary),
            "CODERBUNDLE_TERRAFORM_VALIDATE": "never",
            "CODERBUNDLE_EXTERNAL_AUTH": "",
            "CODER_CONFIG_DIR": str(Path(tmp) / "coder-config"),
        }
        first = load_settings(root, env)
        publish_all(first, (), env=env, build_images=False, allow_default_image=True)
        org = deployment.default_org()
        kept = deployment.api("GET", f"/organizations/{org}/templates/kept", deployment.admin.token)
        create_workspace(deployment, deployment.admin.token, kept["id"], "dev")
        rows = {
            "no canary": timed(deployment, root, env, ("kept", "v2", "")),
            "canary, existing workspace": timed(deployment, root, env, ("kept", "v3", "me")),
            "canary, fresh workspace": timed(deployment, root, env, ("fresh", "v2", "me")),
        }
    base = rows["no canary"][0]
    report = {
        k: {"seconds": round(v[0], 2), "ratio": round(v[0] / base, 2), "detail": v[1]}
        for k, v in rows.items()
    }
    if args.json:
        print(json.dumps({"coder": deployment.version, "rollouts": report}, indent=2))
        return 0
    print(f"push to promotion, one template, Coder {deployment.version}, real agent:")
    for name, row in report.items():
        print(f"  {name:28} {row['seconds']:6.2f} s  x{row['ratio']:.2f}  {row['detail']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
