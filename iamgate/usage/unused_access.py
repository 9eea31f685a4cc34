"""Usage from an IAM Access Analyzer *unused access* analyzer: findings for every role and user at once.

An unused-access analyzer (`ACCOUNT_UNUSED_ACCESS` or `ORGANIZATION_UNUSED_ACCESS`, tracking period
`unusedAccessAge` of 1-365 days) keeps findings per IAM role and user:

- `UnusedPermission`: per service, the unused actions (action level where AWS tracks it) or the
  whole service (service level), with `lastAccessed`;
- `UnusedIAMRole`: the role was not used at all in the tracking period;
- `UnusedIAMUserAccessKey` / `UnusedIAMUserPassword`: credentials (recorded, no action verdicts).

A finding lists what is unused; what was used is the rest of the grant the analyzer judged. So
each baseline records that grant (the principal's deployed policies, read with
`iam:GetAccountAuthorizationDetails`) and `judge` decides over it (see `judge` for the rules).
AWS analyses only principals and permissions that existed for the whole tracking period
(IAM User Guide, "Create an unused access analyzer"): anything newer is not judged.
"""
from __future__ import annotations

import datetime as dt
import fnmatch
import json
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable, Iterable
from urllib.parse import unquote

from botocore.exceptions import (BotoCoreError, ClientError, CredentialRetrievalError, HTTPClientError,
                                 NoCredentialsError, NoRegionError, PartialCredentialsError)
from botocore.exceptions import ConnectionError as BotoConnectionError
from botocore.parsers import ResponseParserError

from .. import __version__
from ..aws import Backoff, SystemClock, error_code, error_message, iso, jsonable
from ..evaluate import UNOBSERVABLE, UNUSED, USED
from ..model import Baseline, Policy, Principal, ScanError, UnusedAccessEvidence
from . import USAGE, UsageResult, UsageSource

KIND = "unused-access"
UNUSED_ACCESS_TYPES = ("ACCOUNT_UNUSED_ACCESS", "ORGANIZATION_UNUSED_ACCESS")
ACTION_FINDINGS = ("UnusedPermission", "UnusedIAMRole")
CREDENTIAL_FINDINGS = ("UnusedIAMUserAccessKey", "UnusedIAMUserPassword")
READ_STATUSES = ("ACTIVE", "ARCHIVED")  # archived still means unused (someone chose to hide it); RESOLVED does not
DEFAULT_TRACKING_DAYS = 90
RECOMMENDATION_FIRST, RECOMMENDATION_MAX = 2.0, 30.0

# Every API call `iamgate usage unused-access` makes: its `--print-policy` is built from this list
# and a test checks the calls the command really made against it.
API_CALLS: tuple[tuple[str, str], ...] = (
    ("accessanalyzer", "ListAnalyzers"),
    ("accessanalyzer", "GetAnalyzer"),
    ("accessanalyzer", "ListFindingsV2"),
    ("accessanalyzer", "GetFindingV2"),
    ("accessanalyzer", "GenerateFindingRecommendation"),
    ("accessanalyzer", "GetFindingRecommendation"),
    ("iam", "GetAccountAuthorizationDetails"),
)


# -- verdicts (pure) ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Judgement:
    """What this source decided (verdict -> reason -> actions) and what it leaves (reason -> actions)."""
    groups: dict = field(default_factory=dict)
    remainder: dict = field(default_factory=dict)

    @property
    def left(self) -> frozenset:
        return frozenset().union(*self.remainder.values())


