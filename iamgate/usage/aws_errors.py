"""How a failed AWS call is judged, and the bounded retry every AWS job uses.

Each failure is one of three kinds:

- `TRANSIENT`: throttling, 5xx, an unparseable reply (botocore's `ResponseParserError`, e.g. a 500
  with an HTML body), a dropped or refused connection, a reply of the wrong shape. Retried with
  backoff a bounded number of times; then it counts as `PRINCIPAL`.
- `PRINCIPAL`: the call failed for this one subject (a role denied by an SCP, `NoSuchEntity`, a
  validation error). Only that principal's step fails; the run goes on.
- `ACCOUNT`: nothing else can work either (expired, invalid or missing credentials; access denied
  on an API the whole job depends on). The run stops cleanly.

    retry = Retry(clock, deadline)
    try:
        page = retry.call("GetServiceLastAccessedDetails", lambda: iam.get_service_last_accessed_details(JobId=j),
                          check=lambda r: r["JobStatus"])
    except PrincipalError as e:   # transient retries used up, or a per-principal error: record e.failure
        ...
    except Stopped:               # AccountError (credentials, access) or OutOfTime (the deadline)
        ...

`Delays` holds every wait; `IAMGATE_DELAY_SCALE` (a factor, e.g. `0.001`) shrinks them all, for
tests and local stand-ins that answer at once.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from typing import Callable, TypeVar

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectionError,
    CredentialRetrievalError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    TokenRetrievalError,
)
from botocore.parsers import ResponseParserError

from .aws_clients import Backoff, SystemClock

TRANSIENT, PRINCIPAL, ACCOUNT = "transient", "principal", "account"
T = TypeVar("T")

THROTTLE_CODES = frozenset({
    "Throttling", "ThrottlingException", "ThrottledException", "TooManyRequestsException", "RequestThrottled",
    "RequestThrottledException", "RequestLimitExceeded", "SlowDown", "ProvisionedThroughputExceededException",
    "TransactionInProgressException", "BandwidthLimitExceeded", "EC2ThrottledException", "PriorRequestNotComplete"})
SERVER_CODES = frozenset({
    "InternalServerException", "InternalServerError", "InternalFailure", "InternalError", "ServiceUnavailable",
    "ServiceUnavailableException", "RequestTimeout", "RequestTimeoutException", "ServiceFailure",
    "ServiceException", "ServerException"})
CREDENTIAL_CODES = frozenset({
    "ExpiredToken", "ExpiredTokenException", "RequestExpired", "InvalidClientTokenId", "UnrecognizedClientException",
    "InvalidSignatureException", "SignatureDoesNotMatch", "AuthFailure", "MissingAuthenticationToken",
    "InvalidToken", "IncompleteSignature", "TokenRefreshRequired"})
DENIED_CODES = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "Forbidden"})
_CREDENTIAL_ERRORS = (NoCredentialsError, PartialCredentialsError, CredentialRetrievalError, TokenRetrievalError,
                      NoRegionError)
# ConnectionError covers EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError, ProxyConnectionError
_TRANSIENT_ERRORS = (ResponseParserError, ConnectionError, ConnectionClosedError, HTTPClientError,
                     IncompleteReadError)


@dataclass(frozen=True)
class Failure:
    """One judged failure: which call, AWS's error code (or the exception's name), and the message."""
    kind: str  # TRANSIENT | PRINCIPAL | ACCOUNT
    operation: str
    code: str
    message: str

    def __str__(self) -> str:
        text = f"{self.code}: {self.message}" if self.message else self.code
        return f"{self.operation}: {text}" if self.operation else text


class Stopped(Exception):
    """The run must stop now (credentials, access, the deadline, the quota); finished work is kept."""


class OutOfTime(Stopped):
    """The deadline came while waiting."""


class AccountError(Stopped):
    """An account-wide failure: no further call can succeed."""

    def __init__(self, failure: Failure):
        super().__init__(str(failure))
        self.failure = failure


class PrincipalError(Exception):
    """This principal's step failed (also: transient failures that outlasted the retries); the run goes on."""

    def __init__(self, failure: Failure):
        super().__init__(str(failure))
        self.failure = failure


def _status(e: ClientError) -> int:
    return int((e.response.get("ResponseMetadata") or {}).get("HTTPStatusCode") or 0)


def classify(e: BaseException, operation: str = "", denied_is_account: bool = False) -> Failure | None:
    """Judge an exception raised by an AWS call (or by reading its reply). None: not an AWS failure (a bug).

    `denied_is_account`: access denied on this operation means the whole job cannot work (e.g. the
    job role lacks `access-analyzer:StartPolicyGeneration`), rather than one principal being denied.
    """
    if isinstance(e, ClientError):
        err = e.response.get("Error") or {}
        code, message, status = str(err.get("Code") or ""), str(err.get("Message") or ""), _status(e)
        if code in CREDENTIAL_CODES:
            kind = ACCOUNT
        elif code in DENIED_CODES:
            kind = ACCOUNT if denied_is_account else PRINCIPAL
        elif code in THROTTLE_CODES or code in SERVER_CODES or status == 429 or status >= 500:
            kind = TRANSIENT
        else:
            kind = PRINCIPAL
        return Failure(kind, operation, code or f"HTTP {status}", message)
    if isinstance(e, _CREDENTIAL_ERRORS):
        return Failure(ACCOUNT, operation, type(e).__name__, str(e))
    if isinstance(e, _TRANSIENT_ERRORS):
        return Failure(TRANSIENT, operation, type(e).__name__, str(e))
    if isinstance(e, BotoCoreError):  # e.g. parameter validation: this call, not the account
        return Failure(PRINCIPAL, operation, type(e).__name__, str(e))
    return None


