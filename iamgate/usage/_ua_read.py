"""Reading an unused-access analyzer: the API calls, retried and paged, and the deployed grants.

The calls and shapes follow botocore's accessanalyzer model (2019-11-01) and IAM's
GetAccountAuthorizationDetails. `unused_access` turns what is read here into baselines.
"""
from __future__ import annotations

import datetime as dt
import fnmatch
import json
from dataclasses import dataclass, field
from urllib.parse import unquote

from .aws_clients import Backoff, SystemClock, iso
from .aws_errors import PrincipalError, Retry, Stopped, unexpected_reply

UNUSED_ACCESS_TYPES = ("ACCOUNT_UNUSED_ACCESS", "ORGANIZATION_UNUSED_ACCESS")
ACTION_FINDINGS = ("UnusedPermission", "UnusedIAMRole")
CREDENTIAL_FINDINGS = ("UnusedIAMUserAccessKey", "UnusedIAMUserPassword")
READ_STATUSES = ("ACTIVE", "ARCHIVED")  # archived still means unused (someone chose to hide it); RESOLVED does not
DEFAULT_TRACKING_DAYS = 90

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


class AnalyzerError(Exception):
    """The analyzer cannot be used (missing, wrong type, disabled): a usage error."""


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


def matches(arn: str, globs: list[str]) -> bool:
    """An ARN or its name matches one of the globs (case-insensitive); no globs: everything."""
    if not globs:
        return True
    name = arn.rsplit("/", 1)[-1].lower()
    return any(fnmatch.fnmatchcase(arn.lower(), g.lower()) or fnmatch.fnmatchcase(name, g.lower()) for g in globs)


class UnusedAccessReader:
    """The API calls, each judged by `iamgate.usage.aws_errors` (throttling and other transient failures
    retried); a finding's details and recommendation paged through."""

    def __init__(self, client, iam=None, clock=None, deadline: float | None = None, retry: Retry | None = None):
        self.client, self.iam = client, iam
        self.clock = clock or SystemClock()
        self.retry = retry or Retry(self.clock, deadline)

    def _pages(self, operation: str, method, result_key: str, key: str, **params) -> list:
        """Every item of every page; an item without `key` is a reply of the wrong shape (retried)."""
        items, token = [], None
        while True:
            page = self.retry.call(operation, lambda: method(**params, **({"nextToken": token} if token else {})),
                                   check=lambda r: [i[key] for i in r.get(result_key) or ()], denied_is_account=True)
            items.extend(page.get(result_key) or [])
            token = page.get("nextToken")
            if not token:
                return items

    def analyzers(self) -> list[dict]:
        return self._pages("ListAnalyzers", self.client.list_analyzers, "analyzers", "arn")

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
                    analyzerName=analyzer_name(arn)), check=lambda r: r["analyzer"],
                    denied_is_account=True)["analyzer"]
            except PrincipalError as e:
                if e.failure.code == "ResourceNotFoundException":
                    raise AnalyzerError(f"--analyzer {arn}: no such analyzer in this account and region"
                                        f"{self._others()}") from None
                raise AnalyzerError(str(e)) from None
            if summary.get("arn") != arn:
                raise AnalyzerError(f"--analyzer {arn}: this region's analyzer of that name is {summary.get('arn')}")
        try:
            return self._check(summary)
        except (KeyError, TypeError, ValueError) as e:
            raise AnalyzerError(str(unexpected_reply("ListAnalyzers" if arn is None else "GetAnalyzer", e))) from None

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
        found = self._pages("ListFindingsV2", self.client.list_findings_v2, "findings", "id",
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
            if e.failure.code != "ResourceNotFoundException":
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
        delay = Backoff(self.retry.delays.recommendation_first, self.retry.delays.recommendation_max)
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
                **({"Marker": marker} if marker else {})), denied_is_account=True,
                check=lambda r: ([e["Arn"] for k in ("RoleDetailList", "UserDetailList") for e in r.get(k) or ()],
                                 r["Marker"] + "" if r.get("IsTruncated") else ""))  # a page to follow has one
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
            out.append({"name": f"{owner}/inline/{p.get('PolicyName')}",
                        "document": _document(p.get("PolicyDocument"))})
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