def judge(granted: frozenset, ev: UnusedAccessEvidence, deployed: frozenset | None, too_new: frozenset,
          tracked: frozenset, service_actions: Callable[[Iterable[str]], frozenset]) -> Judgement:
    """The verdicts an unused-access baseline decides for `granted` (lowercase actions).

    - not analysed (no `analyzedAt`, or the principal is newer than the tracking period): nothing
      decided here; every action is left with that reason (no-usage-data when no other source has it);
    - an action reported unused: unused; a service reported unused at service level: all of its
      deployed actions unused; `UnusedIAMRole`: the whole deployed grant unused;
    - a deployed action AWS tracks at action level (`tracked`: the last-accessed flag) and did not
      report: used; an untracked one of a service not reported: unobservable (service-level usage only);
    - an action the deployed grant lacks (a new grant), or granted only by a policy newer than the
      tracking period (`too_new`): not judged, left for the other sources.
    """
    groups: dict[str, dict[str, frozenset]] = {}
    remainder: dict[str, frozenset] = {}

    def put(verdict: str, reason: str, actions) -> None:
        if actions:
            groups.setdefault(verdict, {})[reason] = frozenset(actions)

    def leave(reason: str, actions) -> None:
        if actions:
            remainder[reason] = frozenset(actions)

    period = f"{ev.tracking_days}-day tracking period"
    if ev.analyzed_at is None:
        leave(f"not analysed by the unused-access analyzer: {ev.not_analysed or 'no analysis yet'}", granted)
        return Judgement(groups, remainder)
    rest = granted
    hit = rest & ev.unused_actions.keys()
    put(UNUSED, f"reported unused by Access Analyzer ({period})", hit)
    rest -= hit
    if deployed is None:
        leave("the deployed grant was not read, so only actions reported unused are judged", rest)
        return Judgement(groups, remainder)
    judged = deployed - too_new
    if ev.unused_role:
        put(UNUSED, f"role not used at all in the {period} (UnusedIAMRole)", rest & judged)
        rest -= judged
    if ev.unused_services:
        hit = rest & judged & service_actions(ev.unused_services)
        put(UNUSED, f"service not used in the {period} (Access Analyzer, service level)", hit)
        rest -= hit
    hit = rest & judged & tracked
    put(USED, f"not reported unused by Access Analyzer ({period}, tracked per action)", hit)
    rest -= hit
    hit = rest & judged
    put(UNOBSERVABLE, "service-level usage only", hit)
    rest -= hit
    leave("granted by a policy newer than the tracking period: not analysed yet", rest & deployed)
    leave("not in the deployed grant the analyzer judged (a new grant)", rest - deployed)
    return Judgement(groups, remainder)


def _document(raw) -> dict | None:
    """A policy document as IAM returns it: a dict (boto3 decodes it) or URL-encoded JSON text."""
    if isinstance(raw, dict):
        return raw
    if isinstance(raw, str):
        for text in (raw, unquote(raw)):
            try:
                doc = json.loads(text)
            except ValueError:
                continue
            return doc if isinstance(doc, dict) else None
    return None


@lru_cache(maxsize=1024)
def deployed_grant(ev: UnusedAccessEvidence, catalog, window_start: str | None) -> tuple[frozenset, frozenset]:
    """(everything the deployed policies grant, what only policies newer than `window_start` grant)."""
    from .. import grants
    from ..policydoc import parse_policy
    old, new = [], []
    for p in ev.deployed_policies or ():
        parsed = parse_policy(p.get("document"), f"deployed:{p.get('arn') or p.get('name')}")
        policy = Policy(str(p.get("name")), tuple(parsed.statements))
        created = p.get("created")
        (new if created and window_start and created > window_start else old).append(policy)
    everything = grants.compute(Principal("deployed", "role", policies=tuple(old + new)), catalog).actions
    if not new:
        return everything, frozenset()
    judged = grants.compute(Principal("deployed", "role", policies=tuple(old)), catalog).actions
    return everything, everything - judged


def decide(granted: frozenset, baseline: Baseline, obs) -> Judgement:
    """`judge` for a baseline with an unused-access section, with iamgate's catalog and support data."""
    ev = baseline.unused_access
    deployed, too_new = (None, frozenset()) if ev.deployed_policies is None else deployed_grant(
        ev, obs.catalog, baseline.window_start)
    return judge(granted, ev, deployed, too_new, _tracked(), obs.services)


@lru_cache(maxsize=1)
def _tracked() -> frozenset:
    from .. import support
    return support.load().last_accessed


# -- reading the analyzer -------------------------------------------------------------------------

class AnalyzerError(Exception):
    """The analyzer cannot be used (missing, wrong type, disabled): a usage error."""


class Stopped(Exception):
    """Nothing further can work (credentials, access denied, the deadline); finished baselines are kept."""


class PrincipalError(Exception):
    """One call for one principal failed after retries; that principal is skipped, the run goes on."""

    def __init__(self, message: str, code: str = ""):
        super().__init__(message)
        self.code = code


_THROTTLE = {"ThrottlingException", "TooManyRequestsException", "Throttling", "RequestLimitExceeded"}
_SERVER = {"InternalServerException", "ServiceUnavailableException", "InternalFailure"}
_NO_CREDENTIALS = (NoCredentialsError, PartialCredentialsError, CredentialRetrievalError, NoRegionError)
_CONNECTION = (BotoConnectionError, HTTPClientError, ResponseParserError)
_ACCOUNT = {"AccessDeniedException", "AccessDenied", "UnrecognizedClientException", "ExpiredTokenException",
            "ExpiredToken", "InvalidClientTokenId"}


