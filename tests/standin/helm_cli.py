"""A stand-in for the `helm` CLI, for a machine that has only Helm's SDK (helm-python-sdk).

`coderbundle deploy` runs the `helm` program; this machine has none and cannot download
it.  This script answers the three subcommands deploy runs (`list --output json`,
`status`, `upgrade --install`) with the same Go actions the CLI runs, through the SDK,
against the kubeconfig deploy hands it (``KUBECONFIG``).  `--wait` is dropped: nothing
is scheduled on the test API server.  `list` is rewritten to the fields of
`helm list --output json` (helm's cmd/helm/list.go releaseElement): that translation is
ours, not Helm's.

Used by tests/test_chart_cluster.py (deploy prints the upgrade notes a 1.x release
crosses) only; everything else there talks to the real API server through the SDK.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import helm_python as helm

from coderbundle.deploy import load_values


def _opt(args: list[str], name: str) -> str | None:
    return args[args.index(name) + 1] if name in args else None


def main(args: list[str]) -> int:
    namespace = _opt(args, "--namespace")
    with helm.Config(kubeconfig_path=os.environ["KUBECONFIG"], namespace=namespace) as config:
        if args[0] == "list":
            releases = config.list(name_filter=_opt(args, "--filter"))
            sys.stdout.write(
                json.dumps(
                    [
                        {
                            "name": r["name"],
                            "namespace": r["namespace"],
                            "revision": str(r["revision"]),
                            "status": r["status"],
                            "chart": f"{r['chart_name']}-{r['chart_version']}",
                            "app_version": r["app_version"],
                        }
                        for r in releases
                    ]
                )
                + "\n"
            )
        elif args[0] == "status":
            try:
                config.status(args[1])
            except helm.HelmError:
                return 1
        elif args[:2] == ["upgrade", "--install"]:
            files = [Path(args[i + 1]) for i, a in enumerate(args) if a == "--values"]
            with helm.Chart.load(args[3]) as chart:
                config.upgrade(chart, args[2], load_values(files), namespace=namespace)
        else:
            sys.stderr.write(f"helm {args[0]}: not done by this stand-in\n")
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
