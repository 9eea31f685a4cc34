"""boto3 clients for the jobs that talk to AWS: standard retries, one region, every call recorded.

Endpoints come from the environment: botocore itself honours `AWS_ENDPOINT_URL` and
`AWS_ENDPOINT_URL_<SERVICE>` (for example `AWS_ENDPOINT_URL_ACCESSANALYZER`), so a local or
compatible server needs nothing here.
"""
from __future__ import annotations

import datetime as dt
import re
import time
from dataclasses import dataclass

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from .. import __version__
from ..errors import UsageError


def client_config(**extra) -> Config:
    """Standard retries and iamgate's user agent, as a new Config for each client: botocore writes the
    resolved attempt count into a client's `retries` dict, so a shared one would pin the first
    client's AWS_MAX_ATTEMPTS on every later client."""
    return Config(retries={"mode": "standard"}, user_agent_extra=f"iamgate/{__version__}", **extra)


GLOBAL_SERVICES = {"iam": "us-east-1", "sts": "us-east-1"}
IAM_PREFIX = {"accessanalyzer": "access-analyzer"}  # boto3 service name -> IAM action prefix

# Every API call the AWS jobs make: (boto3 service, operation). The job's IAM policy is built
# from this list (`iamgate baseline --print-policy`) and a test checks the code against it.
API_CALLS: tuple[tuple[str, str], ...] = (
    ("sts", "GetCallerIdentity"),
    ("accessanalyzer", "StartPolicyGeneration"),
    ("accessanalyzer", "GetGeneratedPolicy"),
    ("accessanalyzer", "ListPolicyGenerations"),
    ("iam", "GenerateServiceLastAccessedDetails"),
    ("iam", "GetServiceLastAccessedDetails"),
    ("iam", "GetPolicy"),
    ("iam", "GetPolicyVersion"),
    ("cloudformation", "DescribeStackResource"),
)
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")
_TRAIL_ARN = re.compile(r"^arn:aws[a-z-]*:cloudtrail:[a-z0-9-]+:\d{12}:trail/[\w.-]+$")


def iam_action(service: str, operation: str) -> str:
    return f"{IAM_PREFIX.get(service, service)}:{operation}"


def is_role_arn(value: str) -> bool:
    return bool(_ROLE_ARN.match(value))


def is_trail_arn(value: str) -> bool:
    return bool(_TRAIL_ARN.match(value))


def error_code(e: ClientError) -> str:
    return e.response.get("Error", {}).get("Code", "")


def error_message(e: ClientError) -> str:
    err = e.response.get("Error", {})
    return f"{err.get('Code', 'error')}: {err.get('Message', '')}".rstrip(": ")


class SystemClock:
    """Wall time, a monotonic clock and sleep; tests pass a clock whose sleep only advances time."""

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class Backoff:
    """Successive delays: first, then times `factor`, capped at `maximum`."""

    def __init__(self, first: float, maximum: float, factor: float = 1.5):
        self.next, self.maximum, self.factor = first, maximum, factor

    def __call__(self) -> float:
        delay = self.next
        self.next = min(self.next * self.factor, self.maximum)
        return delay


def iso(value: dt.datetime) -> str:
    return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def jsonable(value):
    """A boto3 response as plain JSON: timestamps as ISO text, no ResponseMetadata."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items() if k != "ResponseMetadata"}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dt.datetime):
        return iso(value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc))
    return value


@dataclass(frozen=True)
class Identity:
    account: str
    partition: str
    arn: str


class Clients:
    """One client per service, created on first use, each recording the calls it makes."""

    def __init__(self, region: str | None = None, session: boto3.session.Session | None = None):
        self.session = session or boto3.session.Session()
        self.region = region or self.session.region_name
        self.calls: set[tuple[str, str]] = set()
        self._clients: dict[str, object] = {}
        self._identity: Identity | None = None

    def client(self, service: str, purpose: str = ""):
        """The client for `service`; a distinct `purpose` gets a client of its own."""
        key = f"{service}/{purpose}"
        if key not in self._clients:
            region = self.region or GLOBAL_SERVICES.get(service)
            if region is None:
                raise UsageError("no AWS region: pass --region, or set AWS_DEFAULT_REGION or `region` in the AWS "
                                 "config profile (boto3 does not read AWS_REGION)")
            c = self.session.client(service, region_name=region, config=client_config())
            c.meta.events.register("before-parameter-build", self._record)
            self._clients[key] = c
        return self._clients[key]

    def _record(self, model, **_) -> None:
        self.calls.add((model.service_model.service_name, model.name))

    def identity(self) -> Identity:
        if self._identity is None:
            arn = self.client("sts").get_caller_identity()["Arn"]
            parts = arn.split(":")
            self._identity = Identity(account=parts[4], partition=parts[1], arn=arn)
        return self._identity
