"""The stand-in ``coder`` CLI: ``coder templates push`` against the stand-in server.

Parses ``templates push`` with the real CLI's flags (docs/reference/cli/
templates_push.md), reads ``CODER_URL``/``CODER_SESSION_TOKEN`` (and
``CODER_ORGANIZATION``) from the environment, records its argv with the
server, tars the directory with Coder's archive rules, uploads it, creates
the version and waits for the import, then creates the template or
activates the version -- only after a successful import, as the real CLI
does.  Standard library only: it runs under any python3.
"""

# ruff: noqa: T201 - a command-line program: printing is its job
from __future__ import annotations

import argparse
import io
import json
import os
import re
import sys
import tarfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

NAME = re.compile(r"^[a-zA-Z0-9]+(?:-[a-zA-Z0-9]+)*$")
VERSION_NAME = re.compile(r"^[a-zA-Z0-9]+(?:[_.-][a-zA-Z0-9]+)*$")
SKIP = re.compile(r"(\.tfstate|\.tfstate\.backup|^terraform\.tfvars|\.auto\.tfvars.*)$")


class CliError(Exception):
    pass


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="coder")
    sub = p.add_subparsers(dest="group", required=True)
    templates = sub.add_parser("templates").add_subparsers(dest="verb", required=True)
    push = templates.add_parser("push")
    push.add_argument("template", nargs="?")
    push.add_argument("-d", "--directory", default=".")
    push.add_argument("--name", default="")
    push.add_argument("-m", "--message", default="Uploaded from the CLI")
    push.add_argument("--variable", "--var", action="append", default=[])
    push.add_argument("--variables-file", default="")
    push.add_argument("-y", "--yes", action="store_true")
    push.add_argument("-v", "--verbose", action="store_true")  # a root flag of the real CLI
    push.add_argument("--activate", default="true", nargs="?", const="true")
    push.add_argument("-O", "--org", default=os.environ.get("CODER_ORGANIZATION", ""))
    push.add_argument("--provisioner-tag", action="append", default=[])
    push.add_argument("--ignore-lockfile", action="store_true")
    push.add_argument("--always-prompt", action="store_true")
    return p


class Client:
    def __init__(self, url: str, token: str) -> None:
        self.url, self.token = url.rstrip("/"), token

    def call(self, method: str, path: str, body: Any = None, *, raw: bytes | None = None, **hdr: str) -> Any:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        headers = {"Coder-Session-Token": self.token, "X-Standin-Client": "cli", **hdr}
        if raw is None and body is not None:
            headers["Content-Type"] = "application/json"
        url = f"{self.url}{path}"
        req = urllib.request.Request(url, data=data, method=method, headers=headers)  # noqa: S310
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:  # noqa: S310 - local stand-in
                text = resp.read()
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            detail = json.loads(exc.read() or b"{}")
            msg = f"{method} {path}: {exc.code} {detail.get('message', '')} {detail.get('detail', '')}"
            raise CliError(msg.strip()) from None
        return json.loads(text) if text else None


def archive(directory: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path in sorted(directory.rglob("*")):
            rel = path.relative_to(directory).as_posix()
            parts = rel.split("/")
            hidden = any(p.startswith(".") for p in parts) and rel != ".terraform.lock.hcl"
            if hidden or SKIP.search(parts[-1]):
                continue
            tar.add(path, arcname=rel, recursive=False)
    return buf.getvalue()


def variables(args: argparse.Namespace) -> list[dict[str, str]]:
    values: dict[str, str] = {}
    if args.variables_file:
        text = Path(args.variables_file).read_text(encoding="utf-8")
        loaded = (
            json.loads(text)
            if text.lstrip().startswith("{")
            else {
                k.strip(): v.strip().strip('"')
                for k, v in (ln.split(":", 1) for ln in text.splitlines() if ":" in ln)
            }
        )
        values.update({str(k): str(v) for k, v in loaded.items()})
    for item in args.variable:
        if "=" not in item:
            msg = f"format key=value expected, got {item!r}"
            raise CliError(msg)
        key, value = item.split("=", 1)
        values[key] = value
    return [{"name": k, "value": v} for k, v in values.items()]


def resolve_org(client: Client, wanted: str) -> dict[str, Any]:
    for org in client.call("GET", "/api/v2/organizations") or []:
        if (not wanted and org["is_default"]) or wanted in (org["id"], org["name"]):
            return org
    msg = f"organization {wanted!r} not found"
    raise CliError(msg)


def push(args: argparse.Namespace, client: Client) -> int:
    directory = Path(args.directory).resolve()
    name = args.template or directory.name
    if not NAME.match(name) or len(name) >= 32:
        raise CliError(f"template name {name!r} is invalid")
    if args.name and not VERSION_NAME.match(args.name):
        raise CliError(f"template version name {args.name!r} is invalid")
    if not args.yes:
        print(f'> Upload "{directory}"? (yes/no) ', end="", flush=True)
        if sys.stdin.readline().strip() != "yes":
            raise CliError("EOF")
    org = resolve_org(client, args.org)
    template = client.call("GET", f"/api/v2/organizations/{org['id']}/templates/{name}")
    file_id = client.call(
        "POST", "/api/v2/files", raw=archive(directory), **{"Content-Type": "application/x-tar"}
    )["hash"]
    body = {
        "name": args.name,
        "message": args.message,
        "storage_method": "file",
        "file_id": file_id,
        "provisioner": "terraform",
        "user_variable_values": variables(args),
        "_template_name": name,  # stand-in only: lets tests fail one template's import
    }
    if template:
        body["template_id"] = template["id"]
    version = client.call("POST", f"/api/v2/organizations/{org['id']}/templateversions", body)
    if version["job"]["status"] != "succeeded":
        raise CliError(f"job failed: {version['job']['error'] or version['job']['status']}")
    if template is None:
        client.call(
            "POST",
            f"/api/v2/organizations/{org['id']}/templates",
            {"name": name, "template_version_id": version["id"]},
        )
        print(f"Template {name!r} has been created at {version['created_at']}!")
    elif args.activate.lower() == "true":
        client.call("PATCH", f"/api/v2/templates/{template['id']}/versions", {"id": version["id"]})
    print(f"Updated version at {version['created_at']}!")
    return 0


# What `coder version --output json` reports (the server's buildinfo version unless a test changes it).
CLI_VERSION = os.environ.get("STANDIN_CODER_CLI_VERSION", "v2.37.1-standin")


def main(argv: list[str]) -> int:
    if argv[:1] == ["version"]:  # needs no login, as the real CLI
        print(json.dumps({"version": CLI_VERSION, "slim": False, "agpl": False}))
        return 0
    url = os.environ.get("CODER_URL", "")
    token = os.environ.get("CODER_SESSION_TOKEN", "")
    if not url or not token:
        print("error: You are not logged in. Try logging in using 'coder login <url>'.", file=sys.stderr)
        return 1
    client = Client(url, token)
    client.call("POST", "/_standin/cli", {"argv": argv, "token_in_argv": any(token in a for a in argv)})
    args = parser().parse_args(argv)
    if client.call("GET", "/_standin/config").get("echo_token"):
        print(f"DEBUG: using session token {token}")
        print(f"DEBUG: Coder-Session-Token: {token}", file=sys.stderr)
    try:
        return push(args, client)
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
