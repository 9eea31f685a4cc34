"""One run of the baseline job: Access Analyzer policy generation, one job at a time, plus IAM last
accessed, for each principal. A small state file lets a run stopped by the quota, the timeout,
Ctrl-C or a kill resume where it stopped, and a started (paid) job is never dropped.
"""
from __future__ import annotations

import datetime as dt
import json
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..escape import terminal
from ..files import write_json_atomic
from . import baseline_format as fmt
from . import history
from ..model import Baseline
from .access_analyzer import DAILY_JOBS, PolicyGenerator, QuotaExceeded, to_baseline
from .aws_clients import SystemClock, iso
from .aws_errors import PrincipalError, Stopped
from .last_accessed import SIGNAL, LastAccessed, LastAccessedError, failed_source, for_merge, is_failed

STATE_FILE = ".iamgate-state.json"
RAW_DIR = ".raw"
STATE_SCHEMA = "iamgate.baseline-state/v1"


def baseline_relpath(arn: str) -> Path:
    """`<role-name>.json` for roles, `users/<user-name>.json` for users (names are unique per kind)."""
    kind, _, rest = arn.split(":", 5)[5].partition("/")
    name = rest.rsplit("/", 1)[-1]
    return Path(f"{name}.json") if kind == "role" else Path("users", f"{name}.json")


def _state_problem(data) -> str:
    """What is wrong with a loaded state file's shape; "" if nothing."""
    if not isinstance(data, dict) or data.get("schema") != STATE_SCHEMA:
        return "not an iamgate state file"
    kinds = {"pending": dict, "jobs": list, "failed": dict, "last_accessed_failed": dict, "unresolved": list}
    for key, kind in kinds.items():
        if key in data and not isinstance(data[key], kind):
            return f"{key} is not a{'n object' if kind is dict else ' list'}"
    if data.get("stopped") is not None and not isinstance(data["stopped"], dict):
        return "stopped is not an object"
    running = data.get("running")
    if running is not None and not (isinstance(running, dict) and isinstance(running.get("principal_arn"), str)
                                    and isinstance(running.get("job_id"), str)):
        return "running is not a job"
    for arn, job in (data.get("pending") or {}).items():
        if not (isinstance(job, dict) and isinstance(job.get("job_id"), str)
                and isinstance(job.get("started_at", ""), str)):
            return f"pending[{arn!r}] is not a job"
    for i, job in enumerate(data.get("jobs") or []):
        if not (isinstance(job, dict) and all(isinstance(job.get(k), str)
                                              for k in ("principal_arn", "job_id", "started_at"))):
            return f"jobs[{i}] is not a job start"
    for key in ("failed", "last_accessed_failed"):
        for arn, entry in (data.get(key) or {}).items():
            if not isinstance(entry, dict):
                return f"{key}[{arn!r}] is not an object"
    return ""


