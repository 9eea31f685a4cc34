"""IAM Access Analyzer policy generation: one job at a time, polled with backoff, under AWS's limits.

`StartPolicyGeneration` allows one running job per account and 50 a day (cancelled jobs count),
over a window of at most 90 days; jobs take minutes. A `ConflictException` means another job is
running (maybe not ours): wait and retry. A quota error stops the run.

A started job is paid for, so it is never cancelled and never dropped: it is polled until AWS says
SUCCEEDED, FAILED or CANCELED. Poll errors of any kind are retried with backoff while time remains;
when the run must stop (expired credentials, the deadline, Ctrl-C) the job is left running, and
the caller (which recorded it through `on_started`) collects it next time. `find_jobs` lists the
account's jobs (`ListPolicyGenerations`), so a job the caller never managed to record is found again.
The result is normalised by `iamgate.usage.baseline_format.from_generated_policy`.
"""
from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field, replace
from typing import Callable

from .. import __version__
from ..model import Baseline, ScanError
from . import USAGE, UsageResult, UsageSource
from . import baseline_format as fmt
from .aws_clients import Backoff, SystemClock, iso, jsonable
from .aws_errors import ACCOUNT, AccountError, Delays, PrincipalError, Retry, Stopped

MAX_DAYS = 90
DAILY_JOBS = 50
ENDED = ("SUCCEEDED", "FAILED", "CANCELED")
GONE = "GONE"  # AWS does not know the job (another account or region, or expired): nothing to collect
UNKNOWN_JOB_CODES = ("ValidationException", "ResourceNotFoundException")


class QuotaExceeded(Stopped):
    """The account's policy-generation quota is used up: stop, keep what finished, resume later."""


@dataclass(frozen=True)
class JobResult:
    principal_arn: str
    job_id: str | None
    status: str  # SUCCEEDED | FAILED | CANCELED | GONE | ERROR (could not start)
    raw: dict | None = field(default=None, hash=False)  # the get-generated-policy output, as JSON
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "SUCCEEDED"


@dataclass(frozen=True)
class ListedJob:
    """One `ListPolicyGenerations` entry."""
    job_id: str
    principal_arn: str
    status: str
    started_on: str  # ISO 8601 UTC


def window(now: dt.datetime, days: int) -> tuple[dt.datetime, dt.datetime]:
    if not 1 <= days <= MAX_DAYS:
        raise ValueError(f"the window must be 1 to {MAX_DAYS} days, not {days}")
    return now - dt.timedelta(days=days), now


def to_baseline(result: JobResult) -> Baseline:
    """A succeeded job as an iamgate.baseline/v1 baseline (the tool version added to its source)."""
    b = fmt.from_generated_policy(result.raw)
    return replace(b, sources=tuple(dict(s, tool_version=__version__) for s in b.sources), files=())


def _check_generated(resp) -> None:
    status = resp["jobDetails"]["status"]
    if not isinstance(status, str):
        raise TypeError(f"jobDetails.status is {type(status).__name__}")