class Retry:
    """Bounded retries of throttling and 5xx with backoff, within the deadline.

    The same small interface as `iamgate.aws_errors.Retry` (branch i13): `call(operation, fn)`
    raises `Stopped` for account-wide failures and `PrincipalError` for the rest."""
    ATTEMPTS = 6

    def __init__(self, clock=None, deadline: float | None = None, first: float = 2.0, maximum: float = 60.0):
        self.clock, self.deadline = clock or SystemClock(), deadline
        self.first, self.maximum = first, maximum

    def wait(self, seconds: float, why: str) -> None:
        if self.deadline is not None and self.clock.monotonic() + seconds > self.deadline:
            raise Stopped(f"timed out while {why}")
        self.clock.sleep(seconds)

    def call(self, operation: str, fn, denied_is_account: bool = False):
        """`fn()`, retried; `denied_is_account`: access denied here means the whole run cannot work."""
        backoff = Backoff(self.first, self.maximum)
        for attempt in range(1, self.ATTEMPTS + 1):
            try:
                return fn()
            except _NO_CREDENTIALS as e:
                raise Stopped(f"{operation}: {e}") from None
            except ClientError as e:
                code = error_code(e)
                status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
                if code in _ACCOUNT and (denied_is_account or "Denied" not in code):
                    raise Stopped(f"{operation}: {error_message(e)}") from None
                if not (code in _THROTTLE or code in _SERVER or status == 429 or status >= 500) or \
                        attempt == self.ATTEMPTS:
                    raise PrincipalError(f"{operation}: {error_message(e)}", code) from None
            except _CONNECTION as e:  # retried like throttling
                if attempt == self.ATTEMPTS:
                    raise PrincipalError(f"{operation}: {e}") from None
            except BotoCoreError as e:  # e.g. parameter validation: this call, not the account
                raise PrincipalError(f"{operation}: {e}") from None
            self.wait(backoff(), f"retrying {operation}")
        raise AssertionError("unreachable")


