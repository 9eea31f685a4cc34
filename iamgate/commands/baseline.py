"""`iamgate baseline`: the trusted, scheduled job that builds baselines from a real AWS account.

Principals in the code -> deployed ARNs -> one Access Analyzer policy generation at a time, plus
IAM last accessed -> one iamgate.baseline/v1 file per principal, written atomically. The run itself
(its state file, progress and summary) is `iamgate.usage.baseline_job`.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from .. import config as config_mod
from ..reference.managed_policies import ManagedPolicyCache
from ..usage.access_analyzer import MAX_DAYS, PolicyGenerator, window
from ..usage.aws_clients import API_CALLS, Clients, SystemClock, iam_action, is_role_arn, is_trail_arn
from ..usage.aws_errors import Delays, Retry, Stopped, classify
from ..usage.baseline_job import BaselineRun, Progress, Summary
from ..usage.last_accessed import LastAccessed
from ..usage.principal_arns import Resolution, Resolver, StateError, TerraformState, is_principal_arn
from ..usage.run_lock import LockError, RunLock
from . import COMMANDS, Command, UsageError
from .check import add_scan_arguments
from .managed_policies import attached_arns, fetch, print_errors, scan_with_account
from .usage import add_deployment_argument, deployment_name, writable_dir, write_error

_DURATION = re.compile(r"^(?:\d+\s*[smhdw]\s*)+$|^\d+$")
_DURATION_PART = re.compile(r"(\d+)\s*([smhdw]?)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str, flag: str) -> int:
    """Seconds in `90`, `90s`, `30m`, `2h50m`, `1d12h` or `1w`: whole numbers, each with a unit."""
    value = str(text).strip().lower()
    if not _DURATION.match(value):
        raise UsageError(f"{flag} takes a duration such as 90s, 30m, 2h, 2h50m or 7d, not {text!r}")
    return sum(int(n) * _UNITS[unit] for n, unit in _DURATION_PART.findall(value))


def job_policy(catalog, access_role: str | None = None) -> dict:
    """The least-privilege policy for this job, built from `iamgate.usage.aws_clients.API_CALLS` and the catalog."""
    from ..judge.verdicts import Observability
    obs = Observability(catalog)
    actions = []
    for service, op in API_CALLS:
        action = iam_action(service, op)
        if action.lower() not in catalog:
            raise UsageError(f"{action} is not in the action catalog {catalog.version}")
        u = obs.by_action.get(action.lower())
        if u is None or u.reason != "permissionless":
            actions.append(catalog.canonical(action.lower()))
    groups = {"PolicyGeneration": "access-analyzer:", "LastAccessedAndManagedPolicies": "iam:",
              "ResolveStackResources": "cloudformation:"}
    statements = []
    for sid, prefix in groups.items():
        acts = sorted(a for a in actions if a.startswith(prefix))
        if acts:
            statements.append({"Sid": sid, "Effect": "Allow", "Action": acts, "Resource": "*"})
    left = sorted(a for a in actions if not any(a.startswith(p) for p in groups.values()))
    if left:
        statements.append({"Sid": "Other", "Effect": "Allow", "Action": left, "Resource": "*"})
    statements.append({"Sid": "PassAccessRoleToAccessAnalyzer", "Effect": "Allow", "Action": "iam:PassRole",
                       "Resource": access_role or "arn:aws:iam::111122223333:role/AccessAnalyzerMonitorServiceRole",
                       "Condition": {"StringEquals": {"iam:PassedToService": "access-analyzer.amazonaws.com"}}})
    return {"Version": "2012-10-17", "Statement": statements}




@COMMANDS.register
class BaselineCommand(Command):
    name = "baseline"
    long_running = True
    help = "build baselines from AWS: Access Analyzer policy generation plus IAM last accessed"

    def configure(self, p) -> None:
        add_scan_arguments(p)
        p.set_defaults(paths=None)
        p.add_argument("--trail", metavar="ARN", help="CloudTrail trail ARN for policy generation")
        p.add_argument("--access-role", metavar="ARN", help="role Access Analyzer assumes to read the trail")
        p.add_argument("--out", metavar="DIR", help="baseline folder (one file per principal)")
        add_deployment_argument(p)
        p.add_argument("--days", type=int, default=MAX_DAYS, help=f"window in days, at most {MAX_DAYS} (default)")
        p.add_argument("--region", help="AWS region for Access Analyzer and CloudFormation")
        p.add_argument("--principal", action="append", default=[], metavar="ARN",
                       help="also build a baseline for this role or user ARN; repeatable")
        p.add_argument("--tfstate", metavar="FILE", help="Terraform state (.tfstate or `terraform show -json`)")
        p.add_argument("--refresh-older-than", default="7d", metavar="AGE",
                       help="skip principals whose baseline is newer than this (default 7d; 0 = always)")
        p.add_argument("--max-jobs", type=int, metavar="N", help="start at most N policy generations in this run")
        p.add_argument("--replace", action="store_true",
                       help="start each written baseline afresh instead of merging it into the stored history")
        p.add_argument("--keep", type=int, default=400, metavar="DAYS",
                       help="drop history older than this many days (default 400)")
        p.add_argument("--timeout", default="2h", metavar="DURATION", help="overall time limit (default 2h); a job still running then "
                       "is left running and collected by the next run")
        p.add_argument("--no-last-accessed", action="store_true", help="skip the IAM last-accessed signal")
        p.add_argument("--no-managed-policies", action="store_true",
                       help="do not fetch the attached managed policies into the cache")
        p.add_argument("--print-policy", action="store_true",
                       help="print the IAM policy this job needs (for --access-role if given) and exit")

    def check_args(self, args) -> None:
        for flag, value in (("--trail", args.trail), ("--access-role", args.access_role), ("--out", args.out)):
            if not value:
                raise UsageError(f"{flag} is required")
        if not is_trail_arn(args.trail):
            raise UsageError(f"--trail {args.trail}: not a CloudTrail trail ARN")
        if not is_role_arn(args.access_role):
            raise UsageError(f"--access-role {args.access_role}: not an IAM role ARN")
        if not 1 <= args.days <= MAX_DAYS:
            raise UsageError(f"--days must be 1 to {MAX_DAYS} (Access Analyzer's limit), not {args.days}")
        if args.deployment:
            deployment_name(args.deployment)
        if args.max_jobs is not None and args.max_jobs < 1:
            raise UsageError("--max-jobs must be at least 1")
        if getattr(args, "keep", 1) < 1:
            raise UsageError("--keep must be at least 1 day")
        bad = [a for a in args.principal if not is_principal_arn(a)]
        if bad:
            raise UsageError(f"--principal {bad[0]}: not an IAM role or user ARN")

    def run(self, args, clients: Clients | None = None, clock=None, progress: Progress | None = None) -> int:
        if args.print_policy:
            from ..reference.catalog import load_catalog
            print(json.dumps(job_policy(load_catalog(), args.access_role), indent=2))
            if not args.access_role:
                print("iamgate: note: the iam:PassRole resource above is a placeholder role ARN; pass "
                      "--access-role ARN to print the policy for your Access Analyzer role", file=sys.stderr)
            return 0
        self.check_args(args)
        refresh = parse_duration(args.refresh_older_than, "--refresh-older-than")
        timeout = parse_duration(args.timeout, "--timeout")
        writable_dir(args.out)  # before any AWS call or job: a bad --out fails fast
        if args.paths is None:
            args.paths = [] if args.principal else ["."]
        cfg = config_mod.load(args.config)
        tfstate = None
        if args.tfstate:
            try:
                tfstate = TerraformState.load(args.tfstate)
            except StateError as e:
                raise UsageError(str(e)) from None
        clients = clients or Clients(args.region)
        clock = clock or SystemClock()
        progress = progress or Progress()
        try:
            lock = RunLock(args.out, timeout, clock.now(), progress.note)
            lock.acquire()
        except LockError as e:
            raise UsageError(str(e)) from None
        except OSError as e:
            raise write_error(e) from None
        try:
            return self.execute(args, cfg, tfstate, clients, clock, progress, refresh, timeout)
        except OSError as e:  # the state file before the run, or the summary's last save
            raise write_error(e) from None
        finally:
            lock.release()

    def execute(self, args, cfg, tfstate, clients: Clients, clock, progress: Progress, refresh: int,
                timeout: int) -> int:
        start, end = window(clock.now(), args.days)
        deadline = clock.monotonic() + timeout
        delays = Delays.from_env()
        generator = PolicyGenerator(clients.client("accessanalyzer"), args.trail, args.access_role, start, end,
                                    clock=clock, deadline=deadline, delays=delays)
        last = None if args.no_last_accessed else LastAccessed(clients.client("iam", "last-accessed"), clock,
                                                               deadline, delays)
        job = BaselineRun(Path(args.out), generator, last, refresh, args.max_jobs, clock, progress,
                          keep=getattr(args, "keep", 400), replace=getattr(args, "replace", False))
        job.deployment = args.deployment
        summary, errors, unresolved = Summary(), [], 0
        try:
            scanned = scan_with_account(args, cfg, clients)
            resolver = Resolver(clients.identity, lambda: clients.client("cloudformation"), cfg.principals,
                                cfg.stacks, tfstate, Retry(clock, deadline, delays))
            resolution = resolver.resolve(scanned.principals, args.principal)
            print_errors(scanned.errors)
            report_unresolved(resolution, progress)
            errors.extend(scanned.errors)
            unresolved = len(resolution.unresolved)
            if not args.no_managed_policies:
                cache = ManagedPolicyCache(args.managed_policies or cfg.managed_policies)
                fetched = fetch(clients.client("iam"), attached_arns(scanned.principals), cache,
                                Retry(clock, deadline, delays))
                print_errors(fetched.errors)
                errors.extend(fetched.errors)
                if fetched.fetched:
                    progress.note(f"fetched {len(fetched.fetched)} managed policies into {cache.directory}")
        except (BotoCoreError, ClientError, Stopped) as e:  # before any job: STS, CloudFormation, IAM
            failure = e if isinstance(e, Stopped) else classify(e)
            job.stop(summary, "stopped", f"stopped before any policy generation: AWS: {failure}", str(failure), [])
        else:
            job.state.data["unresolved"] = [{"principal": u.principal_id, "reason": u.reason,
                                             "file": u.location.file if u.location else None,
                                             "line": u.location.line if u.location else None}
                                            for u in resolution.unresolved]
            job.run([t.arn for t in resolution.targets], summary)
            try:
                job.state.save()
            except OSError as e:
                progress.note(f"{job.state.path}: cannot save the state ({e.strerror or e})")
        progress.note(summary.line(unresolved, generator.jobs_started, len(errors)))
        if summary.stopped:
            progress.note(f"{summary.stopped}. Finished baselines are kept; run again (e.g. tomorrow) to resume "
                          "with the principals left (a job still running is collected first).")
        if summary.interrupted:
            return 130
        return 0 if summary.ok and not errors else 2


def report_unresolved(resolution: Resolution, progress: Progress) -> None:
    for u in resolution.unresolved:
        where = f"{u.location}: " if u.location else ""
        progress.note(f"{where}{u.principal_id}: not resolved: {u.reason}")