class PolicyGenerator:
    """Runs policy generation jobs one at a time.

    `on_status(principal_arn, status, elapsed_seconds)` reports progress; `on_started(principal_arn,
    job_id)` is called as soon as a job exists, before anything else happens, so that a killed run
    can pick the job up again. `delays` (default: `Delays.from_env()`) holds every wait.
    """

    def __init__(self, client, trail_arn: str, access_role: str, start: dt.datetime, end: dt.datetime,
                 clock=None, deadline: float | None = None,
                 on_status: Callable[[str, str, float], None] | None = None,
                 on_started: Callable[[str, str], None] | None = None, delays: Delays | None = None):
        self.client = client
        self.trail_arn, self.access_role = trail_arn, access_role
        self.start, self.end = start, end
        self.clock = clock or SystemClock()
        self.deadline = deadline
        self.delays = delays or Delays.from_env()
        self.retry = Retry(self.clock, deadline, self.delays)
        self.on_status = on_status or (lambda arn, status, elapsed: None)
        self.on_started = on_started or (lambda arn, job_id: None)
        self.jobs_started = 0

    # -- public --------------------------------------------------------------
    def generate(self, principal_arn: str) -> JobResult:
        """Start one job and poll it to its end. Raises QuotaExceeded or Stopped (the job left running)."""
        try:
            job_id = self.start_job(principal_arn)
        except PrincipalError as e:
            return JobResult(principal_arn, None, "ERROR", error=str(e.failure))
        return self.poll(principal_arn, job_id)

    def client_token(self, principal_arn: str) -> str:
        """Idempotent per principal and window: a retried start never creates a second job."""
        key = f"{principal_arn}|{iso(self.start)}|{iso(self.end)}"
        return "iamgate-" + hashlib.sha256(key.encode()).hexdigest()[:32]

    def find_jobs(self, principal_arns) -> list[ListedJob]:
        """The account's policy generations for these principals (all, given none), newest first.

        Access denied here is not account-wide: a job role from before this call was needed can
        still generate; the caller then knows only the jobs it recorded (PrincipalError)."""
        wanted = set(principal_arns)

        def listing():
            pages = self.client.get_paginator("list_policy_generations").paginate()
            return [g for page in pages for g in page["policyGenerations"]]

        def check(gens):
            for g in gens:
                g["jobId"], g["principalArn"], g["status"], g["startedOn"]  # noqa: B018 - the shape is checked

        jobs = [ListedJob(g["jobId"], g["principalArn"], g["status"], _iso(g["startedOn"]))
                for g in self.retry.call("ListPolicyGenerations", listing, check=check)
                if g["principalArn"] in wanted or not wanted]
        return sorted(jobs, key=lambda j: j.started_on, reverse=True)

    # -- steps ---------------------------------------------------------------
    def start_job(self, principal_arn: str) -> str:
        """The new job's id. Raises QuotaExceeded, Stopped, or PrincipalError (this principal cannot start)."""
        conflict = Backoff(self.delays.conflict_first, self.delays.conflict_max)
        self.retry.on_retry = lambda failure, delay: self.on_status(principal_arn, f"retrying: {failure}", 0)
        while True:
            try:
                job_id = self.retry.call("StartPolicyGeneration", lambda: self.client.start_policy_generation(
                    policyGenerationDetails={"principalArn": principal_arn},
                    cloudTrailDetails={"trails": [{"cloudTrailArn": self.trail_arn, "allRegions": True}],
                                       "accessRole": self.access_role, "startTime": self.start,
                                       "endTime": self.end},
                    clientToken=self.client_token(principal_arn)), check=lambda r: r["jobId"] + "",
                    denied_is_account=True)["jobId"]
            except PrincipalError as e:
                if e.failure.code == "ConflictException":
                    self.on_status(principal_arn, "waiting: another policy generation is running", 0)
                    self.retry.wait(conflict(), "waiting for another policy generation to finish")
                    continue
                if e.failure.code == "ServiceQuotaExceededException":
                    raise QuotaExceeded(f"{e.failure.code}: {e.failure.message}") from None
                raise
            self.jobs_started += 1
            self.on_started(principal_arn, job_id)
            return job_id

    def poll(self, principal_arn: str, job_id: str) -> JobResult:
        """Poll to the end. Errors are retried while time remains; Stopped leaves the job running."""
        began = self.clock.monotonic()
        delay, errors = Backoff(self.delays.poll_first, self.delays.poll_max), self.retry.backoff()
        unknown = 0
        while True:
            elapsed = self.clock.monotonic() - began
            try:
                resp = self.client.get_generated_policy(jobId=job_id, includeResourcePlaceholders=True,
                                                        includeServiceLevelTemplate=True)
                _check_generated(resp)
            except Exception as e:  # noqa: BLE001 - judged: a bug is re-raised, everything else retried
                failure = self.retry.judge(e, "GetGeneratedPolicy", denied_is_account=True)
                if failure.kind == ACCOUNT:
                    raise AccountError(failure) from None
                if failure.code in UNKNOWN_JOB_CODES:
                    unknown += 1
                    if unknown >= self.retry.attempts and not self._listed(job_id):
                        return JobResult(principal_arn, job_id, GONE, error=f"AWS does not know job {job_id}: "
                                                                            f"{failure}")
                self.on_status(principal_arn, f"retrying: {failure}", elapsed)
                self.retry.wait(errors(), f"retrying GetGeneratedPolicy for job {job_id} ({failure.code})")
                continue
            errors, unknown = self.retry.backoff(), 0
            details = resp["jobDetails"]
            status = details["status"]
            if status not in ENDED:
                self.on_status(principal_arn, "running", elapsed)
                self.retry.wait(delay(), f"policy generation {job_id} was running")
                continue
            raw = jsonable(resp)
            if status == "SUCCEEDED":
                return JobResult(principal_arn, job_id, status, raw)
            err = details.get("jobError") or {}
            text = f"{err.get('code', status)}: {err.get('message', '')}".rstrip(": ")
            return JobResult(principal_arn, job_id, status, raw,
                             error=text if status == "FAILED" else "the job was cancelled outside iamgate")

    def _listed(self, job_id: str) -> bool:
        """Whether ListPolicyGenerations still shows the job; True when that cannot be told."""
        try:
            return any(j.job_id == job_id for j in self.find_jobs(()))
        except PrincipalError:
            return True


def _iso(value) -> str:
    if isinstance(value, dt.datetime):
        return iso(value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc))
    return str(value)


@USAGE.register
class AccessAnalyzerUsage(UsageSource):
    """Generate policies for principal ARNs now and return them as baselines."""
    name = "access-analyzer"

    def __init__(self, generator: PolicyGenerator, principal_arns: list[str]):
        self.generator = generator
        self.principal_arns = principal_arns

    def collect(self) -> UsageResult:
        baselines, errors = [], []
        for arn in self.principal_arns:
            result = self.generator.generate(arn)
            if result.ok:
                baselines.append(to_baseline(result))
            else:
                errors.append(ScanError(arn, None, f"policy generation {result.status}: {result.error}"))
        return UsageResult(tuple(baselines), tuple(errors))