def analyzer_name(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


def _when(value) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
    if isinstance(value, str) and value:
        try:
            return _when(dt.datetime.fromisoformat(value.replace("Z", "+00:00")))
        except ValueError:
            return None
    return None


def _stamp(value) -> str | None:
    when = _when(value)
    return iso(when) if when else None


@dataclass(frozen=True)
class Analyzer:
    arn: str
    name: str
    type: str
    status: str
    tracking_days: int
    last_analyzed_at: str | None
    created_at: str | None
    exclusions: tuple[dict, ...] = ()  # the analysis rule's: {"accountIds": [...], "resourceTags": [{k: v}]}

    def excludes(self, arn: str, tags: dict) -> str:
        """Why the analysis rule leaves this principal out, or "". Read broadly (any account, any one tag):
        a principal wrongly taken as excluded is `no-usage-data`; one wrongly taken as analysed is `used`."""
        account = arn.split(":")[4] if arn.count(":") >= 5 else ""
        for rule in self.exclusions:
            if account in (rule.get("accountIds") or ()):
                return f"account {account} is excluded by the analyzer's analysis rule"
            for m in rule.get("resourceTags") or ():
                hit = sorted(k for k, v in m.items() if tags.get(k) == v)
                if hit:
                    return f"tag {hit[0]}={m[hit[0]]} is excluded by the analyzer's analysis rule"
        return ""


@dataclass(frozen=True)
class DeployedPrincipal:
    arn: str
    kind: str  # role | user
    created: str | None
    policies: tuple[dict, ...]  # {"name", "arn"?, "document", "created"?}
    missing: tuple[str, ...] = ()  # attached managed policies not in the reply
    tags: dict = field(default_factory=dict, hash=False, compare=False)


def principal_kind(arn: str) -> str:
    return arn.split(":", 5)[5].split("/", 1)[0] if arn.count(":") >= 5 else ""


def matches(arn: str, globs: list[str]) -> bool:
    """An ARN or its name matches one of the globs (case-insensitive); no globs: everything."""
    if not globs:
        return True
    name = arn.rsplit("/", 1)[-1].lower()
    return any(fnmatch.fnmatchcase(arn.lower(), g.lower()) or fnmatch.fnmatchcase(name, g.lower()) for g in globs)


class UnusedAccessReader:
    """The API calls, each retried on throttling; a finding's details and recommendation paged through."""

    def __init__(self, client, iam=None, clock=None, deadline: float | None = None, retry: Retry | None = None):
        self.client, self.iam = client, iam
        self.clock = clock or SystemClock()
        self.retry = retry or Retry(self.clock, deadline)

    def _pages(self, operation: str, method, result_key: str, **params) -> list:
        items, token = [], None
        while True:
            page = self.retry.call(operation, lambda: method(**params, **({"nextToken": token} if token else {})),
                                   denied_is_account=True)
            items.extend(page.get(result_key) or [])
            token = page.get("nextToken")
            if not token:
                return items

    def analyzers(self) -> list[dict]:
        return self._pages("ListAnalyzers", self.client.list_analyzers, "analyzers")

    def analyzer(self, arn: str | None) -> Analyzer:
        """The analyzer by ARN (or the only unused-access one); AnalyzerError if it cannot serve."""
        if arn is None:
            found = [a for a in self.analyzers() if a.get("type") in UNUSED_ACCESS_TYPES]
            if len(found) != 1:
                names = ", ".join(a["arn"] for a in found) or "none"
                raise AnalyzerError(f"give --analyzer ARN: {len(found)} unused-access analyzer(s) here ({names})")
            summary = found[0]
        else:
            try:
                summary = self.retry.call("GetAnalyzer", lambda: self.client.get_analyzer(
                    analyzerName=analyzer_name(arn)), denied_is_account=True)["analyzer"]
            except PrincipalError as e:
                if e.code == "ResourceNotFoundException":
                    raise AnalyzerError(f"--analyzer {arn}: no such analyzer in this account and region"
                                        f"{self._others()}") from None
                raise AnalyzerError(str(e)) from None
            if summary.get("arn") != arn:
                raise AnalyzerError(f"--analyzer {arn}: this region's analyzer of that name is {summary.get('arn')}")
        return self._check(summary)

    def _others(self) -> str:
        try:
            found = [a["arn"] for a in self.analyzers() if a.get("type") in UNUSED_ACCESS_TYPES]
        except (PrincipalError, Stopped):
            return ""
        return f" (unused-access analyzers here: {', '.join(found)})" if found else " (none of unused-access type)"

    def _check(self, a: dict) -> Analyzer:
        if a.get("type") not in UNUSED_ACCESS_TYPES:
            raise AnalyzerError(f"analyzer {a.get('arn')} is of type {a.get('type')}, not an unused-access analyzer "
                                f"({' or '.join(UNUSED_ACCESS_TYPES)}): it has no unused-access findings")
        if a.get("status") in ("DISABLED", "FAILED"):
            reason = (a.get("statusReason") or {}).get("code", "")
            raise AnalyzerError(f"analyzer {a['arn']} is {a['status']}" + (f" ({reason})" if reason else ""))
        days = ((a.get("configuration") or {}).get("unusedAccess") or {}).get("unusedAccessAge")
        rule = ((a.get("configuration") or {}).get("unusedAccess") or {}).get("analysisRule") or {}
        return Analyzer(a["arn"], a["name"], a["type"], a["status"], int(days or DEFAULT_TRACKING_DAYS),
                        _stamp(a.get("lastResourceAnalyzedAt")), _stamp(a.get("createdAt")),
                        tuple(rule.get("exclusions") or ()))

    def findings(self, analyzer: Analyzer, accounts: list[str]) -> list[dict]:
        """Unused-access findings (ACTIVE and ARCHIVED), filtered on type, status and account by AWS."""
        criteria = {"findingType": {"eq": list(ACTION_FINDINGS + CREDENTIAL_FINDINGS)},
                    "status": {"eq": list(READ_STATUSES)}}
        if accounts:
            criteria["resourceOwnerAccount"] = {"eq": list(accounts)}
        found = self._pages("ListFindingsV2", self.client.list_findings_v2, "findings",
                            analyzerArn=analyzer.arn, filter=criteria)
        return [f for f in found if f.get("status") in READ_STATUSES]  # a RESOLVED one is no longer true

    def finding(self, analyzer: Analyzer, finding_id: str) -> dict:
        """GetFindingV2 with every page of `findingDetails`."""
        first, details, token = None, [], None
        while True:
            page = self.retry.call("GetFindingV2", lambda: self.client.get_finding_v2(
                analyzerArn=analyzer.arn, id=finding_id, **({"nextToken": token} if token else {})))
            first = first or page
            details.extend(page.get("findingDetails") or [])
            token = page.get("nextToken")
            if not token:
                return dict(first, findingDetails=details)

    def _get_recommendation(self, analyzer: Analyzer, finding_id: str, token: str | None = None) -> dict:
        return self.retry.call("GetFindingRecommendation", lambda: self.client.get_finding_recommendation(
            analyzerArn=analyzer.arn, id=finding_id, **({"nextToken": token} if token else {})))

    def start_recommendation(self, analyzer: Analyzer, finding_id: str, since: str | None = None) -> dict | None:
        """AWS's recommended policy for an UnusedPermission finding if a finished one exists and is not
        older than the finding's last update (`since`); else None, with a new one being generated."""
        try:
            page = self._get_recommendation(analyzer, finding_id)
        except PrincipalError as e:
            if e.code != "ResourceNotFoundException":
                raise
            page = None
        if page is not None and page.get("status") == "IN_PROGRESS":
            return None  # being generated already
        if page is None or (since and (_stamp(page.get("completedAt")) or "") < since):
            self.retry.call("GenerateFindingRecommendation", lambda: self.client.generate_finding_recommendation(
                analyzerArn=analyzer.arn, id=finding_id))
            return None
        return self._record(analyzer, finding_id, page)

    def finish_recommendation(self, analyzer: Analyzer, finding_id: str) -> dict:
        """Wait for a recommendation being generated, with backoff, and read all of it."""
        delay = Backoff(RECOMMENDATION_FIRST, RECOMMENDATION_MAX)
        page = self._get_recommendation(analyzer, finding_id)
        while page.get("status") == "IN_PROGRESS":
            self.retry.wait(delay(), "waiting for an Access Analyzer recommendation")
            page = self._get_recommendation(analyzer, finding_id)
        return self._record(analyzer, finding_id, page)

    def _record(self, analyzer: Analyzer, finding_id: str, page: dict) -> dict:
        steps = list(page.get("recommendedSteps") or [])
        token = page.get("nextToken")
        while token:
            more = self._get_recommendation(analyzer, finding_id, token)
            steps.extend(more.get("recommendedSteps") or [])
            token = more.get("nextToken")
        return recommendation_record(finding_id, page, steps)

    def recommendation(self, analyzer: Analyzer, finding_id: str, notes: list[str], since: str | None = None
                       ) -> dict | None:
        """Start and finish one recommendation; a failure is a note, not an error."""
        try:
            return self.start_recommendation(analyzer, finding_id, since) or self.finish_recommendation(
                analyzer, finding_id)
        except PrincipalError as e:
            notes.append(f"no recommendation: {e}")
            return None

    def deployed(self) -> dict[str, DeployedPrincipal]:
        """Every role and user of the caller's account with its policies (GetAccountAuthorizationDetails)."""
        details: dict[str, list] = {"RoleDetailList": [], "UserDetailList": [], "GroupDetailList": [], "Policies": []}
        marker = None
        while True:
            page = self.retry.call("GetAccountAuthorizationDetails", lambda: self.iam.get_account_authorization_details(
                Filter=["Role", "User", "Group", "LocalManagedPolicy", "AWSManagedPolicy"],
                **({"Marker": marker} if marker else {})), denied_is_account=True)
            for key in details:
                details[key].extend(page.get(key) or [])
            marker = page.get("Marker") if page.get("IsTruncated") else None
            if not marker:
                return deployed_from_details(details)


def recommendation_record(finding_id: str, page: dict, steps: list[dict]) -> dict:
    out = []
    for s in steps:
        step = s.get("unusedPermissionsRecommendedStep") or {}
        doc = _document(step.get("recommendedPolicy")) if step.get("recommendedPolicy") else None
        out.append({"action": step.get("recommendedAction"), "existing_policy": step.get("existingPolicyId"),
                    "policy": doc, "policy_updated_at": _stamp(step.get("policyUpdatedAt"))})
    err = page.get("error") or {}
    return {"finding_id": finding_id, "status": page.get("status"), "steps": out,
            **({"error": f"{err.get('code')}: {err.get('message')}"} if err else {}),
            "completed_at": _stamp(page.get("completedAt"))}


def _default_version(policy: dict) -> tuple[dict | None, str | None]:
    for v in policy.get("PolicyVersionList") or []:
        if v.get("IsDefaultVersion"):
            return _document(v.get("Document")), _stamp(v.get("CreateDate"))
    return None, None


def _tags(entity: dict) -> dict:
    return {t.get("Key"): t.get("Value") for t in entity.get("Tags") or [] if isinstance(t, dict)}


def deployed_from_details(details: dict) -> dict[str, DeployedPrincipal]:
    managed = {p["Arn"]: p for p in details.get("Policies") or [] if p.get("Arn")}
    groups = {g.get("GroupName"): g for g in details.get("GroupDetailList") or []}

    def policies_of(entity: dict, inline_key: str, owner: str) -> tuple[list[dict], list[str]]:
        out, missing = [], []
        for p in entity.get(inline_key) or []:
            out.append({"name": f"{owner}/inline/{p.get('PolicyName')}", "document": _document(p.get("PolicyDocument"))})
        for att in entity.get("AttachedManagedPolicies") or []:
            arn = att.get("PolicyArn")
            doc, created = _default_version(managed.get(arn) or {})
            if doc is None:
                missing.append(arn)
            else:
                out.append({"name": att.get("PolicyName") or arn, "arn": arn, "document": doc, "created": created})
        return out, missing

    out: dict[str, DeployedPrincipal] = {}
    for role in details.get("RoleDetailList") or []:
        pols, missing = policies_of(role, "RolePolicyList", "role")
        out[role["Arn"]] = DeployedPrincipal(role["Arn"], "role", _stamp(role.get("CreateDate")), tuple(pols),
                                             tuple(missing), _tags(role))
    for user in details.get("UserDetailList") or []:
        pols, missing = policies_of(user, "UserPolicyList", "user")
        for name in user.get("GroupList") or []:
            g = groups.get(name)
            if g is None:
                missing.append(f"group {name}")
                continue
            gp, gm = policies_of(g, "GroupPolicyList", f"group/{name}")
            pols += gp
            missing += gm
        out[user["Arn"]] = DeployedPrincipal(user["Arn"], "user", _stamp(user.get("CreateDate")), tuple(pols),
                                             tuple(missing), _tags(user))
    return out


# -- findings -> a baseline ---------------------------------------------------------------------

def _minus_days(stamp: str, days: int) -> str:
    return iso(_when(stamp) - dt.timedelta(days=days))


def build_baseline(arn: str, analyzer: Analyzer, findings: list[dict], deployed: DeployedPrincipal | None,
                   recommendation: dict | None = None, notes: list[str] | None = None) -> Baseline:
    """One principal's baseline from its findings (GetFindingV2 replies) and its deployed grant."""
    unused_actions: dict[str, str | None] = {}
    unused_services: dict[str, str | None] = {}
    unused_role = False
    errors, records, stamps = [], [], []
    for f in findings:
        kind = f.get("findingType")
        records.append({"id": f.get("id"), "type": kind, "status": f.get("status"),
                        "analyzed_at": _stamp(f.get("analyzedAt")), "updated_at": _stamp(f.get("updatedAt")),
                        **({"error": f["error"]} if f.get("error") else {})})
        if f.get("error"):
            errors.append(f["error"])
            continue
        if kind in ACTION_FINDINGS and f.get("analyzedAt"):
            stamps.append(_stamp(f["analyzedAt"]))
        for d in f.get("findingDetails") or []:
            if "unusedIamRoleDetails" in d:
                unused_role = True
            perm = d.get("unusedPermissionDetails")
            if perm:
                ns = str(perm.get("serviceNamespace", "")).lower()
                acts = perm.get("actions") or []
                if not acts:  # service level: the whole service unused
                    unused_services[ns] = _stamp(perm.get("lastAccessed"))
                for a in acts:
                    name = str(a.get("action", "")).lower()
                    unused_actions[name if ":" in name else f"{ns}:{name}"] = _stamp(a.get("lastAccessed"))
    analyzed_at = max(stamps) if stamps else analyzer.last_analyzed_at
    why = ""
    if errors:
        why = "Access Analyzer could not analyse it: " + "; ".join(errors)
    elif analyzer.status != "ACTIVE" or analyzed_at is None:
        why = f"the analyzer is {analyzer.status} and has analysed no principal yet"
    elif analyzer.excludes(arn, deployed.tags if deployed is not None else {}):
        why = analyzer.excludes(arn, deployed.tags if deployed is not None else {})
    elif deployed is not None and deployed.created and deployed.created > _minus_days(analyzed_at, analyzer.tracking_days):
        why = (f"created {deployed.created[:10]}, less than the {analyzer.tracking_days}-day tracking period before "
               f"the analysis of {analyzed_at[:10]}")
    if why:
        analyzed_at = None
    ev = UnusedAccessEvidence(
        analyzer=analyzer.arn, tracking_days=analyzer.tracking_days, analyzed_at=analyzed_at, not_analysed=why,
        unused_role=unused_role, unused_actions=unused_actions, unused_services=unused_services,
        deployed_policies=None if deployed is None else deployed.policies, recommendation=recommendation,
        findings=tuple(records))
    source = {"kind": KIND, "analyzer": analyzer.arn, "analyzer_type": analyzer.type,
              "tracking_period_days": analyzer.tracking_days, "analyzed_at": analyzed_at,
              "generated_at": None, "tool_version": __version__}
    if deployed is not None and deployed.missing:
        source["complete"] = False
        source["missing_policies"] = list(deployed.missing)
    if notes:
        source["notes"] = list(notes)
    start = _minus_days(analyzed_at, analyzer.tracking_days) if analyzed_at else None
    return Baseline(principal_arn=arn, window_start=start, window_end=analyzed_at, sources=(source,),
                    unused_access=ev)


@dataclass
class RunResult:
    baselines: list[Baseline] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)  # principal ARN -> why it has no baseline
    skipped: list[str] = field(default_factory=list)  # service-linked roles
    stopped: str = ""
    analyzer: Analyzer | None = None


