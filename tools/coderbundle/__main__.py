"""Command-line edge: argparse, dispatch, and the one place errors are printed.

Steps never see argparse; they receive keyword arguments and ``Settings``.
Exit codes: 0 success, 1 findings or a failed step, 2 usage or environment
errors, 3 an unexpected bug (a short line; the traceback with -v), 130 interrupted.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.text import Text

from coderbundle import __version__
from coderbundle.console import err_console
from coderbundle.errors import (
    EXIT_USAGE,
    CommandFailed,
    ToolError,
    UsageError,
    ValidationFailed,
)
from coderbundle.files import locked
from coderbundle.settings import find_root, load_settings

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from coderbundle.settings import Settings

__all__ = ["main"]

EXIT_BUG = 3
EXIT_INTERRUPTED = 130

DESCRIPTION = "Render, validate, build and publish the bundle's Coder workspace templates."
EXIT_CODES = """exit codes:
  0    success: nothing wrong was found
  1    findings: a template has problems, or a step (build, push) failed; see the messages
  2    usage or environment: a bad option, a wrong setting in bundle.toml or template.toml,
       a bad CODER_URL, a missing token, Docker daemon or file; fix it and run again
  3    a bug in coderbundle; please report it (run again with -v for the details)
  130  interrupted (Ctrl-C)"""


def _cmd_render(args: argparse.Namespace, settings: Settings) -> int:
    from coderbundle.pipeline import render_all  # noqa: PLC0415 - keep start-up fast

    for rendered in render_all(settings, args.names):
        where = rendered.path.relative_to(settings.root)
        err_console.print(f"rendered {rendered.name} -> {where}", markup=False)
    return 0


def _cmd_validate(args: argparse.Namespace, settings: Settings) -> int:
    from coderbundle.pipeline import render_all  # noqa: PLC0415
    from coderbundle.validate import print_report, validate_templates  # noqa: PLC0415

    report = validate_templates(render_all(settings, args.names), settings, use_cache=args.cache)
    print_report(report, fmt=args.format)
    return 0 if report.ok else 1


def _cmd_test(args: argparse.Namespace, settings: Settings) -> int:
    from coderbundle.pipeline import render_all  # noqa: PLC0415
    from coderbundle.plantest import plan_templates, print_plan_report  # noqa: PLC0415

    report = plan_templates(
        render_all(settings, args.names), settings, choices=args.choices, workers=args.workers
    )
    print_plan_report(report, fmt=args.format)
    return 0 if report.ok else 1


def _cmd_mirror(args: argparse.Namespace, settings: Settings) -> int:
    from coderbundle.mirror_modules import mirror_modules, verify_mirror  # noqa: PLC0415

    if args.verify:
        count = verify_mirror(args.directory)
        err_console.print(f"{args.directory}: {count} files match MIRROR.json", markup=False)
        return 0
    urls = {}
    for item in args.registry_url:
        host, sep, url = item.partition("=")
        if not sep or not host or not url:
            msg = (
                f"--registry-url {item!r}: expected HOST=URL (registry.coder.com=https://proxy.example.com/)"
            )
            raise UsageError(msg)
        urls[host] = url
    result = mirror_modules(settings, args.directory, registry_urls=urls)
    for module, count in sorted(result.modules.items()):
        err_console.print(f"{module}: {count} files", markup=False)
    err_console.print(
        f"{len(result.modules)} modules in {result.directory}; serve them with "
        f"[terraform] module_mirror = {str(result.directory)!r}",
        markup=False,
    )
    return 0


def _cmd_changes(args: argparse.Namespace, settings: Settings) -> int:
    from coderbundle.changes import changes_since_git, changes_since_plan, print_changes  # noqa: PLC0415
    from coderbundle.pipeline import render_all  # noqa: PLC0415

    rendered = render_all(settings, args.names)
    if args.since:
        found = changes_since_git(rendered, settings, args.since)
    else:
        found = changes_since_plan(rendered, settings)
    print_changes(found, fmt=args.format)
    return 0


def _cmd_publish(args: argparse.Namespace, settings: Settings) -> int:
    from coderbundle.pipeline import publish_all  # noqa: PLC0415
    from coderbundle.publish import print_result  # noqa: PLC0415

    settings = _rollout_overrides(args, settings)
    try:
        result = publish_all(
            settings,
            args.names,
            env=os.environ,
            dry_run=args.dry_run,
            fmt=args.format,
            build_images=args.images,
            accept_breaking=args.accept_breaking,
            allow_default_image=args.allow_default_image,
            archive_older_than=args.archive_older_than,
        )
    except ValidationFailed as exc:
        if args.format != "json" or exc.report is None:
            raise
        from coderbundle.publish import validation_failed_result  # noqa: PLC0415

        mode = "dry-run" if args.dry_run else "publish"
        mode = mode if settings.coder_url else "plan-only"
        print_result(validation_failed_result(exc.report, mode=mode), fmt="json")
        return exc.exit_code
    print_result(result, fmt=args.format)
    return 0 if result.ok else 1


def _rollout_overrides(args: argparse.Namespace, settings: Settings) -> Settings:
    """``--canary`` and ``--canary-timeout`` over ``[rollout]`` (and its environment variables)."""
    from coderbundle.settings import canary_timeout, parse_canary  # noqa: PLC0415 - publish only

    changes: dict[str, Any] = {}
    if args.canary is not None:
        changes["canary"] = parse_canary(args.canary, "--canary", UsageError)
    if args.canary_timeout is not None:
        changes["canary_timeout_s"] = canary_timeout(args.canary_timeout, "--canary-timeout", UsageError)
    return dataclasses.replace(settings, **changes) if changes else settings


def _cmd_impact(args: argparse.Namespace, settings: Settings) -> int:
    from coderbundle.rollout.impact import impact_template, print_impact  # noqa: PLC0415

    result = impact_template(
        settings, args.name, env=os.environ, version=args.version, owner=args.owner, workers=args.workers
    )
    print_impact(result, fmt=args.format)
    return 0 if result.ok else 1


def _cmd_deploy(args: argparse.Namespace, settings: Settings) -> int:
    from coderbundle.deploy import deploy_chart  # noqa: PLC0415 - keep start-up fast

    result = deploy_chart(
        settings,
        values_files=args.values,
        namespace=args.namespace,
        release=args.release,
        dry_run=args.dry_run,
        output_dir=args.output_dir,
        env=os.environ,
        home=Path.home(),
    )
    if args.output_dir is not None:
        err_console.print(f"rendered manifests written to {args.output_dir}", highlight=False)
    if result.manifests:
        versions = " and ".join(result.validated_for)
        count = len(result.manifests)
        err_console.print(f"rendered {count} manifests; valid for Kubernetes {versions}", markup=False)
        for ref in result.crd_checked:
            err_console.print(
                f"  {ref}: custom resource, checked against chart/ci/crd-schemas.json", markup=False
            )
    if result.applied:
        err_console.print(f"release {args.release} deployed to namespace {args.namespace}", markup=False)
    return 0


def _cmd_vault_setup(args: argparse.Namespace, settings: Settings) -> int:
    from coderbundle.vault import setup_vault  # noqa: PLC0415

    plan = setup_vault(
        settings,
        values_files=args.values,
        namespace=args.namespace,
        release=args.release,
        address=args.vault_addr or os.environ.get("VAULT_ADDR", ""),
        token=os.environ.get("VAULT_TOKEN", ""),
        dry_run=args.dry_run,
    )
    verb = "would change" if args.dry_run else "changed"
    for action in plan.actions:
        err_console.print(f"{verb}: {action.kind} {action.path}", highlight=False, markup=False)
    for path in plan.unchanged:
        err_console.print(f"unchanged: {path}", highlight=False, markup=False)
    for name in plan.missing:
        err_console.print(
            Text.assemble(("not in the values files:", "yellow"), f" {name} (write it to Vault yourself)")
        )
    return 0


def _cmd_images(args: argparse.Namespace, settings: Settings) -> int:
    from coderbundle.images import build_images  # noqa: PLC0415 - keep start-up fast

    results = build_images(
        settings,
        args.names,
        push=args.push,
        upstream_image=args.upstream_image or settings.upstream_image,
        environ=os.environ,
    )
    pushed = sum(1 for r in results if r.pushed)
    line = f"{len(results)} image(s) ready, {pushed} in the registry; see build/images.json"
    err_console.print(line, markup=False)
    return 0


class _SubParsers(argparse._SubParsersAction):  # type: ignore[type-arg]  # noqa: SLF001
    """Every command's help ends with the exit codes, as the top-level help does."""

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        kwargs.setdefault("epilog", EXIT_CODES)
        kwargs.setdefault("description", kwargs.get("help"))
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        parser: argparse.ArgumentParser = super().add_parser(name, **kwargs)
        parser.register("action", "parsers", _SubParsers)  # nested commands (images build) too
        return parser


