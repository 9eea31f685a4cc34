"""Usage from an IAM Access Analyzer *unused access* analyzer: findings for every role and user at once.

An unused-access analyzer (`ACCOUNT_UNUSED_ACCESS` or `ORGANIZATION_UNUSED_ACCESS`, tracking period
`unusedAccessAge` of 1-365 days) keeps findings per IAM role and user:

- `UnusedPermission`: per service, the unused actions (action level where AWS tracks it) or the
  whole service (service level), with `lastAccessed`;
- `UnusedIAMRole`: the role was not used at all in the tracking period;
- `UnusedIAMUserAccessKey` / `UnusedIAMUserPassword`: credentials (recorded, no action verdicts).

A finding lists what is unused; what was used is the rest of the grant the analyzer judged. So
each baseline records that grant (the principal's deployed policies, read with
`iam:GetAccountAuthorizationDetails`); the judge stage decides over it (`iamgate.judge.unused_access`).
This module only reads AWS (`_ua_read`) and builds baselines.
AWS analyses only principals and permissions that existed for the whole tracking period
(IAM User Guide, "Create an unused access analyzer"): anything newer is not judged.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Callable

from .. import __version__
from ..model import UNUSED_ACCESS_KIND, Baseline, ScanError, UnusedAccessEvidence
from . import USAGE, UsageResult, UsageSource
from ._ua_read import (  # noqa: F401 - re-exported
    ACTION_FINDINGS,
    API_CALLS,
    CREDENTIAL_FINDINGS,
    Analyzer,
    AnalyzerError,
    DeployedPrincipal,
    UnusedAccessReader,
    _stamp,
    _when,
    deployed_from_details,
    matches,
)
from .aws_clients import iso, jsonable
from .aws_errors import PrincipalError, Stopped

KIND = UNUSED_ACCESS_KIND


# -- findings -> a baseline ---------------------------------------------------------------------

def _minus_days(stamp: str, days: int) -> str:
    return iso(_when(stamp) - dt.timedelta(days=days))


def not_analysed(arn: str, analyzer: Analyzer, analyzed_at: str | None, deployed: DeployedPrincipal | None,
                 errors: list[str]) -> str:
    """Why the analyzer has not judged this principal, or "" if it has."""
    if errors:
        return "Access Analyzer could not analyse it: " + "; ".join(errors)
    if analyzer.status != "ACTIVE" or analyzed_at is None:
        return f"the analyzer is {analyzer.status} and has analysed no principal yet"
    excluded = analyzer.excludes(arn, deployed.tags if deployed is not None else {})
    if excluded:
        return excluded
    if deployed is not None and deployed.created and deployed.created > _minus_days(analyzed_at,
                                                                                    analyzer.tracking_days):
        return (f"created {deployed.created[:10]}, less than the {analyzer.tracking_days}-day tracking period "
                f"before the analysis of {analyzed_at[:10]}")
    return ""


def build_baseline(arn: str, analyzer: Analyzer, findings: list[dict], deployed: DeployedPrincipal | None,
                   recommendation: dict | None = None, notes: list[str] | None = None,
                   read_at: str | None = None) -> Baseline:
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
            credential = d.get("unusedIamUserAccessKeyDetails") or d.get("unusedIamUserPasswordDetails")
            if credential is not None:  # kept for people; no action verdicts come from it
                records[-1].setdefault("credentials", []).append({
                    "access_key_id": credential.get("accessKeyId"),
                    "last_accessed": _stamp(credential.get("lastAccessed"))})
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
    why = not_analysed(arn, analyzer, analyzed_at, deployed, errors)
    if why:
        analyzed_at = None
    ev = UnusedAccessEvidence(
        analyzer=analyzer.arn, tracking_days=analyzer.tracking_days, analyzed_at=analyzed_at, not_analysed=why,
        unused_role=unused_role, unused_actions=unused_actions, unused_services=unused_services,
        deployed_policies=None if deployed is None else deployed.policies, recommendation=recommendation,
        findings=tuple(records))
    source = {"kind": KIND, "analyzer": analyzer.arn, "analyzer_type": analyzer.type,
              "tracking_period_days": analyzer.tracking_days, "analyzed_at": analyzed_at,
              "generated_at": read_at, "tool_version": __version__}
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
        b = build_baseline(arn, analyzer, [jsonable(d) for d in details], deployed.get(arn), rec, notes,
                           read_at=iso(reader.clock.now()))
        if on_baseline is not None:
            on_baseline(b)
        result.baselines.append(b)
        if progress is not None:
            ev = b.unused_access
            what = ("not analysed: " + ev.not_analysed) if ev.analyzed_at is None else (
                "unused role" if ev.unused_role else
                f"{len(ev.unused_actions)} unused action(s), {len(ev.unused_services)} unused service(s)")
            progress.done(arn, f"done: {what}")

    def failed(arn: str, error: str) -> None:
        result.errors[arn] = error
        if progress is not None:
            progress.done(arn, f"failed: {error}")

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
            failed(arn, str(e))
        except Stopped as e:
            stop(e, todo[i:])
            break
        except OSError:  # writing the baseline: the command reports it and stops
            raise
        except Exception as e:  # noqa: BLE001 - as in the baseline job: one principal's bug must not end the run
            failed(arn, f"unexpected error: {type(e).__name__}: {e}")
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
        try:
            finish(arn, details, rec, notes)  # written in any case: the findings were read
        except OSError:
            raise
        except Exception as e:  # noqa: BLE001 - as above
            failed(arn, f"unexpected error: {type(e).__name__}: {e}")
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
    from .aws_clients import iam_action
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
