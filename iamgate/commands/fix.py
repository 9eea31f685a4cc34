"""`iamgate fix`: the least-privilege replacement of each principal's statements, as a diff or written."""
from __future__ import annotations

import sys

from .. import config as config_mod
from ..escape import terminal, terminal_block
from ..pipeline import analyse
from ..words import plural
from . import COMMANDS, Command, UsageError
from .check import (add_history_arguments, add_scan_arguments, add_time_arguments, existing_inputs,
                    history_request, scan_options, with_time_rules)

MAX_LISTED = 8


def _short(actions, limit: int = MAX_LISTED) -> str:
    from ..reference.catalog import action_names
    shown = ", ".join(action_names(actions[:limit]))
    return shown + (f" and {len(actions) - limit} more" if len(actions) > limit else "")


def summary_lines(remediation) -> list[str]:
    """Per principal: what goes, and what stays and why (unobservable ones are kept because they cannot be judged)."""
    lines = []
    for p in remediation.principals:
        lines.append(f"{p.principal}: drops {len(p.dropped)} unused action(s): {_short(p.dropped)}")
        for reason, acts in p.kept.items():
            lines.append(f"  keeps {len(acts)} {reason}: {_short(list(acts))}")
    return lines


def deployment_lines(report, remediation) -> list[str]:
    """Where a principal is deployed more than once: it keeps what any deployment used (one rewrite of the
    shared source), and which deployment needs what where that differs."""
    from ..formats import grant_differs, judged_in, partly_used
    from ..reference.catalog import sort_actions
    fixed = {p.principal for p in remediation.principals}
    lines = []
    for r in report.results:
        pid = r.principal.id
        where, partly, differs = judged_in(r), partly_used(r), grant_differs(report, pid)
        if pid not in fixed or not (where or differs):
            continue
        lines.append(f"{pid}: keeps what any deployment used ({where})" if where else f"{pid}:")
        for names, acts in partly:
            lines.append(f"  {' and '.join(names)} alone need{'s' if len(names) == 1 else ''} {_short(sort_actions(acts))}")
        if differs:
            lines.append("  the grant differs per deployment; each needs what its own statements grant:")
            lines += [f"    {d}" for d in differs]
    return lines


def aws_recommendations(results, remediation, catalog) -> list[str]:
    """AWS's own recommended policy (unused-access baselines) beside iamgate's fix, and how they differ."""
    dropped = {p.principal: p.dropped for p in remediation.principals}
    lines: list[str] = []
    for r in results:
        if r.baseline is not None and r.baseline.unused_access is not None:
            from ..judge.unused_access import recommendation_lines
            lines += recommendation_lines(r, dropped.get(r.principal.id, ()), catalog)
    return lines


@COMMANDS.register
class Fix(Command):
    name = "fix"
    help = "print (or --write) the least-privilege version of each policy statement, as a unified diff"

    def configure(self, p) -> None:
        add_scan_arguments(p)
        add_time_arguments(p)
        p.add_argument("--baselines", action="append", default=[], metavar="PATH",
                       help="baseline files or folders; repeatable")
        p.add_argument("--write", action="store_true", help="apply the changes to the files")
        p.add_argument("--compact", action="store_true",
                       help="also use wildcards that reach beyond the pattern they replace, where today's catalog "
                            "proves they grant only kept actions (they widen as AWS adds actions)")
        p.add_argument("--quiet", "-q", action="store_true", help="no summary on stderr")
        add_history_arguments(p, "git revision the change is compared with (a PR's base): actions it does not "
                                 "grant are new, and fix keeps them")

    def run(self, args) -> int:
        from ..fix.files import fix_files, write
        from ..fix.plan import WIDENING_WARNING, plan
        from ..reference.catalog import load_catalog
        cfg = with_time_rules(config_mod.load(args.config), args)
        baselines = existing_inputs(args, cfg)
        if not baselines:
            raise UsageError("fix needs --baselines (or `baselines:` in the config): without usage nothing is unused")
        catalog = load_catalog()
        report = analyse(args.paths, baselines, cfg, catalog=catalog, options=scan_options(args, cfg),
                         history=history_request(args, cfg))
        remediation = plan(report.results, catalog, cfg, compact_wildcards=args.compact)
        files, problems = fix_files(remediation, roots=report.roots)
        problems = list(remediation.problems) + problems
        err = sys.stderr
        for e in report.errors:
            print(terminal(f"iamgate: error: {e.file}{':' + str(e.line) if e.line else ''}: {e.message}"), file=err)
        if not args.quiet:
            for line in summary_lines(remediation) + deployment_lines(report, remediation):
                print(f"iamgate fix: {terminal(line)}", file=err)
            for line in aws_recommendations(report.results, remediation, catalog):
                print(f"iamgate fix: {terminal(line)}", file=err)
        for p in problems:
            print(f"iamgate fix: warning: {terminal(p)}", file=err)
        if remediation.wildcards:
            print("iamgate fix: warning: " + WIDENING_WARNING.format(version=catalog.version), file=err)
        if args.write:
            write(files)
            if not args.quiet:
                n = sum(len({e.statement for e in f.edits}) for f in files)
                print(f"iamgate fix: rewrote {n} statement(s) in {len(files)} file(s)", file=err)
        else:  # a terminal acts on control characters from the files: shown escaped there, raw into a file or pipe
            diff = "".join(f.diff for f in files)
            sys.stdout.write(terminal_block(diff) if sys.stdout.isatty() else diff)
        if not remediation.principals and not remediation.narrowings and not args.quiet:
            print("iamgate fix: " + (f"nothing rewritten; see the {plural(len(problems), 'warning')} above for what to "
                                     "fix by hand" if problems else "nothing to fix: no principal has unused actions "
                                     "or grants wider than the resources it used"), file=err)
        elif remediation.narrowings and not args.quiet:
            left = {p.location for p in problems if p.message.startswith("Resource not narrowed")}
            n = sum(1 for x in remediation.narrowings if x.location not in left)
            print(f"iamgate fix: {n} statement(s) granted on `*` or a wildcard ARN narrowed to the resources used"
                  + (f"; {len(remediation.narrowings) - n} left to narrow by hand" if n < len(remediation.narrowings)
                     else ""), file=err)
        return 2 if report.errors else 0  # an input it could not read is left unfixed: an error