class RunState:
    """`<out>/.iamgate-state.json`: started jobs AWS has not yet reported ended (`pending`, by principal),
    recent job starts (the daily quota), failures (policy generation and last accessed), why the last
    run stopped. A file that is not valid is reported, kept beside as `<name>.bad`, and replaced."""

    def __init__(self, path: Path):
        self.path = path
        self.data = {"schema": STATE_SCHEMA, "pending": {}, "jobs": [], "failed": {}, "last_accessed_failed": {},
                     "stopped": None, "unresolved": []}
        self.warning = ""
        if path.is_file():
            try:
                loaded = json.loads(path.read_text(encoding="utf-8"))
                problem = _state_problem(loaded)
                if problem:
                    raise ValueError(problem)
            except (OSError, ValueError) as e:
                self.warning = f"{path}: not a valid state file ({e}); replaced (the old one is kept as " \
                               f"{path.name}.bad; jobs still running are found again in Access Analyzer)"
                try:
                    path.replace(path.with_name(path.name + ".bad"))
                except OSError:
                    pass
            else:
                running = loaded.pop("running", None)  # the older single-job form
                self.data.update(loaded)
                if running:
                    self.data["pending"].setdefault(running["principal_arn"], {
                        "job_id": running["job_id"], "started_at": running.get("started_at", "")})

    def save(self) -> None:
        write_json_atomic(self.path, self.data)

    @property
    def pending(self) -> dict[str, dict]:
        return self.data["pending"]

    def known_jobs(self) -> set[str]:
        return {j["job_id"] for j in self.data["jobs"]} | {j["job_id"] for j in self.pending.values()}

    def started(self, arn: str, job_id: str, now: dt.datetime) -> None:
        """Recorded (and saved) before anything else happens: the job is paid for."""
        self.pending[arn] = {"job_id": job_id, "started_at": iso(now)}
        cutoff = iso(now - dt.timedelta(days=2))
        self.data["jobs"] = [j for j in self.data["jobs"] if j.get("started_at", "") >= cutoff]
        if job_id not in {j["job_id"] for j in self.data["jobs"]}:
            self.data["jobs"].append({"principal_arn": arn, "job_id": job_id, "started_at": iso(now)})
        self.save()

    def jobs_in_last_day(self, now: dt.datetime) -> int:
        cutoff = iso(now - dt.timedelta(days=1))
        return sum(1 for j in self.data["jobs"] if j.get("started_at", "") >= cutoff)

    def ended(self, arn: str) -> None:
        """AWS reported the principal's job ended (or does not know it): it leaves `pending`."""
        self.pending.pop(arn, None)

    def finished(self, arn: str) -> None:
        self.ended(arn)
        self.data["failed"].pop(arn, None)
        self.save()

    def failed(self, arn: str, job_id: str | None, status: str, error: str, now: dt.datetime) -> None:
        self.ended(arn)
        self.data["failed"][arn] = {"job_id": job_id, "status": status, "error": error, "at": iso(now)}
        self.save()

    def last_accessed(self, arn: str, error: str | None, now: dt.datetime) -> None:
        """Record a last-accessed failure (retried next run), or clear it (`error` None). Not saved."""
        if error:
            self.data["last_accessed_failed"][arn] = {"error": error, "at": iso(now)}
        else:
            self.data["last_accessed_failed"].pop(arn, None)


class Progress:
    """A live line on a TTY; plain lines (one per change, a heartbeat a minute) in CI logs."""

    def __init__(self, stream=None, live: bool | None = None):
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self.names: dict[str, str] = {}
        self.last: dict[str, tuple[str, float]] = {}

    def _line(self, text: str, final: bool = True) -> None:
        text = terminal(text)  # principal names and reasons come from the scanned code
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
    collected: list[str] = field(default_factory=list)  # jobs of earlier runs, collected in this one
    stopped: str = ""
    interrupted: bool = False

    @property
    def ok(self) -> bool:
        return not (self.failed or self.last_accessed_errors or self.stopped)

    def line(self, unresolved: int, jobs_started: int, other_errors: int = 0) -> str:
        text = (f"{len(self.written)} baseline(s) written, {len(self.fresh)} fresh (skipped), {len(self.failed)} "
                f"failed, {len(self.last_accessed_errors)} last-accessed failed, {unresolved} not resolved, "
                f"{len(self.left)} left for the next run; {jobs_started} job(s) started")
        if self.collected:
            text += f", {len(self.collected)} collected from an earlier run"
        if other_errors:
            text += f"; {other_errors} other error(s) above"
        return text


COLLECT, LAST_ACCESSED, GENERATE = "collect", "last-accessed", "generate"