def collect(reader: UnusedAccessReader, analyzer: Analyzer, globs: list[str], accounts: list[str],
            recommendations: bool = True, progress=None,
            on_baseline: Callable[[Baseline], None] | None = None) -> RunResult:
    """Every principal in scope -> a baseline; one principal's failure is recorded and the run goes on.

    Recommendations AWS has to generate first are all started in the first pass and collected in a
    second, so their waits overlap instead of adding up."""
    result = RunResult(analyzer=analyzer)
    deployed = reader.deployed() if reader.iam is not None else {}
    by_principal: dict[str, list[dict]] = {}
    for f in reader.findings(analyzer, accounts):
        arn = f.get("resource")
        if arn and matches(arn, globs):
            by_principal.setdefault(arn, []).append(f)
    arns = set(by_principal)
    for arn in deployed:
        if "/aws-service-role/" in arn:  # service-linked roles are AWS's, never in the code
            result.skipped.append(arn)
        elif matches(arn, globs) and (not accounts or arn.split(":")[4] in accounts):
            arns.add(arn)
    todo = sorted(arns)
    if progress is not None:
        progress.queued(todo)

    def finish(arn: str, details: list, rec: dict | None, notes: list[str]) -> None:
        if arn not in deployed:
            notes.append("the deployed grant is not in the caller's account: only actions reported unused are judged")
        b = build_baseline(arn, analyzer, [jsonable(d) for d in details], deployed.get(arn), rec, notes)
        if on_baseline is not None:
            on_baseline(b)
        result.baselines.append(b)
        if progress is not None:
            ev = b.unused_access
            what = ("not analysed: " + ev.not_analysed) if ev.analyzed_at is None else (
                "unused role" if ev.unused_role else
                f"{len(ev.unused_actions)} unused action(s), {len(ev.unused_services)} unused service(s)")
            progress.done(arn, f"done: {what}")

    def stop(e: Stopped, left: list[str]) -> None:
        result.stopped = str(e)
        result.errors.update({a: "not read: the run stopped" for a in left})
        if progress is not None and left:
            progress.done(left[0], f"stopped: {e}")

    pending: list[tuple[str, str, list, list[str]]] = []  # waiting for a recommendation
    for i, arn in enumerate(todo):
        try:
            details = [reader.finding(analyzer, f["id"]) if not f.get("error") else f
                       for f in by_principal.get(arn, [])]
            rec, waiting, notes = None, None, []
            for f in details if recommendations else ():
                if f.get("findingType") == "UnusedPermission" and not f.get("error"):
                    try:
                        rec = reader.start_recommendation(analyzer, f["id"], _stamp(f.get("updatedAt")))
                        waiting = None if rec is not None else f["id"]
                    except PrincipalError as e:
                        notes.append(f"no recommendation: {e}")
            if waiting:
                pending.append((arn, waiting, details, notes))
            else:
                finish(arn, details, rec, notes)
        except PrincipalError as e:
            result.errors[arn] = str(e)
            if progress is not None:
                progress.done(arn, f"failed: {e}")
        except Stopped as e:
            stop(e, todo[i:])
            break
    for arn, finding_id, details, notes in pending:
        rec = None
        if not result.stopped:
            try:
                rec = reader.finish_recommendation(analyzer, finding_id)
            except PrincipalError as e:
                notes.append(f"no recommendation: {e}")
            except Stopped as e:
                stop(e, [])
        if result.stopped and rec is None:
            notes.append(f"recommendation not collected: the run stopped ({result.stopped})")
        finish(arn, details, rec, notes)  # written in any case: the findings were read
    return result