def unexpected_reply(operation: str, e: Exception) -> Failure:
    """A reply of the wrong shape (a missing key, a wrong type): transient, the next reply may be fine."""
    detail = f"missing {e}" if isinstance(e, KeyError) else f"{type(e).__name__}: {e}"
    return Failure(TRANSIENT, operation, "UnexpectedResponse", f"the reply has an unexpected shape ({detail})")


@dataclass(frozen=True)
class Delays:
    """Every wait of the AWS jobs, in seconds: (first, maximum) of each backoff."""
    poll_first: float = 5.0  # GetGeneratedPolicy while a policy generation runs
    poll_max: float = 60.0
    conflict_first: float = 30.0  # StartPolicyGeneration while another job runs (ConflictException)
    conflict_max: float = 300.0
    retry_first: float = 2.0  # throttling and other transient failures
    retry_max: float = 60.0
    last_accessed_first: float = 2.0  # GetServiceLastAccessedDetails while its job runs
    last_accessed_max: float = 30.0
    recommendation_first: float = 2.0  # GetFindingRecommendation while AWS generates one (unused access)
    recommendation_max: float = 30.0

    def scaled(self, factor: float) -> "Delays":
        return replace(self, **{f.name: getattr(self, f.name) * factor for f in fields(self)})

    @classmethod
    def from_env(cls) -> "Delays":
        """The defaults, times `IAMGATE_DELAY_SCALE` when that is set (to a positive number)."""
        text = os.environ.get("IAMGATE_DELAY_SCALE", "").strip()
        try:
            factor = float(text) if text else 1.0
        except ValueError:
            factor = 1.0
        return cls().scaled(factor) if factor > 0 else cls()


class Retry:
    """Bounded retries of transient failures, waits that use the time left before `deadline`.

    `clock` has `monotonic()` and `sleep()` (tests pass one whose sleep only advances time);
    `deadline` is a `clock.monotonic()` value or None; `on_retry(failure, delay)` reports each retry.
    """

    ATTEMPTS = 5  # tries per call, on top of botocore's own (standard mode) retries

    def __init__(self, clock=None, deadline: float | None = None, delays: Delays | None = None,
                 attempts: int | None = None, on_retry: Callable[[Failure, float], None] | None = None):
        self.clock = clock or SystemClock()
        self.deadline = deadline
        self.delays = delays or Delays.from_env()
        self.attempts = attempts or self.ATTEMPTS
        self.on_retry = on_retry or (lambda failure, delay: None)

    def remaining(self) -> float | None:
        return None if self.deadline is None else self.deadline - self.clock.monotonic()

    def wait(self, seconds: float, why: str) -> None:
        """Sleep `seconds`, or what is left before the deadline if less; OutOfTime once none is left."""
        left = self.remaining()
        if left is not None and left <= 0:
            raise OutOfTime(f"timed out while {why}")
        self.clock.sleep(seconds if left is None else min(seconds, left))

    def backoff(self) -> Backoff:
        return Backoff(self.delays.retry_first, self.delays.retry_max)

    def judge(self, e: Exception, operation: str, denied_is_account: bool = False) -> Failure:
        """`classify`, with any other exception from reading a reply counted as an unexpected reply."""
        failure = classify(e, operation, denied_is_account)
        if failure is None:
            if not isinstance(e, (KeyError, TypeError, ValueError, AttributeError, IndexError)):
                raise e
            failure = unexpected_reply(operation, e)
        return failure

    def call(self, operation: str, fn: Callable[[], T], *, check: Callable[[T], object] | None = None,
             denied_is_account: bool = False, attempts: int | None = None, retry_codes: frozenset = frozenset()
             ) -> T:
        """`fn()` (its reply checked by `check`, whose errors count as an unexpected reply), retried.

        Raises AccountError (a Stopped) for account-wide failures, OutOfTime at the deadline, and
        PrincipalError for anything else once the retries are used up. `retry_codes`: error codes
        that are transient for this operation although they are not in general.
        """
        backoff = self.backoff()
        tries = attempts or self.attempts
        for attempt in range(1, tries + 1):
            try:
                reply = fn()
                if check is not None:
                    check(reply)
                return reply
            except Exception as e:  # noqa: BLE001 - judged below; a bug is re-raised by judge
                failure = self.judge(e, operation, denied_is_account)
            if failure.kind == PRINCIPAL and failure.code in retry_codes:
                failure = replace(failure, kind=TRANSIENT)
            if failure.kind == ACCOUNT:
                raise AccountError(failure) from None
            if failure.kind == PRINCIPAL or attempt == tries:
                raise PrincipalError(replace(failure, kind=PRINCIPAL)) from None
            delay = backoff()
            self.on_retry(failure, delay)
            self.wait(delay, f"retrying {operation} ({failure.code})")
        raise AssertionError("unreachable")
