"""`iamgate usage unused-access`: an unused-access analyzer's findings -> one baseline per principal."""
from __future__ import annotations

import json
import re
import sys
from dataclasses import replace
from pathlib import Path

from ..escape import terminal
from ..files import write_json_atomic
from ..usage import baseline_format as fmt
from ..usage import history
from . import UsageError

_ANALYZER_ARN = re.compile(r"^arn:aws[a-z-]*:access-analyzer:([a-z0-9-]+):\d{12}:analyzer/[\w.-]+$")
_ACCOUNT = re.compile(r"^\d{12}$")
SUMMARY_FILE = ".unused-access-summary.json"


def check_args(args) -> None:
    if not args.out:
        raise UsageError("--out is required")
    if getattr(args, "keep", 1) < 1:
        raise UsageError("--keep must be at least 1 day")
    if args.analyzer and not _ANALYZER_ARN.match(args.analyzer):
        raise UsageError(f"--analyzer {args.analyzer}: not an Access Analyzer analyzer ARN "
                         "(arn:aws:access-analyzer:REGION:ACCOUNT:analyzer/NAME)")
    bad = [a for a in args.account if not _ACCOUNT.match(a)]
    if bad:
        raise UsageError(f"--account {bad[0]}: not a 12-digit account id")


def run_unused_access(args, clients=None, clock=None, progress=None) -> int:
    from ..usage import unused_access as ua
    if args.print_policy:
        from ..reference.catalog import load_catalog
        print(json.dumps(ua.required_policy(load_catalog()), indent=2))
        return 0
    check_args(args)
    from ..usage.aws_clients import Clients, SystemClock
    from ..usage.aws_errors import PrincipalError, Stopped
    from .baseline import Progress, parse_duration
    from .usage import baseline_filename, deployment_name, writable_dir, write_error
    deployment = deployment_name(args.deployment) if getattr(args, "deployment", None) else None
    timeout = parse_duration(args.timeout, "--timeout")
    out = writable_dir(args.out)  # before any AWS call: a bad --out fails fast
    region = args.region or (_ANALYZER_ARN.match(args.analyzer).group(1) if args.analyzer else None)
    clients = clients or Clients(region)
    clock = clock or SystemClock()
    progress = progress or Progress()
    reader = ua.UnusedAccessReader(clients.client("accessanalyzer"), clients.client("iam"), clock,
                                   deadline=clock.monotonic() + timeout)
    written: list[str] = []

    def write(b) -> None:
        if deployment:
            b = replace(b, deployment=deployment)
        path = out / baseline_filename(b.principal_arn)
        stored = None if getattr(args, "replace", False) else history.stored(path, b.principal_arn)
        fmt.write(history.merge(stored, b, getattr(args, "keep", history.KEEP_DAYS)), path)  # the analyzer's tracking period joins the history
        written.append(path.name)

    try:
        analyzer = reader.analyzer(args.analyzer)
        progress.note(f"analyzer {analyzer.arn}: {analyzer.type}, {analyzer.tracking_days}-day tracking period, "
                      f"last analysed {analyzer.last_analyzed_at or 'never'}")
        result = ua.collect(reader, analyzer, args.principal, args.account, not args.no_recommendations,
                            progress, on_baseline=write)
    except ua.AnalyzerError as e:
        raise UsageError(str(e)) from None
    except (Stopped, PrincipalError) as e:
        raise UsageError(f"AWS: {e}") from None
    except OSError as e:
        raise write_error(e) from None
    try:
        write_json_atomic(Path(out) / SUMMARY_FILE, {
            "analyzer": analyzer.arn, "type": analyzer.type, "tracking_period_days": analyzer.tracking_days,
            "last_analyzed_at": analyzer.last_analyzed_at, "written": written, "failed": result.errors,
            "skipped_service_linked_roles": result.skipped, "stopped": result.stopped or None})
    except OSError as e:
        raise write_error(e) from None
    not_analysed = sum(1 for b in result.baselines if b.unused_access.analyzed_at is None)
    progress.note(f"{len(written)} baseline(s) written to {args.out} ({not_analysed} not analysed yet), "
                  f"{len(result.errors)} failed, {len(result.skipped)} service-linked role(s) skipped")
    for arn, why in sorted(result.errors.items()):
        print(terminal(f"iamgate: {arn}: {why}"), file=sys.stderr)  # AWS's error text
    if result.stopped:
        progress.note(f"stopped: {result.stopped}. The baselines written are kept; run again to finish.")
    return 2 if result.errors or result.stopped else 0