def _positive(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    return int(_at_least(text, 1, int, "a whole number of at least 1"))


def _days(text: str) -> float:
    """An argparse type: a number of days, 0 or more."""
    return _at_least(text, 0, float, "a number of days (0 or more)")


def _at_least(text: str, minimum: float, cast: Callable[[str], float], what: str) -> float:
    try:
        value = cast(text)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        msg = f"expected {what}, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def _add_mirror(sub: Any) -> None:
    """The ``mirror`` subcommand (coderbundle.mirror_modules)."""
    p = sub.add_parser(
        "mirror", help="download every pinned registry module and the modules they call into a module mirror"
    )
    p.add_argument("directory", type=Path, metavar="DIR", help="the mirror folder (replaced whole)")
    p.add_argument(
        "--registry-url",
        action="append",
        default=[],
        metavar="HOST=URL",
        help="read HOST's service discovery from URL (a registry proxy)",
    )
    p.add_argument(
        "--verify", action="store_true", help="check DIR against its MIRROR.json; download nothing"
    )
    p.set_defaults(func=_cmd_mirror)


def _add_publish(sub: Any) -> None:
    p = sub.add_parser("publish", help="render, validate, push changed templates to Coder")
    p.add_argument("names", nargs="*", metavar="NAME", help="templates (default: all)")
    p.add_argument("--dry-run", action="store_true", help="compare with Coder; push nothing")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument(
        "--no-images",
        dest="images",
        action="store_false",
        help="do not build and push images first (use build/images.json as it is)",
    )
    p.add_argument(
        "--accept-breaking",
        action="store_true",
        help="activate new versions the upgrade-safety gate blocks (docs/publishing.md)",
    )
    p.add_argument(
        "--allow-default-image",
        action="store_true",
        help="publish templates whose image was not built here with their default image",
    )
    p.add_argument(
        "--canary",
        metavar="USER[,USER...]",
        help="prove a new version on these users' workspaces (or a fresh test workspace each) "
        "before promoting it; 'me' is the token's user; '' turns [rollout] canary off",
    )
    p.add_argument(
        "--canary-timeout", metavar="DURATION", help="how long a canary may take to be ready (10m, 90s)"
    )
    p.add_argument(
        "--archive-older-than",
        type=_days,
        metavar="DAYS",
        help="afterwards, archive versions older than DAYS that are not active and no workspace uses",
    )
    p.set_defaults(func=_cmd_publish)


def _add_rollout(sub: Any) -> None:
    """The rollout verbs (coderbundle.rollout, docs/rollouts.md)."""
    p = sub.add_parser("rollback", help="make the version that was active before active again (rollout log)")
    p.add_argument("name", metavar="NAME", help="the template")
    p.add_argument("--to", default="", metavar="VERSION", help="this version instead of the one before")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(func=_cmd_rollback)
    p = sub.add_parser("rollout-log", help="every promotion coderbundle recorded for a template")
    p.add_argument("name", metavar="NAME", help="the template")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(func=_cmd_rollout_log)
    p = sub.add_parser("outdated", help="workspaces not on their template's active version (--update them)")
    p.add_argument("names", nargs="*", metavar="NAME", help="templates (default: the bundle's)")
    p.add_argument("--update", action="store_true", help="move each listed workspace to the active version")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(func=_cmd_outdated)
    p = sub.add_parser("diff", help="the repository's template against the active version: files, variables")
    p.add_argument("name", metavar="NAME", help="the template")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--exit-code", action="store_true", help="exit 1 when anything differs (as git diff)")
    p.set_defaults(func=_cmd_diff)


def _cmd_rollback(args: argparse.Namespace, settings: Settings) -> int:
    from coderbundle.rollout.commands import rollback_command  # noqa: PLC0415

    return rollback_command(settings, args.name, to=args.to, fmt=args.format)


def _cmd_rollout_log(args: argparse.Namespace, settings: Settings) -> int:
    from coderbundle.rollout.commands import log_command  # noqa: PLC0415

    return log_command(settings, args.name, fmt=args.format)


def _cmd_outdated(args: argparse.Namespace, settings: Settings) -> int:
    from coderbundle.rollout.commands import outdated_command  # noqa: PLC0415

    return outdated_command(settings, args.names, update=args.update, fmt=args.format)


def _cmd_diff(args: argparse.Namespace, settings: Settings) -> int:
    from coderbundle.rollout.commands import diff_command  # noqa: PLC0415

    return diff_command(settings, args.name, env=os.environ, fmt=args.format, exit_code=args.exit_code)


def _add_impact(sub: Any) -> None:
    """The ``impact`` subcommand (coderbundle.rollout.impact)."""
    p = sub.add_parser(
        "impact", help="what a candidate version would replace or destroy in each existing workspace"
    )
    p.add_argument("name", metavar="NAME", help="the template")
    p.add_argument(
        "--version",
        default="",
        metavar="VERSION",
        help="a version already pushed (default: the repository's)",
    )
    p.add_argument("--owner", default="", metavar="USER", help="only this user's workspaces")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--workers", type=_positive, default=2, help="workspaces planned at a time (default 2)")
    p.set_defaults(func=_cmd_impact)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="coderbundle",
        description=DESCRIPTION,
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.register("action", "parsers", _SubParsers)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--root", type=Path, help="bundle root (default: found from the cwd)")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log every command run; show tracebacks of bugs"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("render", help="render templates into build/templates/")
    p.add_argument("names", nargs="*", metavar="NAME", help="templates (default: all)")
    p.set_defaults(func=_cmd_render)

    p = sub.add_parser("validate", help="render, then check every template")
    p.add_argument("names", nargs="*", metavar="NAME", help="templates (default: all)")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--no-cache", dest="cache", action="store_false", help="re-check everything")
    p.set_defaults(func=_cmd_validate)

    p = sub.add_parser(
        "test", help="plan every template x preset x start/stop with real terraform; check invariants"
    )
    p.add_argument("names", nargs="*", metavar="NAME", help="templates (default: all)")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument(
        "--no-choices",
        dest="choices",
        action="store_false",
        help="only defaults and presets (not every agent, repository, dotfiles and option)",
    )
    p.add_argument("--workers", type=_positive, default=2, help="plans at a time (default 2)")
    p.set_defaults(func=_cmd_test)

    _add_mirror(sub)

    _add_publish(sub)
    _add_rollout(sub)
    _add_impact(sub)

    p = sub.add_parser("deploy", help="deploy the Coder server chart (helm upgrade --install)")
    p.add_argument("-f", "--values", type=Path, action="append", default=[], metavar="FILE")
    p.add_argument("--namespace", default="code", help="release namespace (default: code)")
    p.add_argument("--release", default="coder", help="release name (default: coder)")
    p.add_argument("--dry-run", action="store_true", help="render offline and validate; no cluster")
    p.add_argument(
        "--output-dir", type=Path, default=None, metavar="DIR", help="with --dry-run: write the manifests"
    )
    p.set_defaults(func=_cmd_deploy)

    p = sub.add_parser("vault-setup", help="put the chart's secrets, policy and auth role in Vault")
    p.add_argument("-f", "--values", type=Path, action="append", default=[], metavar="FILE")
    p.add_argument("--namespace", default="code", help="release namespace (default: code)")
    p.add_argument("--release", default="coder", help="release name (default: coder)")
    p.add_argument("--vault-addr", default="", help="Vault address (default: VAULT_ADDR)")
    p.add_argument("--dry-run", action="store_true", help="show the changes; make none")
    p.set_defaults(func=_cmd_vault_setup)

    _add_changes_and_doctor(sub)

    p = sub.add_parser("images", help="build (and push) the workspace images in images/")
    images_sub = p.add_subparsers(dest="images_command", required=True, metavar="ACTION")
    p = images_sub.add_parser("build", help="build images base first; skip unchanged ones")
    p.add_argument("names", nargs="*", metavar="NAME", help="images (default: all)")
    p.add_argument("--push", action="store_true", help="push to the registry; record digests")
    p.add_argument(
        "--upstream-image",
        default="",
        help="upstream image of the base (default: [images] upstream_image / CODERBUNDLE_UPSTREAM_IMAGE)",
    )
    p.set_defaults(func=_cmd_images)

    return parser


def _add_changes_and_doctor(sub: Any) -> None:
    p = sub.add_parser("changes", help="what changed per template since the last publish plan (offline)")
    p.add_argument("names", nargs="*", metavar="NAME", help="templates (default: all)")
    p.add_argument("--since", default="", metavar="REF", help="a git commit, tag or branch, not the plan")
    p.add_argument("--format", choices=("text", "json"), default="text", help="json: a list on stdout")
    p.set_defaults(func=_cmd_changes)
    p = sub.add_parser("doctor", help="check what publish and deploy need: one table, exit 1 if a row fails")
    p.add_argument("--format", choices=("text", "json"), default="text", help="json: the table on stdout")
    p = sub.add_parser("completion", help="print a bash completion script: source <(coderbundle completion)")


def _words(parser: argparse.ArgumentParser) -> tuple[list[str], dict[str, list[str]]]:
    """The top-level options and, per subcommand (``images build`` included), its words."""
    top = [s for a in parser._actions for s in a.option_strings]  # noqa: SLF001 - argparse has no public walk
    per: dict[str, list[str]] = {}
    groups = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]  # noqa: SLF001
    for name, sub in (item for group in groups for item in group.choices.items()):
        words = [s for a in sub._actions for s in a.option_strings]  # noqa: SLF001
        nested = [a for a in sub._actions if isinstance(a, argparse._SubParsersAction)]  # noqa: SLF001
        per[name] = words + [c for a in nested for c in a.choices]
    return top, per