@USAGE.register
class UnusedAccessUsage(UsageSource):
    """Read an unused-access analyzer now and return one baseline per principal."""
    name = KIND

    def __init__(self, reader: UnusedAccessReader, analyzer_arn: str | None, globs: list[str] = (),
                 accounts: list[str] = ()):
        self.reader, self.analyzer_arn = reader, analyzer_arn
        self.globs, self.accounts = list(globs), list(accounts)

    def collect(self) -> UsageResult:
        got = collect(self.reader, self.reader.analyzer(self.analyzer_arn), self.globs, self.accounts)
        errors = [ScanError(arn, None, f"unused access: {why}") for arn, why in sorted(got.errors.items())]
        return UsageResult(tuple(got.baselines), tuple(errors))


# The V2 operations are authorised by the V1 actions (botocore's operation documentation:
# "ListFindings and ListFindingsV2 both use access-analyzer:ListFindings", likewise GetFinding).
IAM_ACTIONS = {("accessanalyzer", "ListFindingsV2"): "access-analyzer:ListFindings",
               ("accessanalyzer", "GetFindingV2"): "access-analyzer:GetFinding"}


def iam_actions() -> list[str]:
    """The IAM action each API call needs."""
    from ..aws import iam_action
    return [IAM_ACTIONS.get((s, op)) or iam_action(s, op) for s, op in API_CALLS]


