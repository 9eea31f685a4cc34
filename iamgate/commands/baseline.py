"""`iamgate baseline`: the trusted, scheduled job that builds baselines from a real AWS account.

Principals in the code -> deployed ARNs -> one Access Analyzer policy generation at a time, plus
IAM last accessed -> one iamgate.baseline/v1 file per principal, written atomically. A small state
file lets a run stopped by the quota, the timeout, Ctrl-C or a kill resume where it stopped.
"""
from __future__ import annotations

import datetime as dt
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from .. import baseline as fmt
from .. import config as config_mod
from ..aws import API_CALLS, Clients, SystemClock, iam_action, is_role_arn, is_trail_arn, iso
from ..files import write_json_atomic
from ..managed import ManagedPolicyCache
from ..resolve import Resolution, Resolver, StateError, TerraformState, is_principal_arn
from ..usage.access_analyzer import DAILY_JOBS, MAX_DAYS, PolicyGenerator, QuotaExceeded, Stopped, to_baseline, window
from ..usage.last_accessed import LastAccessed, LastAccessedError, for_merge
from . import COMMANDS, Command, UsageError
from .check import add_scan_arguments
from .managed_policies import attached_arns, fetch, print_errors, scan_with_account
from .usage import write_error, writable_dir

STATE_FILE = ".iamgate-state.json"
RAW_DIR = ".raw"
STATE_SCHEMA = "iamgate.baseline-state/v1"
_DURATION = re.compile(r"^(?:\d+\s*[smhdw]\s*)+$|^\d+$")
_DURATION_PART = re.compile(r"(\d+)\s*([smhdw]?)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str, flag: str) -> int:
    """Seconds in `90`, `90s`, `30m`, `2h50m`, `1d12h` or `1w`: whole numbers, each with a unit."""
    value = str(text).strip().lower()
    if not _DURATION.match(value):
        raise UsageError(f"{flag} takes a duration such as 90s, 30m, 2h, 2h50m or 7d, not {text!r}")
    return sum(int(n) * _UNITS[unit] for n, unit in _DURATION_PART.findall(value))


def baseline_relpath(arn: str) -> Path:
    """`<role-name>.json` for roles, `users/<user-name>.json` for users (names are unique per kind)."""
    kind, _, rest = arn.split(":", 5)[5].partition("/")
    name = rest.rsplit("/", 1)[-1]
    return Path(f"{name}.json") if kind == "role" else Path("users", f"{name}.json")


def job_policy(catalog, access_role: str | None = None) -> dict:
    """The least-privilege policy for this job, built from `iamgate.aws.API_CALLS` and the catalog."""
    from ..evaluate import Observability
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


class RunState:
    """`<out>/.iamgate-state.json`: the running job, recent job starts, failures, why the last run stopped."""

    def __init__(self, path: Path):
        self.path = path
        self.data = {"schema": STATE_SCHEMA, "running": None, "jobs": [], "failed": {}, "stopped": None,
                     "unresolved": []}
        self.warning = ""
        if path.is_file():
            try:
                loaded = json.loads(path.read_text(encoding="utf-8"))
                if not isinstance(loaded, dict) or loaded.get("schema") != STATE_SCHEMA:
                    raise ValueError("not an iamgate state file")
                self.data.update(loaded)
            except (OSError, ValueError) as e:
                self.warning = f"{path}: ignored ({e}); starting afresh"

    def save(self) -> None:
        write_json_atomic(self.path, self.data)

    @property
    def running(self) -> dict | None:
        return self.data.get("running")

    def started(self, arn: str, job_id: str, now: dt.datetime) -> None:
        self.data["running"] = {"principal_arn": arn, "job_id": job_id, "started_at": iso(now)}
        cutoff = iso(now - dt.timedelta(days=2))
        self.data["jobs"] = [j for j in self.data["jobs"] if j.get("started_at", "") >= cutoff]
        self.data["jobs"].append({"principal_arn": arn, "job_id": job_id, "started_at": iso(now)})
        self.save()

    def jobs_in_last_day(self, now: dt.datetime) -> int:
        cutoff = iso(now - dt.timedelta(days=1))
        return sum(1 for j in self.data["jobs"] if j.get("started_at", "") >= cutoff)

    def finished(self, arn: str) -> None:
        self.data["running"] = None
        self.data["failed"].pop(arn, None)
        self.save()

    def failed(self, arn: str, job_id: str | None, status: str, error: str, now: dt.datetime) -> None:
        self.data["running"] = None
        self.data["failed"][arn] = {"job_id": job_id, "status": status, "error": error, "at": iso(now)}
        self.save()


class Progress:
    """A live line on a TTY; plain lines (one per change, a heartbeat a minute) in CI logs."""

    def __init__(self, stream=None, live: bool | None = None):
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self.names: dict[str, str] = {}
        self.last: dict[str, tuple[str, float]] = {}

    def _line(self, text: str, final: bool = True) -> None:
        if self.live:
            self.stream.write("\r\033[K" + text + ("\n" if final else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def queued(self, arns: list[str]) -> None:
        for i, arn in enumerate(arns, 1):
            self.names[arn] = f"[{i}/{len(arns)}] {arn}"
        if self.live:
            self._line(f"{len(arns)} principal(s) queued")
        else:
            for arn in arns:
                self._line(f"{self.names[arn]}: queued")

    def status(self, arn: str, status: str, elapsed: float) -> None:
        name = self.names.get(arn, arn)
        text = f"{name}: {status}" + (f" for {int(elapsed)} s" if status == "running" else "")
        prev = self.last.get(arn)
        if self.live:
            self._line(text, final=False)
        elif prev is None or prev[0] != status or elapsed - prev[1] >= 60:
            self._line(text)
        else:
            return
        self.last[arn] = (status, elapsed)

    def done(self, arn: str, text: str) -> None:
        self._line(f"{self.names.get(arn, arn)}: {text}")

    def note(self, text: str) -> None:
        self._line(f"iamgate: {text}")


@dataclass
class Summary:
    written: list[str] = field(default_factory=list)
    fresh: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    last_accessed_errors: dict[str, str] = field(default_factory=dict)
    left: list[str] = field(default_factory=list)
    stopped: str = ""

    @property
    def ok(self) -> bool:
        return not (self.failed or self.last_accessed_errors or self.stopped)


class BaselineRun:
    def __init__(self, out: Path, generator: PolicyGenerator, last_accessed: LastAccessed | None,
                 refresh_older_than: int, max_jobs: int | None = None, clock=None, progress: Progress | None = None):
        self.out = Path(out)
        self.generator = generator
        self.last_accessed = last_accessed
        self.refresh = refresh_older_than
        self.max_jobs = max_jobs
        self.clock = clock or SystemClock()
        self.progress = progress or Progress()
        self.state = RunState(self.out / STATE_FILE)
        self.polling: str | None = None  # the job being polled; the generator cancels it if stopped
        generator.on_started = self._started
        generator.on_status = self.progress.status

    def _started(self, arn: str, job_id: str) -> None:
        self.polling = job_id
        self.state.started(arn, job_id, self.clock.now())
        self.progress.status(arn, "running", 0)

    def is_fresh(self, arn: str) -> bool:
        path = self.out / baseline_relpath(arn)
        if self.refresh <= 0 or not path.is_file():
            return False
        try:
            b = fmt.load(path)
        except fmt.BaselineError:
            return False
        stamps = [s.get("generated_at") for s in b.sources if s.get("kind") == "access-analyzer"]
        if b.principal_arn != arn or not stamps or not isinstance(stamps[0], str):
            return False
        try:
            at = dt.datetime.fromisoformat(stamps[0].replace("Z", "+00:00"))
        except ValueError:
            return False
        return (self.clock.now() - at).total_seconds() < self.refresh

    def run(self, arns: list[str]) -> Summary:
        summary = Summary()
        if self.state.warning:
            self.progress.note(self.state.warning)
        todo = []
        for arn in arns:
            (summary.fresh if self.is_fresh(arn) else todo).append(arn)
        running = self.state.running or {}
        resume = None
        if running.get("principal_arn") in todo and running.get("job_id"):  # a killed run's job: first
            todo.remove(running["principal_arn"])
            todo.insert(0, running["principal_arn"])
            resume = running["job_id"]
        self.state.data["stopped"] = None
        self.progress.queued(todo)
        self.polling = None
        for i, arn in enumerate(todo):
            try:
                result = None
                if i == 0 and resume:
                    # collect the job before any limit is checked: it was started (and counted) already
                    self.polling = resume
                    result = self.generator.poll(arn, resume, picked_up=True)
                    self.polling = None
                    if result is None:  # ended without a result, or unknown: a new job is needed
                        self.state.data["running"] = None
                        self.state.save()
                if result is None:
                    if self.max_jobs is not None and self.generator.jobs_started >= self.max_jobs:
                        summary.left = todo[i:]
                        self.progress.note(f"--max-jobs {self.max_jobs} reached; {len(summary.left)} principal(s) "
                                           "left for the next run")
                        break
                    if self.state.jobs_in_last_day(self.clock.now()) >= DAILY_JOBS:
                        raise QuotaExceeded(f"{DAILY_JOBS} policy generations were started in the last 24 hours "
                                            "(the daily quota)")
                    result = self.generator.generate(arn)
                    self.polling = None
                self.one(arn, result, summary)
            except (QuotaExceeded, Stopped) as e:
                kind = "quota" if isinstance(e, QuotaExceeded) else "stopped"
                summary.stopped = f"{'policy generation quota exceeded' if kind == 'quota' else 'stopped'}: {e}"
                summary.left = todo[i:]
                self._forget_cancelled()
                self.state.data["stopped"] = {"reason": kind, "message": str(e), "at": iso(self.clock.now()),
                                              "left": summary.left}
                self.state.save()
                self.progress.done(arn, summary.stopped)
                break
            except KeyboardInterrupt:
                self._forget_cancelled()
                self.state.data["stopped"] = {"reason": "interrupted", "at": iso(self.clock.now()),
                                              "left": todo[i:]}
                self.state.save()
                raise
        return summary

    def _forget_cancelled(self) -> None:
        """Clear the running job only if the generator cancelled it (stopped while polling it).

        A job that is still running, or finished but not yet written, stays in the state file so
        the next run collects it instead of starting (and paying for) another.
        """
        running = self.state.running or {}
        if self.polling is not None and running.get("job_id") == self.polling:
            self.state.data["running"] = None
        self.polling = None

    def one(self, arn: str, result, summary: Summary) -> None:
        """Record one principal's job result: a baseline (merged with last accessed) or a failure."""
        now = self.clock.now()
        if not result.ok:
            self.state.failed(arn, result.job_id, result.status, result.error, now)
            summary.failed[arn] = f"{result.status}: {result.error}"
            self.progress.done(arn, f"failed ({result.status}): {result.error}")
            return
        rel = baseline_relpath(arn)
        write_json_atomic(self.out / RAW_DIR / rel, result.raw)
        merged = to_baseline(result)
        how = "Access Analyzer"
        if self.last_accessed is not None:
            # the job's own window (a picked-up job may have an older one than this run's)
            window_start = merged.window_start or iso(self.generator.start)
            try:
                merged = fmt.merge([merged, for_merge(self.last_accessed.collect_for(arn, window_start))])
                how += " + last accessed"
            except LastAccessedError as e:
                summary.last_accessed_errors[arn] = str(e)
                how += f" (last accessed failed: {e})"
        fmt.write(merged, self.out / rel)
        self.state.finished(arn)
        summary.written.append(arn)
        complete = "" if merged.complete else ", incomplete"
        self.progress.done(arn, f"done: {len(merged.used)} used actions{complete} ({how}) -> {self.out / rel}")


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
        p.add_argument("--days", type=int, default=MAX_DAYS, help=f"window in days, at most {MAX_DAYS} (default)")
        p.add_argument("--region", help="AWS region for Access Analyzer and CloudFormation")
        p.add_argument("--principal", action="append", default=[], metavar="ARN",
                       help="also build a baseline for this role or user ARN; repeatable")
        p.add_argument("--tfstate", metavar="FILE", help="Terraform state (.tfstate or `terraform show -json`)")
        p.add_argument("--refresh-older-than", default="7d", metavar="AGE",
                       help="skip principals whose baseline is newer than this (default 7d; 0 = always)")
        p.add_argument("--max-jobs", type=int, metavar="N", help="start at most N policy generations in this run")
        p.add_argument("--timeout", default="2h", metavar="DURATION", help="overall time limit (default 2h)")
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
        if args.max_jobs is not None and args.max_jobs < 1:
            raise UsageError("--max-jobs must be at least 1")
        bad = [a for a in args.principal if not is_principal_arn(a)]
        if bad:
            raise UsageError(f"--principal {bad[0]}: not an IAM role or user ARN")

    def run(self, args, clients: Clients | None = None, clock=None, progress: Progress | None = None) -> int:
        if args.print_policy:
            from ..catalog import load_catalog
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
            return self.execute(args, cfg, tfstate, clients, clock, progress, refresh, timeout)
        except (BotoCoreError, ClientError) as e:
            raise UsageError(f"AWS: {e}") from None
        except OSError as e:  # writing a baseline or the state file; finished baselines are kept
            raise write_error(e) from None

    def execute(self, args, cfg, tfstate, clients: Clients, clock, progress: Progress, refresh: int,
                timeout: int) -> int:
        scanned = scan_with_account(args, cfg, clients)
        resolver = Resolver(clients.identity, lambda: clients.client("cloudformation"), cfg.principals,
                            cfg.stacks, tfstate)
        resolution = resolver.resolve(scanned.principals, args.principal)
        print_errors(scanned.errors)
        report_unresolved(resolution, progress)
        errors = list(scanned.errors)
        if not args.no_managed_policies:
            cache = ManagedPolicyCache(args.managed_policies or cfg.managed_policies)
            fetched = fetch(clients.client("iam"), attached_arns(scanned.principals), cache)
            print_errors(fetched.errors)
            errors.extend(fetched.errors)
            if fetched.fetched:
                progress.note(f"fetched {len(fetched.fetched)} managed policies into {cache.directory}")

        start, end = window(clock.now(), args.days)
        deadline = clock.monotonic() + timeout
        generator = PolicyGenerator(clients.client("accessanalyzer"), args.trail, args.access_role, start, end,
                                    clock=clock, deadline=deadline)
        last = None if args.no_last_accessed else LastAccessed(clients.client("iam", "last-accessed"), clock, deadline)
        job = BaselineRun(Path(args.out), generator, last, refresh, args.max_jobs, clock, progress)
        job.state.data["unresolved"] = [{"principal": u.principal_id, "reason": u.reason,
                                         "file": u.location.file if u.location else None,
                                         "line": u.location.line if u.location else None}
                                        for u in resolution.unresolved]
        summary = job.run([t.arn for t in resolution.targets])
        job.state.save()
        progress.note(f"{len(summary.written)} baseline(s) written, {len(summary.fresh)} fresh (skipped), "
                      f"{len(summary.failed)} failed, {len(resolution.unresolved)} not resolved, "
                      f"{len(summary.left)} left for the next run; {generator.jobs_started} job(s) started")
        if summary.stopped:
            progress.note(f"{summary.stopped}. Finished baselines are kept; run again (e.g. tomorrow) to "
                          "resume with the principals left.")
        return 0 if summary.ok and not errors else 2


def report_unresolved(resolution: Resolution, progress: Progress) -> None:
    for u in resolution.unresolved:
        where = f"{u.location}: " if u.location else ""
        progress.note(f"{where}{u.principal_id}: not resolved: {u.reason}")

