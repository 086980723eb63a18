"""Command-line edge: argparse, dispatch, and the one place errors are printed.

Steps never see argparse; they receive keyword arguments and ``Settings``.
Exit codes: 0 success, 1 findings or a failed step, 2 usage or environment
errors, 3 an unexpected bug (with traceback), 130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING

from coderbundle import __version__
from coderbundle.console import err_console
from coderbundle.errors import EXIT_USAGE, CommandFailed, ToolError
from coderbundle.settings import find_root, load_settings

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from coderbundle.settings import Settings

__all__ = ["main"]

EXIT_BUG = 3
EXIT_INTERRUPTED = 130


def _cmd_render(args: argparse.Namespace, settings: Settings) -> int:
    from coderbundle.pipeline import render_all  # noqa: PLC0415 - keep start-up fast

    for rendered in render_all(settings, args.names):
        err_console.print(f"rendered {rendered.name} -> {rendered.path.relative_to(settings.root)}")
    return 0


def _cmd_validate(args: argparse.Namespace, settings: Settings) -> int:
    from coderbundle.pipeline import render_all  # noqa: PLC0415
    from coderbundle.validate import print_report, validate_templates  # noqa: PLC0415

    report = validate_templates(render_all(settings, args.names), settings, use_cache=args.cache)
    print_report(report, fmt=args.format)
    return 0 if report.ok else 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="coderbundle", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--root", type=Path, help="bundle root (default: found from the cwd)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every command run")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("render", help="render templates into build/templates/")
    p.add_argument("names", nargs="*", metavar="NAME", help="templates (default: all)")
    p.set_defaults(func=_cmd_render)

    p = sub.add_parser("validate", help="render, then check every template")
    p.add_argument("names", nargs="*", metavar="NAME", help="templates (default: all)")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--no-cache", dest="cache", action="store_false", help="re-check everything")
    p.set_defaults(func=_cmd_validate)

    return parser


def _run(argv: Sequence[str] | None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(message)s",
        stream=sys.stderr,
    )
    root = args.root.resolve() if args.root else find_root(Path.cwd())
    settings = load_settings(root, os.environ)
    func: Callable[[argparse.Namespace, Settings], int] = args.func
    return func(args, settings)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code; every ToolError is printed once here."""
    try:
        return _run(argv)
    except CommandFailed as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
        if details := exc.details():
            err_console.print(details, markup=False, highlight=False)
        return exc.exit_code
    except ToolError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", markup=True, highlight=False)
        return exc.exit_code
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return EXIT_INTERRUPTED
    except SystemExit as exc:  # argparse: usage errors are 2 already
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    except Exception:  # noqa: BLE001 - the last line of defence prints the bug
        err_console.print("unexpected error (a bug in coderbundle); please report it:")
        traceback.print_exc()
        return EXIT_BUG


if __name__ == "__main__":
    sys.exit(main())
