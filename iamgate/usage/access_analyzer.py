"""IAM Access Analyzer policy generation: one job at a time, polled with backoff, under AWS's limits.

`StartPolicyGeneration` allows one running job per account and 50 a day (cancelled jobs count),
over a window of at most 90 days; jobs take minutes. A `ConflictException` means another job is
running (maybe not ours): wait and retry. Throttling backs off. A quota error stops the run.
The result is normalised by `iamgate.baseline.from_generated_policy`.
"""
from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field, replace
from typing import Callable

from botocore.exceptions import ClientError

from .. import __version__
from .. import baseline as fmt
from ..aws import Backoff, SystemClock, error_code, error_message, iso, jsonable
from ..model import Baseline, ScanError
from . import USAGE, UsageResult, UsageSource

MAX_DAYS = 90
DAILY_JOBS = 50
POLL_FIRST, POLL_MAX = 5.0, 60.0
CONFLICT_FIRST, CONFLICT_MAX = 30.0, 300.0
THROTTLE_FIRST, THROTTLE_MAX = 2.0, 60.0


class QuotaExceeded(Exception):
    """The account's policy-generation quota is used up: stop, keep what finished, resume later."""


class Stopped(Exception):
    """The run cannot go on (timeout, access denied); the running job, if any, was cancelled."""


@dataclass(frozen=True)
class JobResult:
    principal_arn: str
    job_id: str | None
    status: str  # SUCCEEDED | FAILED | CANCELED | ERROR
    raw: dict | None = field(default=None, hash=False)  # the get-generated-policy output, as JSON
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "SUCCEEDED"


def window(now: dt.datetime, days: int) -> tuple[dt.datetime, dt.datetime]:
    if not 1 <= days <= MAX_DAYS:
        raise ValueError(f"the window must be 1 to {MAX_DAYS} days, not {days}")
    return now - dt.timedelta(days=days), now


def to_baseline(result: JobResult) -> Baseline:
    """A succeeded job as an iamgate.baseline/v1 baseline (the tool version added to its source)."""
    b = fmt.from_generated_policy(result.raw)
    return replace(b, sources=tuple(dict(s, tool_version=__version__) for s in b.sources), files=())


class PolicyGenerator:
    """Runs policy generation jobs one at a time.

    `on_status(principal_arn, status, elapsed_seconds)` reports progress; `on_started(principal_arn,
    job_id)` is called as soon as a job exists, so a killed run can pick the job up again.
    """

    def __init__(self, client, trail_arn: str, access_role: str, start: dt.datetime, end: dt.datetime,
                 clock=None, deadline: float | None = None,
                 on_status: Callable[[str, str, float], None] | None = None,
                 on_started: Callable[[str, str], None] | None = None):
        self.client = client
        self.trail_arn, self.access_role = trail_arn, access_role
        self.start, self.end = start, end
        self.clock = clock or SystemClock()
        self.deadline = deadline
        self.on_status = on_status or (lambda arn, status, elapsed: None)
        self.on_started = on_started or (lambda arn, job_id: None)
        self.jobs_started = 0

    # -- public --------------------------------------------------------------
    def generate(self, principal_arn: str, resume_job: str | None = None) -> JobResult:
        """Run (or, with `resume_job`, pick up) one job to its end. Raises QuotaExceeded or Stopped."""
        if resume_job:
            result = self.poll(principal_arn, resume_job, picked_up=True)
            if result is not None:
                return result
        job_id = self.start_job(principal_arn)
        if job_id is None:
            return JobResult(principal_arn, None, "ERROR", error=self._start_error)
        return self.poll(principal_arn, job_id)

    # -- steps ---------------------------------------------------------------
    def _wait(self, seconds: float, why: str) -> None:
        if self.deadline is not None and self.clock.monotonic() + seconds > self.deadline:
            raise Stopped(f"timed out while {why}")
        self.clock.sleep(seconds)

    def client_token(self, principal_arn: str) -> str:
        """Idempotent per principal and window: a retried start never creates a second job."""
        key = f"{principal_arn}|{iso(self.start)}|{iso(self.end)}"
        return "iamgate-" + hashlib.sha256(key.encode()).hexdigest()[:32]

    def start_job(self, principal_arn: str) -> str | None:
        conflict, throttle = Backoff(CONFLICT_FIRST, CONFLICT_MAX), Backoff(THROTTLE_FIRST, THROTTLE_MAX)
        self._start_error = ""
        while True:
            try:
                job_id = self.client.start_policy_generation(
                    policyGenerationDetails={"principalArn": principal_arn},
                    cloudTrailDetails={"trails": [{"cloudTrailArn": self.trail_arn, "allRegions": True}],
                                       "accessRole": self.access_role, "startTime": self.start,
                                       "endTime": self.end},
                    clientToken=self.client_token(principal_arn))["jobId"]
            except ClientError as e:
                code = error_code(e)
                if code == "ConflictException":
                    self.on_status(principal_arn, "waiting: another policy generation is running", 0)
                    self._wait(conflict(), "waiting for another policy generation to finish")
                    continue
                if code in ("ThrottlingException", "TooManyRequestsException"):
                    self._wait(throttle(), "throttled")
                    continue
                if code == "ServiceQuotaExceededException":
                    raise QuotaExceeded(error_message(e)) from None
                if code in ("AccessDeniedException", "UnrecognizedClientException", "ExpiredTokenException"):
                    raise Stopped(f"StartPolicyGeneration: {error_message(e)}") from None
                self._start_error = f"StartPolicyGeneration: {error_message(e)}"
                return None
            self.jobs_started += 1
            self.on_started(principal_arn, job_id)
            return job_id

    def poll(self, principal_arn: str, job_id: str, picked_up: bool = False) -> JobResult | None:
        """Poll to the end; Ctrl-C or the deadline cancels the job once. None: nothing to pick up."""
        began = self.clock.monotonic()
        delay, throttle = Backoff(POLL_FIRST, POLL_MAX), Backoff(THROTTLE_FIRST, THROTTLE_MAX)
        try:
            while True:
                try:
                    resp = self.client.get_generated_policy(jobId=job_id, includeResourcePlaceholders=True,
                                                            includeServiceLevelTemplate=True)
                except ClientError as e:
                    if error_code(e) in ("ThrottlingException", "TooManyRequestsException"):
                        self._wait(throttle(), "throttled")
                        continue
                    if picked_up:
                        return None
                    return JobResult(principal_arn, job_id, "ERROR", error=f"GetGeneratedPolicy: {error_message(e)}")
                details = resp["jobDetails"]
                status = details["status"]
                elapsed = self.clock.monotonic() - began
                if status == "IN_PROGRESS":
                    self.on_status(principal_arn, "running", elapsed)
                    self._wait(delay(), f"policy generation {job_id} was running")
                    continue
                if picked_up and status != "SUCCEEDED":
                    return None
                raw = jsonable(resp)
                if status == "SUCCEEDED":
                    return JobResult(principal_arn, job_id, status, raw)
                err = details.get("jobError") or {}
                text = f"{err.get('code', status)}: {err.get('message', '')}".rstrip(": ")
                return JobResult(principal_arn, job_id, status, raw,
                                 error=text if status == "FAILED" else "the job was cancelled outside iamgate")
        except (KeyboardInterrupt, Stopped):
            self.cancel(job_id)
            raise

    def cancel(self, job_id: str) -> None:
        """Once, best effort: a failing cancel must not hide why the run stopped."""
        try:
            self.client.cancel_policy_generation(jobId=job_id)
        except (Exception, KeyboardInterrupt):  # noqa: BLE001 - endpoint or credential trouble while stopping
            pass


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