def completion_script(parser: argparse.ArgumentParser) -> str:
    """A bash completion script for ``coderbundle``: subcommands, then each one's options."""
    top, per = _words(parser)
    cases = "".join(f"        {name}) words='{' '.join(sorted(w))}' ;;\n" for name, w in sorted(per.items()))
    return (
        "# bash completion for coderbundle (source <(coderbundle completion))\n"
        "_coderbundle() {\n"
        '    local cur="${COMP_WORDS[COMP_CWORD]}" command="" w words skip=""\n'
        '    for w in "${COMP_WORDS[@]:1:COMP_CWORD-1}"; do\n'
        '        if [ -n "$skip" ]; then skip=""; continue; fi\n'
        '        case "$w" in --root) skip=1 ;; -*) ;; *) command="$w"; break ;; esac\n'
        "    done\n"
        '    case "$command" in\n'
        f"{cases}"
        f"        *) words='{' '.join(sorted(per))} {' '.join(top)}' ;;\n"
        "    esac\n"
        '    COMPREPLY=($(compgen -W "$words" -- "$cur"))\n'
        "}\n"
        "complete -o default -F _coderbundle coderbundle\n"
    )


def _run(argv: Sequence[str] | None) -> int:
    args = _parser().parse_args(argv)
    _VERBOSE[0] = args.verbose
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(message)s",
        stream=sys.stderr,
    )
    if args.command == "completion":  # needs no bundle
        print(completion_script(_parser()), end="")  # noqa: T201
        return 0
    root = args.root.resolve() if args.root else find_root(Path.cwd())
    if args.command == "doctor":  # runs when the settings do not load: that is a row of its table
        from coderbundle.doctor import print_checks, run_doctor  # noqa: PLC0415

        return print_checks(run_doctor(root, os.environ, Path.home()), fmt=args.format)
    try:
        settings = load_settings(root, os.environ)
    except ToolError as exc:  # bundle.toml, its values file, a setting: doctor's first rows
        exc.doctor_predicts = True
        raise
    func: Callable[[argparse.Namespace, Settings], int] = args.func
    if args.command in _WRITES_BUILD:  # runs in one checkout take turns with build/ and dist/
        with locked(settings.build_dir):
            return func(args, settings)
    return func(args, settings)


