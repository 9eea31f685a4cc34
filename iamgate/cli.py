"""`iamgate`: argument parsing only; the work happens in the pipeline."""
from __future__ import annotations

import argparse
import gc
import os
import sys

from . import __version__
from .commands import COMMANDS, UsageError
from .config import ConfigError
from .escape import terminal
from .reference.support import SupportDataError
from .usage.baseline_format import BaselineError


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="iamgate", description="Least-privilege gate for AWS IAM: what the code grants vs. what CloudTrail "
                                    "shows is used.")
    parser.add_argument("--version", action="version", version=f"iamgate {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    first = next((a for a in argv or () if not a.startswith("-")), None)
    commands = COMMANDS.loaded_with(first.replace("-", "_")) if first else {}
    if not first or first not in commands:  # help, a typo, or no command: list them all
        commands = COMMANDS.all()
    for name, cls in sorted(commands.items()):
        cmd = cls()
        p = sub.add_parser(name, help=cmd.help, description=cmd.help)
        cmd.configure(p)
        p.set_defaults(_command=cmd)
    return parser


def tune_gc() -> None:
    """A short-lived batch run whose data has no reference cycles: reference counting frees it, and
    the cycle collector only rescans the large action sets (~22,000 strings each, GC-tracked), which
    more than doubled NotAction expansion and cost a third of `check` on 1,000 roles."""
    gc.disable()


def main(argv: list[str] | None = None) -> int:
    collecting = gc.isenabled()
    tune_gc()
    try:
        return _main(sys.argv[1:] if argv is None else argv)
    finally:
        if collecting:  # callers in the same process (tests, the Action's entrypoint) get it back
            gc.enable()


def _main(argv: list[str]) -> int:
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if not getattr(args, "_command", None):
        parser.print_help(sys.stderr)
        return 2
    if args._command.long_running:
        gc.enable()
    try:
        return args._command.run(args)
    except (UsageError, ConfigError, BaselineError, SupportDataError) as e:
        print(f"iamgate: error: {terminal(e)}", file=sys.stderr)  # messages quote the repo's text
        return 2
    except KeyboardInterrupt:
        print("iamgate: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as e:  # noqa: BLE001 - a bug: exit 2 ("could not decide"), never 1 ("gate failed")
        if os.environ.get("IAMGATE_DEBUG"):
            raise
        print(f"iamgate: internal error: {type(e).__name__}: {terminal(e)} (please report it; IAMGATE_DEBUG=1 shows "
              "the traceback)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