class BaselineRun:
    def __init__(self, out: Path, generator: PolicyGenerator, last_accessed: LastAccessed | None,
                 refresh_older_than: int, max_jobs: int | None = None, clock=None, progress: Progress | None = None,
                 keep: int | None = history.KEEP_DAYS, replace: bool = False):
        self.out = Path(out)
        self.keep, self.replace = keep, replace  # history (issue 22): days kept; start afresh instead
        self.generator = generator
        self.last_accessed = last_accessed
        self.refresh = refresh_older_than
        self.max_jobs = max_jobs
        self.clock = clock or SystemClock()
        self.progress = progress or Progress()
        self.state = RunState(self.out / STATE_FILE)
        self.deployment: str | None = None  # `--deployment NAME`: recorded in every baseline written (issue 21)
        generator.on_started = self._started
        generator.on_status = self.progress.status

    def _started(self, arn: str, job_id: str) -> None:
        self.state.started(arn, job_id, self.clock.now())  # first: the job is paid for
        self.progress.status(arn, "running", 0)

    def _aa_stamp(self, arn: str) -> dt.datetime | None:
        """When the principal's Access Analyzer baseline on disk was generated; None if there is none."""
        b = history.stored(self.out / baseline_relpath(arn), arn)
        stamps = [s.get("generated_at") for s in b.sources if s.get("kind") == "access-analyzer"] if b else []
        if not stamps or not isinstance(stamps[0], str):
            return None
        try:
            at = dt.datetime.fromisoformat(stamps[0].replace("Z", "+00:00"))
        except ValueError:
            return None
        return at if at.tzinfo else at.replace(tzinfo=dt.timezone.utc)

    def is_fresh(self, arn: str) -> bool:
        at = self._aa_stamp(arn) if self.refresh > 0 else None
        return at is not None and (self.clock.now() - at).total_seconds() < self.refresh

    def needs_last_accessed(self, arn: str) -> bool:
        """Last accessed failed for this (fresh) baseline: retried, although Access Analyzer is fresh."""
        if self.last_accessed is None:
            return False
        if arn in self.state.data["last_accessed_failed"]:
            return True
        try:
            return any(is_failed(s) for s in fmt.load(self.out / baseline_relpath(arn)).sources)
        except fmt.BaselineError:
            return False

    # -- the run ---------------------------------------------------------------
    def discover(self, arns: list[str]) -> None:
        """Jobs in Access Analyzer the state does not know (a run that could not record its start):
        the run's principals' running or newer finished jobs are collected instead of started again,
        and every job of the last day counts against the daily quota."""
        try:
            listed = self.generator.find_jobs(())
        except PrincipalError as e:
            self.progress.note(f"cannot list policy generations ({e.failure}); collecting only the jobs in "
                               f"{self.state.path.name}")
            return
        now = self.clock.now()
        known, wanted, day = self.state.known_jobs(), set(arns), iso(now - dt.timedelta(days=1))
        horizon = iso(now - dt.timedelta(seconds=max(self.refresh, 86400)))
        for job in listed:  # newest first
            if job.job_id in known:
                continue
            if job.started_on >= day:
                self.state.data["jobs"].append({"principal_arn": job.principal_arn, "job_id": job.job_id,
                                                "started_at": job.started_on})
            if job.principal_arn not in wanted or job.principal_arn in self.state.pending:
                continue
            stamp = self._aa_stamp(job.principal_arn)
            newer = job.status == "SUCCEEDED" and job.started_on >= horizon and (
                stamp is None or job.started_on > iso(stamp))
            if job.status == "IN_PROGRESS" or newer:
                self.state.pending[job.principal_arn] = {"job_id": job.job_id, "started_at": job.started_on,
                                                         "found": True}
                self.progress.note(f"{job.principal_arn}: found policy generation {job.job_id} ({job.status}, "
                                   f"started {job.started_on}) that {self.state.path.name} did not know: "
                                   "collecting it")
        self.state.save()

    def run(self, arns: list[str], summary: Summary | None = None) -> Summary:
        summary = summary or Summary()
        if self.state.warning:
            self.progress.note(self.state.warning)
        self.state.data["stopped"] = None
        work: list[tuple[str, str]] = []
        i = 0
        try:
            self.discover(arns)
            pending = self.state.pending
            work = [(arn, COLLECT) for arn in arns if arn in pending]  # started (and paid for) already: first
            for arn in arns:
                if arn in pending:
                    continue
                if not self.is_fresh(arn):
                    work.append((arn, GENERATE))
                elif self.needs_last_accessed(arn):
                    work.insert(len([w for w in work if w[1] != GENERATE]), (arn, LAST_ACCESSED))
                else:
                    summary.fresh.append(arn)
            self.progress.queued(list(dict.fromkeys(arn for arn, _ in work)))
            while i < len(work):
                arn, step = work[i]
                try:
                    if step == COLLECT:
                        self.collect(arn, summary, work)
                    elif step == LAST_ACCESSED:
                        self.retry_last_accessed(arn, summary)
                    else:
                        if self.max_jobs is not None and self.generator.jobs_started >= self.max_jobs:
                            summary.left = self._left(work, i)
                            self.progress.note(f"--max-jobs {self.max_jobs} reached; {len(summary.left)} "
                                               "principal(s) left for the next run")
                            break
                        if self.state.jobs_in_last_day(self.clock.now()) >= DAILY_JOBS:
                            raise QuotaExceeded(f"{DAILY_JOBS} policy generations were started in the last 24 "
                                                "hours (the daily quota)")
                        self.one(arn, self.generator.generate(arn), summary)
                except PrincipalError as e:  # a step of this principal only: the run goes on
                    self._failed(arn, summary, str(e.failure))
                except (QuotaExceeded, Stopped, KeyboardInterrupt, OSError):
                    raise
                except Exception as e:  # noqa: BLE001 - a bug in one principal's step must not end the run
                    self._failed(arn, summary, f"unexpected error: {type(e).__name__}: {e}")
                i += 1
        except QuotaExceeded as e:
            self.stop(summary, "quota", f"policy generation quota exceeded: {e}", str(e), self._left(work, i))
        except Stopped as e:
            self.stop(summary, "stopped", f"stopped: {e}", str(e), self._left(work, i))
        except KeyboardInterrupt:
            summary.interrupted = True
            self.stop(summary, "interrupted", "interrupted", "interrupted", self._left(work, i))
        except OSError as e:
            where = f"{e.filename}: " if e.filename else ""
            message = f"cannot write {where}{e.strerror or e}"
            self.stop(summary, "write-error", f"stopped: {message}", message, self._left(work, i))
        return summary

    @staticmethod
    def _left(work: list[tuple[str, str]], i: int) -> list[str]:
        return list(dict.fromkeys(arn for arn, _ in work[i:]))

    def stop(self, summary: Summary, reason: str, text: str, message: str, left: list[str]) -> None:
        """Why the run stopped, in the summary and the state; running jobs stay recorded for the next run."""
        summary.stopped, summary.left = text, left
        self.state.data["stopped"] = {"reason": reason, "message": message, "at": iso(self.clock.now()), "left": left}
        try:
            self.state.save()
        except OSError as e:
            self.progress.note(f"{self.state.path}: cannot save the state ({e.strerror or e}); jobs still running "
                               "are found again in Access Analyzer on the next run")
        if left:  # (the summary repeats why, with what to do next)
            self.progress.done(left[0], text)

    def _failed(self, arn: str, summary: Summary, error: str) -> None:
        summary.failed[arn] = error
        self.state.data["failed"][arn] = {"job_id": None, "status": "ERROR", "error": error,
                                          "at": iso(self.clock.now())}
        self.state.save()
        self.progress.done(arn, f"failed: {error}")

    def collect(self, arn: str, summary: Summary, work: list[tuple[str, str]]) -> None:
        """A job started earlier (this state's, or found in Access Analyzer): polled to its end."""
        job = self.state.pending[arn]
        self.progress.status(arn, f"collecting policy generation {job['job_id']} started {job.get('started_at')}", 0)
        result = self.generator.poll(arn, job["job_id"])
        found = job.get("found")
        if result.ok and found and not self._our_trail(result):
            result = replace(result, status="OTHER", error="generated from another trail")
        if result.ok or (result.status == "FAILED" and not found):
            summary.collected.append(arn)
            self.one(arn, result, summary)
            return
        self.state.ended(arn)  # cancelled, unknown to AWS, or not ours to use: this principal needs a job
        self.state.save()
        self.progress.status(arn, f"earlier job {job['job_id']} {result.status.lower()}; a new one is needed", 0)
        work.append((arn, GENERATE))

    def _our_trail(self, result) -> bool:
        props = (result.raw.get("generatedPolicyResult") or {}).get("properties") or {}
        trails = [t.get("cloudTrailArn") for t in (props.get("cloudTrailProperties") or {}).get("trailProperties") or []]
        return self.generator.trail_arn in trails

    def one(self, arn: str, result, summary: Summary) -> None:
        """Record one principal's job result: a baseline (merged with last accessed) or a failure."""
        now = self.clock.now()
        rel = baseline_relpath(arn)
        if result.ok:
            write_json_atomic(self.out / RAW_DIR / rel, result.raw)
            try:
                merged = to_baseline(result)
            except fmt.BaselineError as e:  # the job has ended all the same: it leaves the state
                result = replace(result, status="UNREADABLE", error=f"the generated policy cannot be read: {e} "
                                                                    f"(AWS's reply is kept in {self.out / RAW_DIR / rel})")
        if not result.ok:
            self.state.failed(arn, result.job_id, result.status, result.error, now)
            summary.failed[arn] = f"{result.status}: {result.error}"
            self.progress.done(arn, f"failed ({result.status}): {result.error}")
            return
        how = "Access Analyzer"
        stop = None
        if self.last_accessed is not None:
            # the job's own window (a picked-up job may have an older one than this run's)
            window_start = merged.window_start or iso(self.generator.start)
            try:
                merged, error = self._with_last_accessed(merged, arn, window_start)
            except Stopped as e:  # the finished Access Analyzer baseline is kept; the run stops after it
                stop, error = e, f"stopped: {e}"
                merged = replace(merged, sources=merged.sources + (failed_source(error, iso(now)),))
            how += f"; last accessed failed: {error}" if error else " + last accessed"
            self._record_last_accessed(arn, error, summary)
        stored = None if self.replace else history.stored(self.out / rel, arn)
        merged = history.merge(stored, merged, self.keep)  # the job's window joins the history
        fmt.write(replace(merged, deployment=self.deployment or merged.deployment), self.out / rel)
        self.state.finished(arn)
        summary.written.append(arn)
        complete = "" if merged.complete else ", incomplete"
        self.progress.done(arn, f"done: {len(merged.used)} used actions{complete} ({how}) -> {self.out / rel}")
        if stop is not None:
            raise stop

    def _with_last_accessed(self, b, arn: str, window_start) -> tuple:
        """(b merged with last accessed, None), or (b with a failed last-accessed source, the error)."""
        try:
            return fmt.merge([b, for_merge(self.last_accessed.collect_for(arn, window_start))]), None
        except LastAccessedError as e:
            return replace(b, sources=b.sources + (failed_source(str(e), iso(self.clock.now())),)), str(e)

    def _record_last_accessed(self, arn: str, error: str | None, summary: Summary) -> None:
        self.state.last_accessed(arn, error, self.clock.now())
        if error:
            summary.last_accessed_errors[arn] = error

    def retry_last_accessed(self, arn: str, summary: Summary) -> None:
        """A fresh baseline whose last-accessed step failed: only that step again, merged into the file."""
        path = self.out / baseline_relpath(arn)
        b = fmt.load(path)
        kept = replace(b, sources=tuple(s for s in b.sources if s.get("kind") != SIGNAL), files=())
        watched = history.own_coverage(b).get("access-analyzer") or (None,)
        since = watched[-1].start if watched[-1] else (b.window_start or iso(self.generator.start))
        until = watched[-1].end if watched[-1] else (b.window_end or iso(self.clock.now()))
        fresh = Baseline(arn, since, until)  # last accessed over the latest job's window
        la, error = self._with_last_accessed(fresh, arn, since)
        merged = history.merge(kept, la, self.keep)
        fmt.write(replace(merged, deployment=self.deployment or merged.deployment), path)
        self._record_last_accessed(arn, error, summary)
        self.state.save()
        if error:
            self.progress.done(arn, f"last accessed failed again: {error}")
        else:
            summary.written.append(arn)
            self.progress.done(arn, f"done: last accessed added -> {path}")