_WRITES_BUILD = frozenset({"render", "validate", "publish", "images", "changes", "diff", "impact"})


_VERBOSE = [False]
DOCTOR_HINT = "  `nox -s doctor` checks everything publish and deploy need"


def doctor_predicts(exc: ToolError) -> bool:
    """A failure `coderbundle doctor` would have shown as a failed row: its error line points at it.

    A missing tool, token, server or kubeconfig (``EnvError``, ``CommandNotFound``,
    ``DeployEnvironmentError``), a token the server rejected or that may not publish
    (``CoderAuthError``), settings or a values file that do not load, a push the registry refused.
    """
    return exc.doctor_predicts


def print_error(message: str) -> None:
    """``error: <message>`` on stderr: the message as plain text (brackets survive, no markup)."""
    err_console.print(Text.assemble(("error:", "bold red"), " ", message), highlight=False)


def main(argv: Sequence[str] | None = None) -> int:  # noqa: PLR0911 - one exit per kind of outcome
    """Run the CLI and return its exit code; every ToolError is printed once here."""
    try:
        return _run(argv)
    except CommandFailed as exc:
        print_error(str(exc))
        if details := exc.details():
            err_console.print(details, markup=False, highlight=False)
        return exc.exit_code
    except ToolError as exc:
        print_error(str(exc))
        if doctor_predicts(exc):
            err_console.print(DOCTOR_HINT, markup=False)
        return exc.exit_code
    except KeyboardInterrupt:
        err_console.print("interrupted", markup=False)
        return EXIT_INTERRUPTED
    except SystemExit as exc:  # argparse: usage errors are 2 already
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    except OSError as exc:  # the disk or the system refused: an environment error, not a bug
        where = f"{exc.filename}: " if exc.filename else ""
        print_error(f"{where}{exc.strerror or exc}; check the path, its permissions and the free space")
        return EXIT_USAGE
    except Exception as exc:  # noqa: BLE001 - the last line of defence reports the bug
        print_error(
            f"unexpected {type(exc).__name__} (a bug in coderbundle); please report it "
            "with the command you ran (run again with -v to see the details)"
        )
        if _VERBOSE[0]:
            traceback.print_exc()
        return EXIT_BUG


if __name__ == "__main__":
    sys.exit(main())