def required_policy(catalog) -> dict:
    """The least-privilege IAM policy for `usage unused-access`, from API_CALLS and the catalog."""
    actions = []
    for action in iam_actions():
        if action.lower() not in catalog:
            raise ValueError(f"{action} is not in the action catalog {catalog.version}")
        actions.append(catalog.canonical(action.lower()))
    actions.sort()
    return {"Version": "2012-10-17", "Statement": [
        {"Sid": "ReadUnusedAccessFindings", "Effect": "Allow", "Resource": "*",
         "Action": [a for a in actions if a.startswith("access-analyzer:")]},
        {"Sid": "ReadDeployedGrant", "Effect": "Allow", "Resource": "*",
         "Action": [a for a in actions if not a.startswith("access-analyzer:")]}]}


# -- AWS's recommendation beside iamgate's fix -----------------------------------------------------

def _is_policy(p: dict, ref: str | None) -> bool:
    """Whether a recommendation step's `existingPolicyId` (a managed policy ARN, or an inline policy's name) is p."""
    if not ref:
        return False
    return ref == p.get("arn") or (not p.get("arn") and str(p.get("name", "")).rsplit("/", 1)[-1] == ref)


def recommended_grant(ev: UnusedAccessEvidence, catalog) -> frozenset | None:
    """What the principal would be granted after AWS's recommended steps (None: no recommendation)."""
    from .. import grants
    from ..policydoc import parse_policy
    rec = ev.recommendation or {}
    steps = [s for s in rec.get("steps") or () if s.get("action") in ("CREATE_POLICY", "DETACH_POLICY")]
    if not steps or ev.deployed_policies is None:
        return None
    docs = []
    for p in ev.deployed_policies:
        step = next((s for s in steps if _is_policy(p, s.get("existing_policy"))), None)
        if step is None:
            docs.append(p.get("document"))
        elif step["action"] == "CREATE_POLICY" and step.get("policy"):
            docs.append(step["policy"])
    policies = tuple(Policy("recommended", tuple(parse_policy(d, "recommended").statements)) for d in docs)
    return grants.compute(Principal("recommended", "role", policies=policies), catalog).actions


