"""The user-facing docs: their commands work as written, their links resolve.

A fenced block right after an ``<!-- offline -->`` line needs nothing but the
repository and the workstation tools: the slow test runs it, as written, in a
copy of the repository.  Every other command in those docs is checked here
without running it: nox sessions exist, ``coderbundle`` arguments parse with the
tool's own parser (what ``--help`` documents), and ``coder``, ``kubectl`` and
``helm`` use only subcommands and flags their documentation lists.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from coderbundle.__main__ import _parser

REPO = Path(__file__).resolve().parent.parent
GUIDES = ("README.md", "docs/getting-started.md", "docs/CODER_SETUP.md")
# Every page with commands: each block runs offline (and the slow test runs it) or says what it needs.
RUN_DOCS = (
    "README.md",
    *sorted(p.relative_to(REPO).as_posix() for p in (REPO / "docs").glob("*.md")),
    "chart/README.md",
)
# Docs this check owns (the chart, operations, images and rules pages have their own owners).
OWN_DOCS = (
    *GUIDES,
    "docs/ai-agents.md",
    "docs/architecture.md",
    "docs/authentik.md",
    "docs/gitlab.md",
    "docs/publishing.md",
    "docs/schemas.md",
    "docs/templates.md",
    "docs/vault.md",
)
# The anchors the original chart README links in docs/CODER_SETUP.md.
ORIGINAL_README_ANCHORS = {"authentik-oidc-integration", "gitlab-oauth-integration", "ai-agent-integration"}
OFFLINE_MARK = "<!-- offline -->"
NEEDS_MARK = re.compile(r"^<!-- needs: (\S.*) -->$")
INLINE_NOX = re.compile(r"`(nox -s [^`]+)`")
FENCE = re.compile(r"^```(\w*)\n(.*?)^```\n", re.DOTALL | re.MULTILINE)
HEREDOC = re.compile(r"<<-?\s*'?(\w+)'?")

# nox sessions that run one coderbundle command, and the words they put first.
CODERBUNDLE_SESSIONS = {
    "cli": [],
    "render": ["render"],
    "validate": ["validate"],
    "publish": ["publish"],
    "deploy": ["deploy"],
    "vault-setup": ["vault-setup"],
    "images": ["images", "build"],
}
# Subcommands and flags from each tool's reference (Coder 2.37 CLI docs, kubectl, Helm 3).
KNOWN: dict[tuple[str, ...], set[str]] = {
    ("coder", "login"): {"--first-user-username", "--first-user-email", "--first-user-password", "--token"},
    ("coder", "users", "create"): {
        "-u",
        "--username",
        "-e",
        "--email",
        "-n",
        "--full-name",
        "-p",
        "--password",
        "--login-type",
        "--service-account",
        "-O",
        "--org",
    },
    ("coder", "users", "edit-roles"): {"--roles", "-y", "--yes"},
    ("coder", "tokens", "create"): {
        "--lifetime",
        "-n",
        "--name",
        "-u",
        "--user",
        "--scope",
        "--allow",
        "-o",
        "--output",
    },
    ("coder", "create"): {
        "-t",
        "--template",
        "--template-version",
        "--preset",
        "--parameter",
        "--parameter-default",
        "--rich-parameter-file",
        "--start-at",
        "--stop-after",
        "--automatic-updates",
        "--copy-parameters-from",
        "-y",
        "--yes",
        "-O",
        "--org",
    },
    ("coder", "ssh"): {"--stdio", "-A", "--forward-agent", "-R", "--remote-forward", "-e", "--env"},
    ("coder", "delete"): {"-y", "--yes", "--orphan"},
    ("coder", "templates", "delete"): {"-y", "--yes", "-O", "--org"},
    ("coder", "templates", "push"): {
        "-d",
        "--directory",
        "-y",
        "--yes",
        "--name",
        "-m",
        "--message",
        "--variable",
        "--var",
        "--variables-file",
        "--provisioner-tag",
        "--activate",
        "--ignore-lockfile",
        "-O",
        "--org",
    },
    ("kubectl", "exec"): {"-i", "-t", "-it", "--stdin", "--tty", "-c", "--container"},
    ("kubectl", "create", "namespace"): set(),
    ("kubectl", "create", "secret", "generic"): {"--from-literal", "--from-file", "--from-env-file"},
    ("kubectl", "scale"): {"--replicas"},
    ("kubectl", "rollout", "status"): {"--timeout", "-w", "--watch"},
    ("kubectl", "get"): {"-o", "--output", "-A", "--all-namespaces", "-l", "--selector"},
    ("kubectl", "describe"): {"-l", "--selector"},
    ("kubectl", "logs"): {"-l", "--selector", "--tail", "-f", "--follow", "-c", "--container"},
    ("kubectl", "delete", "namespace"): {"--wait", "--timeout"},
    ("helm", "test"): {"--timeout", "--logs"},
    ("helm", "uninstall"): {"--wait", "--timeout", "--keep-history"},
}
GLOBAL_FLAGS = {
    "kubectl": {"-n", "--namespace", "--context"},
    "helm": {"-n", "--namespace", "--kube-context"},
}
VALUE_FLAGS = {
    "coder": {
        "-u",
        "--username",
        "-e",
        "--email",
        "-n",
        "--name",
        "--login-type",
        "--roles",
        "--user",
        "--lifetime",
        "-t",
        "--template",
        "--preset",
        "--parameter",
        "-d",
        "--directory",
        "-m",
        "--message",
        "--variable",
        "--variables-file",
        "-O",
        "--org",
    },
    "kubectl": {
        "-n",
        "--namespace",
        "--context",
        "--from-literal",
        "--from-file",
        "-o",
        "-l",
        "--tail",
        "-c",
    },
    "helm": {"-n", "--namespace", "--kube-context", "--timeout"},
}
# Programs the docs may call; anything else is a typo or a tool nobody installs.
PROGRAMS = {
    "nox",
    "coder",
    "kubectl",
    "helm",
    "curl",
    "docker",
    "terraform",
    "python3",
    "python",
    "git",
    "mkdir",
    "chmod",
    "cat",
    "export",
    "cd",
}
# coderbundle commands that render the chart: without -f the chart's defaults lack a database
# (coder.database), so they fail as written.
NEED_VALUES_FILE = {"deploy", "vault-setup"}


@dataclass(frozen=True)
class Block:
    doc: str
    lang: str
    text: str
    offline: bool
    mark: str = ""  # the HTML comment line right above the fence

    def script(self) -> str:
        """The shell a reader would type: console prompts stripped, output dropped."""
        if self.lang != "console":
            return self.text
        lines, out, heredoc = self.text.splitlines(), [], None
        for line in lines:
            if heredoc is not None:
                out.append(line)
                heredoc = None if line == heredoc else heredoc
            elif line.startswith("$ ") or (out and out[-1].endswith("\\")):
                command = line.removeprefix("$ ")
                out.append(command)
                if match := HEREDOC.search(command):
                    heredoc = match.group(1)
        return "\n".join(out) + "\n"


def blocks(doc: str) -> list[Block]:
    text = (REPO / doc).read_text()
    found = []
    for match in FENCE.finditer(text):
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        mark = before.strip() if before.strip().startswith("<!--") else ""
        found.append(Block(doc, match.group(1), match.group(2), mark == OFFLINE_MARK, mark))
    return found


def shell_blocks(doc: str) -> list[Block]:
    return [b for b in blocks(doc) if b.lang in {"console", "bash", "sh", "shell"}]


def commands(script: str) -> list[list[str]]:
    """Simple commands of a script: heredoc bodies, redirections and assignments dropped."""
    result, lines, heredoc = [], script.replace("\\\n", " ").splitlines(), None
    for line in lines:
        if heredoc is not None:
            heredoc = None if line.strip() == heredoc else heredoc
            continue
        if match := HEREDOC.search(line):
            heredoc = match.group(1)
            line = line[: match.start()]  # noqa: PLW2901 - the rest is the heredoc marker
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        lexer.commenters = "#"
        current: list[str] = []
        tokens = list(lexer)
        skip_next = False
        for token in tokens:
            if skip_next:
                skip_next = False
            elif token in {"&&", "||", "|", ";"}:
                result.append(current)
                current = []
            elif token in {">", ">>", "<", "2>"}:
                skip_next = True
            elif not current and re.match(r"^\w+=", token):
                continue
            else:
                current.append(token)
        result.append(current)
    return [c for c in result if c]


def all_commands() -> list[tuple[str, list[str]]]:
    return [(b.doc, argv) for doc in RUN_DOCS for b in shell_blocks(doc) for argv in commands(b.script())]


def check_nox(argv: list[str]) -> None:
    from test_ci_pipelines import nox_sessions  # noqa: PLC0415 - one reader of noxfile.py

    assert argv[1] == "-s", f"{shlex.join(argv)}: call one session with -s"
    rest = argv[2:]
    sessions = rest[: rest.index("--")] if "--" in rest else rest
    posargs = rest[rest.index("--") + 1 :] if "--" in rest else []
    assert set(sessions) <= nox_sessions(), f"{shlex.join(argv)}: unknown nox session"
    if len(sessions) == 1 and sessions[0] in CODERBUNDLE_SESSIONS:
        check_coderbundle([*CODERBUNDLE_SESSIONS[sessions[0]], *posargs], shlex.join(argv))
    else:
        assert not posargs or sessions[0] not in CODERBUNDLE_SESSIONS


def check_coderbundle(args: list[str], shown: str) -> None:
    if args and args[0] in NEED_VALUES_FILE and not {"-h", "--help"} & set(args):
        assert "-f" in args or "--values" in args, f"{shown}: {args[0]} without -f fails; name a values file"
    stderr, code = io.StringIO(), 0
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(stderr):
        try:
            _parser().parse_args(args)
        except SystemExit as exc:  # --help and --version exit 0, usage errors 2
            code = exc.code
    assert code == 0, f"{shown}: coderbundle rejects it: {stderr.getvalue().strip()}"


def check_known(argv: list[str]) -> None:
    program, words, flags = argv[0], [argv[0]], []
    takes_value = VALUE_FLAGS.get(program, set()) | GLOBAL_FLAGS.get(program, set())
    tokens = iter(argv[1:])
    for token in tokens:
        if token == "--":  # noqa: S105 - the end of options, not a password
            break
        if token.startswith("-"):
            name = token.split("=", 1)[0]
            flags.append(name)
            if name in takes_value and "=" not in token:
                next(tokens, None)
        else:
            words.append(token)
    keys = [k for k in KNOWN if tuple(words[: len(k)]) == k]
    assert keys, f"{shlex.join(argv)}: not a subcommand this check knows; add it to KNOWN from its docs"
    allowed = KNOWN[max(keys, key=len)] | GLOBAL_FLAGS.get(program, set())
    unknown = [f for f in flags if f not in allowed]
    assert not unknown, f"{shlex.join(argv)}: unknown flags {unknown}"


@pytest.mark.parametrize(
    ("doc", "argv"), all_commands(), ids=lambda v: shlex.join(v) if isinstance(v, list) else v
)
def test_documented_command_is_valid(doc, argv):
    assert ".venv/bin/" not in argv[0], f"{doc}: no step creates .venv; use a nox session"
    assert argv[0] != "coderbundle", f"{doc}: coderbundle is not on PATH; use `nox -s cli -- ...`"
    assert argv[0] in PROGRAMS, f"{doc}: {argv[0]}: not a program the docs may call"
    if argv[0] == "nox":
        check_nox(argv)
    elif argv[0] in {"coder", "kubectl", "helm"}:
        check_known(argv)


def test_every_block_runs_offline_or_says_what_it_needs():
    unmarked = [
        f"{b.doc}: {b.script().splitlines()[0] if b.script().strip() else b.text[:40]}"
        for doc in RUN_DOCS
        for b in shell_blocks(doc)
        if not b.offline and not NEEDS_MARK.match(b.mark)
    ]
    assert not unmarked, f"mark each with {OFFLINE_MARK} or <!-- needs: what -->: {unmarked}"


def inline_commands() -> list[tuple[str, list[str]]]:
    """Commands with arguments quoted in the text (`nox -s x -- ...`), by page; a bare session is a name."""
    found = []
    for doc in RUN_DOCS:
        quoted = INLINE_NOX.findall(FENCE.sub("", (REPO / doc).read_text()))
        # <placeholders> are the reader's to fill.
        found += [(doc, shlex.split(cmd)) for cmd in quoted if " -- " in cmd and "<" not in cmd]
    return found


@pytest.mark.parametrize(
    ("doc", "argv"), inline_commands(), ids=lambda v: shlex.join(v) if isinstance(v, list) else v
)
def test_quoted_nox_command_is_valid(doc, argv):
    assert doc in RUN_DOCS
    check_nox(argv)


def test_each_run_doc_has_offline_blocks():
    for doc in GUIDES:
        assert any(b.offline for b in shell_blocks(doc)), f"{doc}: mark offline blocks with {OFFLINE_MARK}"


def test_the_checker_rejects_what_it_should():
    with pytest.raises(AssertionError, match="unknown flags"):
        check_known(["coder", "tokens", "create", "--lifetme", "8760h"])
    with pytest.raises(AssertionError, match="not a subcommand"):
        check_known(["kubectl", "apply", "-f", "x.yaml"])
    with pytest.raises(AssertionError, match="coderbundle rejects it"):
        check_nox(["nox", "-s", "publish", "--", "--dry-runn"])
    with pytest.raises(AssertionError, match="unknown nox session"):
        check_nox(["nox", "-s", "vault_setup"])
    text = "$ cat > f <<'EOF'\na: 1\nEOF\n$ nox -s cli -- --help\noutput\n"
    heredoc = Block("x", "console", text, offline=True)
    assert heredoc.script() == "cat > f <<'EOF'\na: 1\nEOF\nnox -s cli -- --help\n"
    assert commands(heredoc.script()) == [["cat"], ["nox", "-s", "cli", "--", "--help"]]


# --- words and links -----------------------------------------------------------------------


@pytest.mark.parametrize("doc", OWN_DOCS)
def test_no_developer_words_or_missing_paths(doc):
    text = (REPO / doc).read_text()
    for word in ("seed", "embedded"):
        hits = [line for line in text.splitlines() if re.search(rf"\b{word}\b", line, re.IGNORECASE)]
        assert not hits, f"{doc}: say what a user understands instead of {word!r}: {hits[0]}"
    assert ".venv/bin/" not in text, f"{doc}: no step creates .venv; use a nox session"
    for line in text.splitlines():
        assert not re.match(r"^\s*(\$ )?coderbundle ", line), f"{doc}: coderbundle is not on PATH: {line}"


def _anchors(path: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    text = FENCE.sub("", path.read_text())
    headings = re.findall(r"^#+ (.+)$", text, re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("doc", OWN_DOCS)
def test_links_and_anchors_resolve(doc):
    path = REPO / doc
    for target in re.findall(r"\]\(([^)\s]+)\)", FENCE.sub("", path.read_text())):
        if re.match(r"^[a-z]+://", target):
            continue
        file, _, anchor = target.partition("#")
        dest = (path.parent / file).resolve() if file else path
        assert dest.exists(), f"{doc}: link to a missing file: {target}"
        if anchor and dest.suffix == ".md":
            assert anchor in _anchors(dest), f"{doc}: no heading for #{anchor} in {file or doc}"


def test_coder_setup_has_the_anchors_the_original_chart_readme_links():
    assert _anchors(REPO / "docs" / "CODER_SETUP.md") >= ORIGINAL_README_ANCHORS


def test_readme_links_every_doc():
    readme = (REPO / "README.md").read_text()
    linked = set(re.findall(r"\]\((docs/[\w.-]+\.md)[#)]", readme))
    missing = {f"docs/{p.name}" for p in (REPO / "docs").glob("*.md")} - linked
    assert not missing, f"README.md links none of {sorted(missing)}"


# --- the offline blocks, run as written ----------------------------------------------------


def _offline_blocks() -> list[Block]:
    return [b for doc in RUN_DOCS for b in shell_blocks(doc) if b.offline]


@pytest.fixture(scope="module")
def doc_repo(tmp_path_factory):
    from test_ci_pipelines import copy_repo  # noqa: PLC0415 - one way to copy the repository

    return copy_repo(tmp_path_factory, "docs")


@pytest.mark.slow
@pytest.mark.parametrize("block", _offline_blocks(), ids=lambda b: f"{b.doc}:{b.script().splitlines()[0]}")
def test_offline_block_runs_as_written(block, doc_repo):
    if not all(shutil.which(p) for p in ("bash", "terraform")):
        pytest.skip("bash and terraform are needed to run the docs' offline blocks")
    pytest.importorskip("nox", reason="nox is not installed here (it is in the test dependency group)")
    # `python3` and `nox` are this interpreter's; no Coder, registry or Vault is configured.
    unset = ("CODER_", "CODERBUNDLE_", "VAULT_", "NOX_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(unset)}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    proc = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block.script()],
        cwd=doc_repo,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    output = f"{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    assert proc.returncode == 0, f"{block.doc}:\n{block.script()}\n{output}"


# --- what the docs claim about the tool stays true (issue 21, item 10) -----------------------------


# Where validate would read a suppression comment from a template, were there one.
_FINDING_CODE = ("validate.py", "findings.py", "hcl.py", "schema.py", "schema_blocks.py", "schema_values.py")


def _code_suppresses_findings() -> bool:
    """Whether validate honours an in-source suppression: a string it looks for in a template."""
    quoted = re.compile(r"[\"'][^\"'\n]*\b(?:suppress\w*|noqa|ignore|disable)\b[^\"'\n]*[\"']", re.IGNORECASE)
    package = REPO / "tools" / "coderbundle"
    sources = [package / name for name in _FINDING_CODE] + sorted((package / "rules").glob("*.py"))
    return any(quoted.search(p.read_text(encoding="utf-8")) for p in sources)


def test_rules_md_mentions_no_suppressions_the_code_does_not_have():
    text = (REPO / "docs" / "rules.md").read_text(encoding="utf-8")
    assert not _code_suppresses_findings(), "validate reads suppressions now: document them in rules.md"
    mentions = [m.group(0) for m in re.finditer(r"[^.(]*\bsuppress\w*[^.)]*", text, re.IGNORECASE)]
    # The one allowed mention says there are none.
    claims = [m for m in mentions if not re.search(r"\bno\b[^.]*\bsuppressions\b", m, re.IGNORECASE)]
    assert not claims, f"docs/rules.md mentions suppressions validate does not implement: {claims[0]!r}"


def test_values_files_are_given_with_the_secrets_last(tmp_path):
    """Later -f files win (chart_values, as Helm): the docs name the secrets file after the values."""
    from coderbundle.chart_values import read_and_check  # noqa: PLC0415
    from coderbundle.errors import ToolError  # noqa: PLC0415

    first, last = tmp_path / "coder.yaml", tmp_path / "secrets.yaml"
    first.write_text("coder:\n  oidc:\n    clientSecret: from-the-values\n")
    last.write_text("coder:\n  oidc:\n    clientSecret: from-the-secrets\n")
    own, _ = read_and_check([first, last], REPO / "chart", error=ToolError)
    assert own["coder"]["oidc"]["clientSecret"] == "from-the-secrets"
    checked = 0
    for doc in RUN_DOCS:
        for line in (REPO / doc).read_text(encoding="utf-8").splitlines():
            files = re.findall(r"(?:^|\s)-f\s+(\S+)", line)
            if len(files) < 2 or not any("secret" in f for f in files):
                continue
            checked += 1
            secrets = [i for i, f in enumerate(files) if "secret" in f]
            assert secrets[-1] == len(files) - 1, (
                f"{doc}: the secrets file must come last (later wins): {line}"
            )
            assert secrets[0] > 0, f"{doc}: the values come before the secrets: {line}"
    assert checked, "no documented command gives a values and a secrets file"


def test_templates_md_does_not_say_the_providers_cannot_be_downloaded():
    text = (REPO / "docs" / "templates.md").read_text(encoding="utf-8")
    assert "cannot be downloaded in this environment" not in text
    assert not re.search(r"\bin this environment\b", text), "say where: without the registries or the mirrors"


def test_the_project_changelog_has_an_unreleased_section():
    path = REPO / "CHANGELOG.md"
    assert path.is_file(), "CHANGELOG.md is missing"
    text = path.read_text(encoding="utf-8")
    assert re.search(r"^## \[?Unreleased\]?\s*$", text, re.MULTILINE), (
        "CHANGELOG.md: no '## Unreleased' section"
    )
    unreleased = re.split(r"^## ", text, flags=re.MULTILINE)[1]
    assert re.search(r"^### (Added|Changed|Fixed|Removed)", unreleased, re.MULTILINE), (
        "an empty Unreleased section"
    )
