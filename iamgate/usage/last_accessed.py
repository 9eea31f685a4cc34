"""IAM last accessed (`GenerateServiceLastAccessedDetails`, `Granularity=ACTION_LEVEL`): the second signal.

- A service the principal may use but never accessed in the tracking period (up to 400 days)
  goes to `not_accessed_services`: all its actions are observed-unused.
- An action-level entry with a last-accessed time counts as used, with signal `last-accessed`;
  given the window start (`since`), an access before it does not count: the action is simply not
  used in the window (its service is not "never accessed" either).
- A service accessed without action-level detail is service-level usage only, unless another
  source (Access Analyzer) covers it; `for_merge` drops that part for the merge.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import replace

from .. import __version__
from ..model import Baseline, ScanError, UsedAction
from . import USAGE, UsageResult, UsageSource
from .aws_clients import Backoff, SystemClock, iso, jsonable
from .aws_errors import Delays, PrincipalError, Retry

SIGNAL = "last-accessed"


class LastAccessedError(Exception):
    """This principal's last-accessed step failed (judged per call by iamgate.usage.aws_errors); the run goes on."""


def failed_source(error: str, at: str) -> dict:
    """The `sources` entry of a baseline whose last-accessed step failed: retried on the next run."""
    return {"kind": SIGNAL, "error": error, "failed_at": at, "tool_version": __version__}


def is_failed(source: dict) -> bool:
    return source.get("kind") == SIGNAL and bool(source.get("error"))


def _when(value) -> dt.datetime | None:
    """An API timestamp (datetime or ISO text) as an aware UTC datetime; None if unreadable."""
    if isinstance(value, dt.datetime):
        when = value
    else:
        try:
            when = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            return None
    return when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)


def _in_window(value, since: dt.datetime | None) -> bool:
    if since is None:
        return True
    when = _when(value)
    return when is None or when >= since  # unreadable: keep the old behaviour (counted)


def from_details(principal_arn: str, job_id: str, pages: list[dict], since: dt.datetime | str | None = None
                 ) -> Baseline:
    """GetServiceLastAccessedDetails pages (as JSON) -> a baseline.

    `since` is the window start: accesses before it are not usage in the window.
    """
    since = _when(since) if since is not None else None
    used: dict[str, UsedAction] = {}
    never, service_level = set(), set()
    generated_at = None
    for page in pages:
        generated_at = page.get("JobCompletionDate") or generated_at
        for svc in page.get("ServicesLastAccessed") or []:
            ns = str(svc.get("ServiceNamespace", "")).lower()
            if not ns:
                continue
            if not svc.get("LastAuthenticated"):
                never.add(ns)
                continue
            if not _in_window(svc["LastAuthenticated"], since):
                continue  # accessed, but not in the window: nothing used here, and not "never accessed"
            tracked = [t for t in svc.get("TrackedActionsLastAccessed") or [] if t.get("LastAccessedTime")]
            for t in tracked:
                name = str(t.get("ActionName", "")).lower()
                if name and _in_window(t["LastAccessedTime"], since):
                    action = name if ":" in name else f"{ns}:{name}"
                    used[action] = UsedAction(last_seen=t["LastAccessedTime"], signals=(SIGNAL,))
            if not tracked:
                service_level.add(ns)
    source = {"kind": SIGNAL, "job_id": job_id, "generated_at": generated_at, "tool_version": __version__}
    return Baseline(principal_arn=principal_arn, sources=(source,), used=used,
                    not_accessed_services=frozenset(never), service_level_only=frozenset(service_level))


def for_merge(b: Baseline) -> Baseline:
    """The part to merge with an Access Analyzer baseline, which decides service-level coverage itself."""
    return replace(b, service_level_only=frozenset())


def _page_shape(r: dict) -> None:
    """A reply to read: a status, and a `Marker` when truncated (without one the next call would ask
    for the first page again)."""
    r["JobStatus"] + ""  # noqa: B018 - the shape is checked
    if r.get("IsTruncated"):
        r["Marker"] + ""  # noqa: B018


class LastAccessed:
    """Each call judged by iamgate.usage.aws_errors: transient failures retried (bounded), then
    LastAccessedError for this principal; account-wide failures and the deadline raise Stopped."""

    def __init__(self, client, clock=None, deadline: float | None = None, delays: Delays | None = None):
        self.client = client
        self.clock = clock or SystemClock()
        self.deadline = deadline
        self.delays = delays or Delays.from_env()
        self.retry = Retry(self.clock, deadline, self.delays)

    def _wait(self, seconds: float) -> None:
        self.retry.wait(seconds, "waiting for last-accessed details")

    def _call(self, operation: str, method, check, **params) -> dict:
        try:
            return self.retry.call(operation, lambda: method(**params), check=check)
        except PrincipalError as e:
            raise LastAccessedError(str(e.failure)) from None

    def collect_for(self, principal_arn: str, since: dt.datetime | str | None = None) -> Baseline:
        """The principal's last-accessed baseline; with `since` (the window start), older access is not used."""
        job_id = self._call("GenerateServiceLastAccessedDetails", self.client.generate_service_last_accessed_details,
                            lambda r: r["JobId"] + "", Arn=principal_arn, Granularity="ACTION_LEVEL")["JobId"]
        delay = Backoff(self.delays.last_accessed_first, self.delays.last_accessed_max)
        pages: list[dict] = []
        marker = None
        while True:
            params = {"JobId": job_id, **({"Marker": marker} if marker else {})}
            page = self._call("GetServiceLastAccessedDetails", self.client.get_service_last_accessed_details,
                              _page_shape, **params)
            status = page["JobStatus"]
            if status == "IN_PROGRESS":
                self._wait(delay())
                continue
            if status == "FAILED":
                err = page.get("Error") or {}
                raise LastAccessedError(f"last-accessed job {job_id} failed: "
                                        f"{err.get('Code', '')}: {err.get('Message', '')}".rstrip(": "))
            pages.append(jsonable(page))
            if not page.get("IsTruncated"):
                break
            marker = page.get("Marker")
        b = from_details(principal_arn, job_id, pages, since)
        if b.sources[0].get("generated_at") is None:
            b = replace(b, sources=(dict(b.sources[0], generated_at=iso(self.clock.now())),))
        return b


@USAGE.register
class LastAccessedUsage(UsageSource):
    name = SIGNAL

    def __init__(self, last_accessed: LastAccessed, principal_arns: list[str], since: dt.datetime | None = None):
        self.last_accessed = last_accessed
        self.principal_arns = principal_arns
        self.since = since

    def collect(self) -> UsageResult:
        baselines, errors = [], []
        for arn in self.principal_arns:
            try:
                baselines.append(self.last_accessed.collect_for(arn, self.since))
            except LastAccessedError as e:
                errors.append(ScanError(arn, None, str(e)))
        return UsageResult(tuple(baselines), tuple(errors))