def recommendation_lines(result, dropped, catalog, limit: int = 8) -> list[str]:
    """AWS's recommended policy for a principal beside iamgate's fix, and where the two differ (by action)."""
    b = result.baseline
    ev = b.unused_access if b is not None else None
    aws = recommended_grant(ev, catalog) if ev is not None else None
    if aws is None:
        return []
    rec = ev.recommendation
    name = result.principal.id
    lines = [f"{name}: AWS Access Analyzer recommends (finding {rec.get('finding_id')}):"]
    for s in rec["steps"]:
        target = s.get("existing_policy") or "a new policy"
        if s["action"] == "DETACH_POLICY":
            lines.append(f"  detach {target}")
        else:
            lines.append(f"  replace {target} with {json.dumps(s.get('policy'), separators=(',', ':'))}")
    deployed, _ = deployed_grant(ev, catalog, b.window_start)
    ours = (result.granted - frozenset(dropped)) & deployed  # AWS judged the deployed grant only
    aws_keeps, we_keep = sorted((aws & result.granted) - ours), sorted(ours - aws)

    def short(acts):
        return ", ".join(acts[:limit]) + (f" and {len(acts) - limit} more" if len(acts) > limit else "")
    if not aws_keeps and not we_keep:
        lines.append(f"{name}: AWS's recommendation and iamgate's fix keep the same actions")
    if aws_keeps:
        lines.append(f"{name}: differs: AWS keeps {len(aws_keeps)} action(s) iamgate drops: {short(aws_keeps)}")
    if we_keep:
        lines.append(f"{name}: differs: iamgate keeps {len(we_keep)} action(s) AWS drops (unobservable or not "
                     f"judged by AWS, or new in this PR): {short(we_keep)}")
    return lines
