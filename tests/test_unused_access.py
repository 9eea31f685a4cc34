"""The unused-access source: its call flow against botocore's real model (Stubber), its verdict rules,
and the baseline format extension (v2 beside v1)."""
from __future__ import annotations

import copy
import datetime as dt
import json

import pytest
from botocore.stub import ANY

from fixtures.aws.helpers import FakeClock, aws_env, stub_client
from iamgate.usage import baseline_format as fmt
from iamgate.usage.aws_clients import Clients
from iamgate.reference.catalog import load_catalog
from iamgate.judge.verdicts import Decider, default_observability
from iamgate.model import Baseline, UnusedAccessEvidence
from iamgate.judge import unused_access as uv
from iamgate.usage import unused_access as ua

ACCOUNT = "111122223333"
ANALYZER = f"arn:aws:access-analyzer:us-east-1:{ACCOUNT}:analyzer/unused"
T = dt.datetime(2026, 11, 21, 6, tzinfo=dt.timezone.utc)
ROLE = f"arn:aws:iam::{ACCOUNT}:role/orders"


def summary(kind="ACCOUNT_UNUSED_ACCESS", name="unused", days=90, status="ACTIVE", analysed=T) -> dict:
    a = {"arn": f"arn:aws:access-analyzer:us-east-1:{ACCOUNT}:analyzer/{name}", "name": name, "type": kind,
         "createdAt": T - dt.timedelta(days=400), "status": status}
    if analysed:
        a["lastResourceAnalyzedAt"] = analysed
    if kind.endswith("UNUSED_ACCESS"):
        a["configuration"] = {"unusedAccess": {"unusedAccessAge": days}}
    return a


def listed(fid: str, kind: str, status="ACTIVE", resource=ROLE) -> dict:
    return {"id": fid, "resource": resource, "resourceType": "AWS::IAM::Role", "resourceOwnerAccount": ACCOUNT,
            "findingType": kind, "status": status, "analyzedAt": T, "createdAt": T, "updatedAt": T}


def throttled(stubber, op: str, times: int = 1) -> None:
    for _ in range(times):
        stubber.add_client_error(op, "ThrottlingException", "Rate exceeded", 400)


@pytest.fixture
def env(monkeypatch):
    aws_env(monkeypatch)
    clients = Clients("us-east-1")
    aa, iam = stub_client(clients, "accessanalyzer"), stub_client(clients, "iam")
    clock = FakeClock()
    reader = ua.UnusedAccessReader(clients.client("accessanalyzer"), clients.client("iam"), clock)
    yield reader, aa, iam, clock
    aa.assert_no_pending_responses()
    iam.assert_no_pending_responses()


# -- the analyzer -------------------------------------------------------------------------------------

def test_analyzer_is_read_and_checked(env):
    reader, aa, _, clock = env
    throttled(aa, "get_analyzer")
    aa.add_response("get_analyzer", {"analyzer": summary(days=30)}, {"analyzerName": "unused"})
    a = reader.analyzer(ANALYZER)
    assert (a.arn, a.tracking_days, a.last_analyzed_at) == (ANALYZER, 30, "2026-11-21T06:00:00Z")
    assert clock.sleeps == [2.0]  # throttling backs off, then retries


def test_missing_analyzer_names_the_ones_there(env):
    reader, aa, _, _ = env
    aa.add_client_error("get_analyzer", "ResourceNotFoundException", "Analyzer not found", 404)
    aa.add_response("list_analyzers", {"analyzers": [summary(kind="ACCOUNT", name="external")], "nextToken": "p2"}, {})
    aa.add_response("list_analyzers", {"analyzers": [summary(name="org-unused", kind="ORGANIZATION_UNUSED_ACCESS")]},
                    {"nextToken": "p2"})
    with pytest.raises(ua.AnalyzerError, match="no such analyzer.*analyzer/org-unused"):
        reader.analyzer(ANALYZER)


def test_external_access_analyzer_is_refused(env):
    reader, aa, _, _ = env
    aa.add_response("get_analyzer", {"analyzer": summary(kind="ACCOUNT", name="unused")}, {"analyzerName": "unused"})
    with pytest.raises(ua.AnalyzerError, match="type ACCOUNT, not an unused-access analyzer"):
        reader.analyzer(ANALYZER)


def test_disabled_analyzer_is_refused_and_the_only_one_is_found(env):
    reader, aa, _, _ = env
    aa.add_response("get_analyzer", {"analyzer": dict(summary(status="DISABLED"), statusReason={
        "code": "AWS_SERVICE_ACCESS_DISABLED"})}, {"analyzerName": "unused"})
    with pytest.raises(ua.AnalyzerError, match="DISABLED .AWS_SERVICE_ACCESS_DISABLED"):
        reader.analyzer(ANALYZER)
    aa.add_response("list_analyzers", {"analyzers": [summary(kind="ACCOUNT", name="ext"), summary()]}, {})
    assert reader.analyzer(None).arn == ANALYZER


# -- findings -------------------------------------------------------------------------------------------

def test_findings_are_filtered_paged_and_resolved_ones_dropped(env):
    reader, aa, _, clock = env
    a = ua.Analyzer(ANALYZER, "unused", "ACCOUNT_UNUSED_ACCESS", "ACTIVE", 90, "2026-11-21T06:00:00Z", None)
    criteria = {"findingType": {"eq": ["UnusedPermission", "UnusedIAMRole", "UnusedIAMUserAccessKey",
                                       "UnusedIAMUserPassword"]},
                "status": {"eq": ["ACTIVE", "ARCHIVED"]}, "resourceOwnerAccount": {"eq": [ACCOUNT]}}
    aa.add_response("list_findings_v2", {"findings": [listed("f1", "UnusedPermission")], "nextToken": "t1"},
                    {"analyzerArn": ANALYZER, "filter": criteria})
    throttled(aa, "list_findings_v2", 2)  # mid-way: the same page is asked for again
    aa.add_response("list_findings_v2", {"findings": [listed("f2", "UnusedIAMRole", status="ARCHIVED"),
                                                    listed("f3", "UnusedIAMRole", status="RESOLVED")]},
                    {"analyzerArn": ANALYZER, "filter": criteria, "nextToken": "t1"})
    got = reader.findings(a, [ACCOUNT])
    assert [(f["id"], f["status"]) for f in got] == [("f1", "ACTIVE"), ("f2", "ARCHIVED")]
    assert clock.sleeps == [2.0, 3.0]


def detail_page(details, token=None) -> dict:
    return {**listed("f1", "UnusedPermission"), "findingDetails": details, **({"nextToken": token} if token else {})}


def test_a_finding_is_read_across_pages_into_a_baseline(env):
    reader, aa, _, _ = env
    a = ua.Analyzer(ANALYZER, "unused", "ACCOUNT_UNUSED_ACCESS", "ACTIVE", 90, "2026-11-21T06:00:00Z", None)
    aa.add_response("get_finding_v2", detail_page([{"unusedPermissionDetails": {
        "serviceNamespace": "s3", "lastAccessed": T, "actions": [{"action": "s3:DeleteBucket"},
                                                                  {"action": "PutBucketPolicy", "lastAccessed": T}]}}],
        "n1"), {"analyzerArn": ANALYZER, "id": "f1"})
    aa.add_response("get_finding_v2", detail_page([{"unusedPermissionDetails": {"serviceNamespace": "ec2"}}]),
                    {"analyzerArn": ANALYZER, "id": "f1", "nextToken": "n1"})
    f = reader.finding(a, "f1")
    from iamgate.usage.aws_clients import jsonable
    b = ua.build_baseline(ROLE, a, [jsonable(f)], None)
    ev = b.unused_access
    assert ev.unused_actions == {"s3:deletebucket": None, "s3:putbucketpolicy": "2026-11-21T06:00:00Z"}
    assert ev.unused_services == {"ec2": None} and ev.deployed_policies is None
    assert (b.window_start, b.window_end) == ("2026-08-23T06:00:00Z", "2026-11-21T06:00:00Z")


def test_recommendation_is_generated_polled_and_paged(env):
    reader, aa, _, clock = env
    a = ua.Analyzer(ANALYZER, "unused", "ACCOUNT_UNUSED_ACCESS", "ACTIVE", 90, None, None)
    key = {"analyzerArn": ANALYZER, "id": "f1"}
    aa.add_client_error("get_finding_recommendation", "ResourceNotFoundException", "none yet", 404,
                        expected_params=key)
    aa.add_response("generate_finding_recommendation", {}, key)
    base = {"startedAt": T, "resourceArn": ROLE, "recommendationType": "UnusedPermissionRecommendation"}
    aa.add_response("get_finding_recommendation", dict(base, status="IN_PROGRESS"), key)
    doc = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}
    aa.add_response("get_finding_recommendation", dict(base, status="SUCCEEDED", completedAt=T, nextToken="r2",
                                                     recommendedSteps=[{"unusedPermissionsRecommendedStep": {
                                                         "recommendedAction": "CREATE_POLICY",
                                                         "existingPolicyId": "inline-a",
                                                         "recommendedPolicy": json.dumps(doc)}}]), key)
    aa.add_response("get_finding_recommendation", dict(base, status="SUCCEEDED", recommendedSteps=[
        {"unusedPermissionsRecommendedStep": {"recommendedAction": "DETACH_POLICY", "existingPolicyId": "arn:x"}}]),
        dict(key, nextToken="r2"))
    rec = reader.recommendation(a, "f1", [])
    assert [(s["action"], s["existing_policy"], s["policy"]) for s in rec["steps"]] == [
        ("CREATE_POLICY", "inline-a", doc), ("DETACH_POLICY", "arn:x", None)]
    assert rec["status"] == "SUCCEEDED" and clock.sleeps == [2.0]  # generated, then polled while running


def auth_details() -> dict:
    doc = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:Decrypt",
                                                              "Resource": "*"}]})
    role = {"Path": "/", "RoleName": "orders", "RoleId": "AROAEXAMPLEEXAMPLE01", "Arn": ROLE,
            "CreateDate": T - dt.timedelta(days=300), "AssumeRolePolicyDocument": "{}",
            "RolePolicyList": [{"PolicyName": "inline", "PolicyDocument": doc}],
            "AttachedManagedPolicies": [{"PolicyName": "team", "PolicyArn": f"arn:aws:iam::{ACCOUNT}:policy/team"},
                                        {"PolicyName": "gone", "PolicyArn": f"arn:aws:iam::{ACCOUNT}:policy/gone"}]}
    slr = dict(role, RoleName="AWSServiceRoleForSupport", Path="/aws-service-role/support.amazonaws.com/",
               Arn=f"arn:aws:iam::{ACCOUNT}:role/aws-service-role/support.amazonaws.com/AWSServiceRoleForSupport",
               RolePolicyList=[], AttachedManagedPolicies=[])
    policy = {"PolicyName": "team", "PolicyId": "ANPAEXAMPLEEXAMPLE01", "Arn": f"arn:aws:iam::{ACCOUNT}:policy/team",
              "DefaultVersionId": "v2", "PolicyVersionList": [
                  {"Document": doc.replace("kms:Decrypt", "s3:ListBucket"), "VersionId": "v1",
                   "IsDefaultVersion": False, "CreateDate": T - dt.timedelta(days=200)},
                  {"Document": doc.replace("kms:Decrypt", "sqs:CreateQueue"), "VersionId": "v2",
                   "IsDefaultVersion": True, "CreateDate": T - dt.timedelta(days=10)}]}
    return {"RoleDetailList": [role, slr], "Policies": [policy], "UserDetailList": [], "GroupDetailList": []}


def test_credential_findings_are_kept_without_verdicts():
    a = ua.Analyzer(ANALYZER, "unused", "ACCOUNT_UNUSED_ACCESS", "ACTIVE", 90, "2026-11-21T06:00:00Z", None)
    user = f"arn:aws:iam::{ACCOUNT}:user/ci"
    f = {"id": "k1", "findingType": "UnusedIAMUserAccessKey", "status": "ACTIVE", "analyzedAt": "2026-11-21T06:00:00Z",
         "findingDetails": [{"unusedIamUserAccessKeyDetails": {"accessKeyId": "AKIAEXAMPLE",
                                                               "lastAccessed": "2026-01-01T00:00:00Z"}}]}
    b = ua.build_baseline(user, a, [f], None)
    assert b.unused_access.findings[0]["credentials"] == [{"access_key_id": "AKIAEXAMPLE",
                                                           "last_accessed": "2026-01-01T00:00:00Z"}]
    assert not b.unused_access.unused_role and not b.unused_access.unused_actions


def test_collect_keeps_going_past_one_principals_failure(env):
    reader, aa, iam, _ = env
    a = ua.Analyzer(ANALYZER, "unused", "ACCOUNT_UNUSED_ACCESS", "ACTIVE", 90, "2026-11-21T06:00:00Z", None)
    details = auth_details()
    # boto3 decodes the policy documents of each reply in place: each page gets its own copies
    first = dict(copy.deepcopy(details), RoleDetailList=copy.deepcopy(details["RoleDetailList"][:1]),
                 Policies=[], IsTruncated=True, Marker="m1")
    iam.add_response("get_account_authorization_details", first, {"Filter": ANY})
    iam.add_response("get_account_authorization_details", dict(copy.deepcopy(details), RoleDetailList=copy.deepcopy(
        details["RoleDetailList"][1:])), {"Filter": ANY, "Marker": "m1"})
    other = f"arn:aws:iam::{ACCOUNT}:role/other"
    aa.add_response("list_findings_v2", {"findings": [listed("f1", "UnusedIAMRole"),
                                                    listed("f9", "UnusedIAMRole", resource=other)]}, None)
    aa.add_response("get_finding_v2", {**listed("f1", "UnusedIAMRole"), "findingDetails": [
        {"unusedIamRoleDetails": {"lastAccessed": T - dt.timedelta(days=120)}}]}, {"analyzerArn": ANALYZER, "id": "f1"})
    aa.add_client_error("get_finding_v2", "ValidationException", "bad id", 400)
    got = ua.collect(reader, a, [], [], recommendations=False)
    assert [b.principal_arn for b in got.baselines] == [ROLE]
    assert got.errors == {other: "GetFindingV2: ValidationException: bad id"} and not got.stopped
    assert got.skipped == [details["RoleDetailList"][1]["Arn"]]  # service-linked: never in the code
    b = got.baselines[0]
    assert b.unused_access.unused_role and b.sources[0]["complete"] is False
    assert b.sources[0]["missing_policies"] == [f"arn:aws:iam::{ACCOUNT}:policy/gone"]
    names = [p["name"] for p in b.unused_access.deployed_policies]
    assert names == ["role/inline/inline", "team"]
    assert b.unused_access.deployed_policies[1]["created"] == "2026-11-11T06:00:00Z"  # the default version's date


def test_access_denied_stops_the_run(env):
    reader, aa, iam, _ = env
    a = ua.Analyzer(ANALYZER, "unused", "ACCOUNT_UNUSED_ACCESS", "ACTIVE", 90, None, None)
    iam.add_client_error("get_account_authorization_details", "AccessDenied", "not allowed", 403)
    with pytest.raises(ua.Stopped, match="GetAccountAuthorizationDetails: AccessDenied"):
        ua.collect(reader, a, [], [])


# -- verdicts -------------------------------------------------------------------------------------------

def evidence(**kw) -> UnusedAccessEvidence:
    base = dict(analyzer=ANALYZER, tracking_days=90, analyzed_at="2026-11-21T06:00:00Z")
    return UnusedAccessEvidence(**{**base, **kw})


def services(names) -> frozenset:
    return frozenset(a for a in DEPLOYED if a.partition(":")[0] in names)


DEPLOYED = frozenset({"s3:getobject", "s3:createbucket", "s3:deletebucket", "ec2:runinstances", "kms:decrypt"})
TRACKED = frozenset({"s3:createbucket", "s3:deletebucket", "ec2:runinstances", "kms:decrypt", "kms:createkey"})


def flat(j: uv.Judgement) -> dict:
    return {v: frozenset().union(*r.values()) for v, r in j.groups.items()}


def test_judge_rules():
    granted = DEPLOYED | {"kms:createkey"}
    j = uv.judge(granted, evidence(unused_actions={"s3:deletebucket": None}, unused_services={"ec2": None}),
                 DEPLOYED, frozenset(), TRACKED, services)
    assert flat(j) == {"unused": {"s3:deletebucket", "ec2:runinstances"}, "used": {"s3:createbucket", "kms:decrypt"},
                       "unobservable": {"s3:getobject"}}
    assert j.remainder == {"not in the deployed grant the analyzer judged (a new grant)": {"kms:createkey"}}
    role = uv.judge(granted, evidence(unused_role=True), DEPLOYED, frozenset(), TRACKED, services)
    assert flat(role) == {"unused": DEPLOYED} and role.left == {"kms:createkey"}
    newer = uv.judge(DEPLOYED, evidence(), DEPLOYED, frozenset({"kms:decrypt"}), TRACKED, services)
    assert "kms:decrypt" not in flat(newer)["used"] and "newer than the tracking period" in next(iter(newer.remainder))
    never = uv.judge(granted, evidence(analyzed_at=None, not_analysed="created 2026-11-01"), DEPLOYED,
                     frozenset(), TRACKED, services)
    assert never.groups == {} and never.left == granted and "created 2026-11-01" in next(iter(never.remainder))
    unread = uv.judge(granted, evidence(unused_actions={"kms:decrypt": None}), None, frozenset(), TRACKED, services)
    assert flat(unread) == {"unused": {"kms:decrypt"}} and unread.left == granted - {"kms:decrypt"}


def policy(*actions) -> dict:
    return {"name": "p", "document": {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": list(actions), "Resource": "*"}]}}


def test_decider_uses_it_alone_or_beside_other_sources():
    catalog = load_catalog()
    obs = default_observability(catalog)
    ev = evidence(unused_actions={"s3:deletebucket": None}, deployed_policies=(policy("s3:*Bucket", "kms:Decrypt"),))
    alone = Baseline(ROLE, "2026-08-23T06:00:00Z", "2026-11-21T06:00:00Z",
                     sources=({"kind": "unused-access"},), unused_access=ev)
    groups = Decider(alone, obs).groups(frozenset({"s3:deletebucket", "kms:decrypt", "kms:createkey"}))
    assert groups["unused"] == {"reported unused by Access Analyzer (90-day tracking period)": {"s3:deletebucket"}}
    assert set(groups["used"].popitem()[1]) == {"kms:decrypt"}
    assert groups["no-usage-data"] == {"not in the deployed grant the analyzer judged (a new grant)":
                                       {"kms:createkey"}}
    # a service unused at service level never decides iam:PassRole (not logged as a call of its own)
    iam = evidence(unused_services={"iam": None}, deployed_policies=(policy("iam:PassRole", "iam:ListRoles"),))
    groups = Decider(Baseline(ROLE, sources=({"kind": "unused-access"},), unused_access=iam), obs).groups(
        frozenset({"iam:passrole", "iam:listroles"}))
    assert groups["unused"] == {"service not used in the 90-day tracking period (Access Analyzer, service level)":
                                {"iam:listroles"}}
    assert groups["unobservable"] == {"service-level usage only": {"iam:passrole"}}
    # ... nor makes a permissionless action AWS tracks per action used: the whole service went unused
    sts = evidence(unused_services={"sts": None}, deployed_policies=(policy("sts:GetCallerIdentity"),))
    assert "sts:getcalleridentity" in obs.support.last_accessed and "sts:getcalleridentity" in obs.always_unobservable
    groups = Decider(Baseline(ROLE, sources=({"kind": "unused-access"},), unused_access=sts), obs).groups(
        frozenset({"sts:getcalleridentity"}))
    assert groups == {"unobservable": {"service-level usage only": {"sts:getcalleridentity"}}}
    # what the config calls unobservable stays so, whatever AWS reports
    from iamgate.judge.verdicts import Observability
    configured = Observability(catalog, ("s3:DeleteBucket",))
    groups = Decider(alone, configured).groups(frozenset({"s3:deletebucket"}))
    assert groups == {"unobservable": {"configured as unobservable": {"s3:deletebucket"}}}
    # beside CloudTrail, the new grant falls through to it: used there, or unused when it was never called
    from iamgate.model import UsedAction
    both = fmt.merge([alone, Baseline(ROLE, sources=({"kind": "cloudtrail"},),
                                      used={"kms:createkey": UsedAction(3, None, ("cloudtrail",))})])
    groups = Decider(both, obs).groups(frozenset({"s3:deletebucket", "kms:createkey", "kms:generatedatakey"}))
    assert groups["used"] == {"observed (cloudtrail)": {"kms:createkey"}}
    assert groups["unused"]["not observed in the window"] == {"kms:generatedatakey"}



def test_a_reason_two_steps_give_keeps_both_steps_actions():
    """The analyzer's "service-level usage only" (an untracked deployed action) and the merged Access Analyzer
    baseline's (a new grant of a service-level-only service) are one reason: both sets stay in the verdict."""
    obs = default_observability(load_catalog())
    ev = evidence(deployed_policies=(policy("sqs:TagQueue"),))
    both = fmt.merge([Baseline(ROLE, sources=({"kind": "unused-access"},), unused_access=ev),
                      Baseline(ROLE, sources=({"kind": "access-analyzer"},), service_level_only=frozenset({"sqs"}))])
    groups = Decider(both, obs).groups(frozenset({"sqs:tagqueue", "sqs:untagqueue"}))
    assert groups == {"unobservable": {"service-level usage only": {"sqs:tagqueue", "sqs:untagqueue"}}}

# -- the format -----------------------------------------------------------------------------------------

def test_v2_round_trips_and_v1_still_reads(tmp_path):
    ev = evidence(unused_role=True, unused_actions={"s3:deletebucket": "2026-01-01T00:00:00Z"},
                  deployed_policies=(policy("s3:*"),), recommendation={"finding_id": "f1", "steps": []},
                  findings=({"id": "f1", "type": "UnusedIAMRole", "status": "ARCHIVED"},))
    b = Baseline(ROLE, "2026-08-23T06:00:00Z", "2026-11-21T06:00:00Z", sources=({"kind": "unused-access"},),
                 unused_access=ev)
    fmt.write(b, tmp_path / "b.json")
    data = json.loads((tmp_path / "b.json").read_text())
    assert data["schema"] == "iamgate.baseline/v2"
    assert fmt.load(tmp_path / "b.json").unused_access == ev
    old = {"schema": "iamgate.baseline/v1", "principal_arn": ROLE, "used": {"s3:getobject": {}}}
    assert fmt.parse(old).unused_access is None
    assert fmt.to_v1(fmt.parse(old))["schema"] == "iamgate.baseline/v1"  # other sources still write v1
    del data["unused_access"]
    with pytest.raises(fmt.BaselineError, match="iamgate.baseline/v2.*unused_access"):
        fmt.parse(data)


def test_a_stale_recommendation_is_generated_again_and_a_failing_one_is_a_note(env):
    reader, aa, _, _ = env
    a = ua.Analyzer(ANALYZER, "unused", "ACCOUNT_UNUSED_ACCESS", "ACTIVE", 90, None, None)
    key = {"analyzerArn": ANALYZER, "id": "f1"}
    base = {"startedAt": T, "resourceArn": ROLE, "recommendationType": "UnusedPermissionRecommendation"}
    old = dict(base, status="SUCCEEDED", completedAt=T - dt.timedelta(days=3), recommendedSteps=[])
    aa.add_response("get_finding_recommendation", old, key)
    aa.add_response("generate_finding_recommendation", {}, key)
    aa.add_response("get_finding_recommendation", dict(old, completedAt=T), key)
    rec = reader.recommendation(a, "f1", [], since="2026-11-20T00:00:00Z")
    assert rec["completed_at"] == "2026-11-21T06:00:00Z"
    aa.add_client_error("get_finding_recommendation", "AccessDeniedException", "no", 403, expected_params=key)
    notes: list[str] = []
    assert reader.recommendation(a, "f1", notes) is None
    assert notes == ["no recommendation: GetFindingRecommendation: AccessDeniedException: no"]


def test_the_usage_source_interface(env):
    reader, aa, iam, _ = env
    aa.add_response("get_analyzer", {"analyzer": summary()}, {"analyzerName": "unused"})
    iam.add_response("get_account_authorization_details", {"RoleDetailList": [], "UserDetailList": [],
                                                           "GroupDetailList": [], "Policies": []}, {"Filter": ANY})
    aa.add_response("list_findings_v2", {"findings": [listed("f1", "UnusedIAMRole")]}, None)
    aa.add_client_error("get_finding_v2", "ValidationException", "bad id", 400)
    got = ua.UnusedAccessUsage(reader, ANALYZER).collect()
    assert got.baselines == () and [e.message for e in got.errors] == [
        "unused access: GetFindingV2: ValidationException: bad id"]


def test_the_reader_judges_failures_with_aws_errors():
    """One way to judge AWS failures: the reader's retry is iamgate.usage.aws_errors'."""
    from botocore.exceptions import EndpointConnectionError, NoCredentialsError
    from iamgate.usage.aws_errors import AccountError, OutOfTime, Retry
    clock = FakeClock()
    reader = ua.UnusedAccessReader(None, None, clock, deadline=clock.monotonic() + 10)
    assert type(reader.retry) is Retry
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise EndpointConnectionError(endpoint_url="http://127.0.0.1:9")
        return "ok"
    assert reader.retry.call("ListFindingsV2", flaky) == "ok" and clock.sleeps == [2.0, 3.0]
    with pytest.raises(AccountError, match="Unable to locate credentials"):
        reader.retry.call("GetAnalyzer", lambda: (_ for _ in ()).throw(NoCredentialsError()))
    with pytest.raises(OutOfTime, match="timed out"):  # the deadline bounds the waits
        reader.retry.call("ListFindingsV2", lambda: (_ for _ in ()).throw(EndpointConnectionError(endpoint_url="x")))
    assert issubclass(OutOfTime, ua.Stopped) and issubclass(AccountError, ua.Stopped)


def test_a_users_grant_includes_its_groups_and_url_encoded_documents_are_read():
    from urllib.parse import quote
    doc = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sqs:CreateQueue", "Resource": "*"}]}
    user_arn = f"arn:aws:iam::{ACCOUNT}:user/ci"
    details = {
        "UserDetailList": [{"Arn": user_arn, "UserName": "ci", "CreateDate": "2025-01-01T00:00:00Z",
                            "UserPolicyList": [{"PolicyName": "own", "PolicyDocument": quote(json.dumps(doc))}],
                            "GroupList": ["deployers", "gone"]}],
        "GroupDetailList": [{"GroupName": "deployers", "GroupPolicyList": [
            {"PolicyName": "g", "PolicyDocument": json.dumps(doc).replace("sqs:CreateQueue", "kms:Decrypt")}],
            "AttachedManagedPolicies": []}]}
    [user] = ua.deployed_from_details(details).values()
    assert [p["name"] for p in user.policies] == ["user/inline/own", "group/deployers/inline/g"]
    assert user.missing == ("group gone",) and user.created == "2025-01-01T00:00:00Z"
    ev = evidence(deployed_policies=user.policies + (dict(policy("s3:CreateBucket"), created="2026-11-01T00:00:00Z"),))
    everything, too_new = uv.deployed_grant(ev, load_catalog(), "2026-08-23T06:00:00Z")
    assert everything == {"sqs:createqueue", "kms:decrypt", "s3:createbucket"} and too_new == {"s3:createbucket"}


def test_principals_the_analysis_rule_excludes_are_not_analysed(env):
    reader, aa, _, _ = env
    rule = {"exclusions": [{"accountIds": ["444455556666"]}, {"resourceTags": [{"team": "sandbox"}]}]}
    analyzer = dict(summary(), configuration={"unusedAccess": {"unusedAccessAge": 90, "analysisRule": rule}})
    aa.add_response("get_analyzer", {"analyzer": analyzer}, {"analyzerName": "unused"})
    a = reader.analyzer(ANALYZER)
    old = "2025-01-01T00:00:00Z"
    tagged = ua.DeployedPrincipal(ROLE, "role", old, (), tags={"team": "sandbox"})
    assert "tag team=sandbox is excluded" in ua.build_baseline(ROLE, a, [], tagged).unused_access.not_analysed
    other = "arn:aws:iam::444455556666:role/x"
    assert "account 444455556666 is excluded" in ua.build_baseline(other, a, [], None).unused_access.not_analysed
    plain = ua.DeployedPrincipal(ROLE, "role", old, (), tags={"team": "orders"})
    assert ua.build_baseline(ROLE, a, [], plain).unused_access.analyzed_at == "2026-11-21T06:00:00Z"


def test_recommendations_are_all_started_before_any_is_waited_for(env):
    reader, aa, iam, clock = env
    a = ua.Analyzer(ANALYZER, "unused", "ACCOUNT_UNUSED_ACCESS", "ACTIVE", 90, "2026-11-21T06:00:00Z", None)
    iam.add_response("get_account_authorization_details", {"RoleDetailList": [], "UserDetailList": [],
                                                           "GroupDetailList": [], "Policies": []}, {"Filter": ANY})
    roles = [f"arn:aws:iam::{ACCOUNT}:role/r{i}" for i in (1, 2)]
    aa.add_response("list_findings_v2", {"findings": [listed(f"f{i}", "UnusedPermission", resource=r)
                                                      for i, r in enumerate(roles, 1)]}, None)
    base = {"startedAt": T, "resourceArn": ROLE, "recommendationType": "UnusedPermissionRecommendation"}
    for i, r in enumerate(roles, 1):
        key = {"analyzerArn": ANALYZER, "id": f"f{i}"}
        aa.add_response("get_finding_v2", {**listed(f"f{i}", "UnusedPermission", resource=r), "findingDetails": [
            {"unusedPermissionDetails": {"serviceNamespace": "ec2"}}]}, key)
        aa.add_client_error("get_finding_recommendation", "ResourceNotFoundException", "none", 404,
                            expected_params=key)
        aa.add_response("generate_finding_recommendation", {}, key)
    # both generations run at once: the first is done when first asked, the second once more later
    aa.add_response("get_finding_recommendation", dict(base, status="SUCCEEDED", recommendedSteps=[]),
                    {"analyzerArn": ANALYZER, "id": "f1"})
    aa.add_response("get_finding_recommendation", dict(base, status="IN_PROGRESS"),
                    {"analyzerArn": ANALYZER, "id": "f2"})
    clock.on_sleep = lambda n: None
    aa.add_client_error("get_finding_recommendation", "ExpiredTokenException", "expired", 400,
                        expected_params={"analyzerArn": ANALYZER, "id": "f2"})
    got = ua.collect(reader, a, [], [])
    assert got.stopped == "GetFindingRecommendation: ExpiredTokenException: expired"
    assert [b.principal_arn for b in got.baselines] == roles  # both written, the findings were read
    assert got.baselines[0].unused_access.recommendation["status"] == "SUCCEEDED"
    assert got.baselines[1].unused_access.recommendation is None
    assert "recommendation not collected: the run stopped" in got.baselines[1].sources[0]["notes"][0]
    assert clock.sleeps == [2.0]


def test_fix_compares_awss_recommendation_with_its_own():
    from iamgate.judge.verdicts import evaluate
    from iamgate.model import Policy, Principal, Statement
    catalog = load_catalog()
    principal = Principal("Orders", "role", name="orders", policies=(Policy("p", (Statement(
        "Allow", ("s3:CreateBucket", "s3:DeleteBucket"), resources=("*",)),)),))
    deployed = (dict(policy("s3:CreateBucket", "s3:DeleteBucket"), name="role/inline/p"),)

    def lines(steps):
        ev = evidence(unused_actions={"s3:deletebucket": None}, deployed_policies=deployed,
                      recommendation={"finding_id": "f1", "steps": steps})
        b = Baseline(ROLE, "2026-08-23T06:00:00Z", "2026-11-21T06:00:00Z", sources=({"kind": "unused-access"},),
                     unused_access=ev)
        return uv.recommendation_lines(evaluate(principal, b, catalog), ("s3:deletebucket",), catalog)
    same = lines([{"action": "CREATE_POLICY", "existing_policy": "p", "policy": policy("s3:CreateBucket")["document"]}])
    assert same[-1] == "Orders: AWS's recommendation and iamgate's fix keep the same actions"
    keeps = lines([{"action": "CREATE_POLICY", "existing_policy": "p",
                    "policy": policy("s3:CreateBucket", "s3:DeleteBucket")["document"]}])
    assert keeps[-1] == "Orders: differs: AWS keeps 1 action(s) iamgate drops: s3:deletebucket"
    detach = lines([{"action": "DETACH_POLICY", "existing_policy": "p", "policy": None}])
    assert detach[1] == "  detach p" and "iamgate keeps 1 action(s) AWS drops" in detach[-1]
    assert lines([]) == []  # no recommendation: nothing to show


def test_the_command_retries_records_and_stops_with_the_summary(monkeypatch, tmp_path, capsys):
    """Through `run_unused_access`, every failure judged by iamgate.usage.aws_errors: throttling retried,
    a principal whose call keeps failing recorded while the run goes on, expired credentials
    stopping the run with the summary written and the finished baseline kept."""
    from iamgate.cli import build_parser
    from iamgate.commands._unused_access import SUMMARY_FILE, run_unused_access
    aws_env(monkeypatch)
    clients = Clients("us-east-1")
    aa, iam = stub_client(clients, "accessanalyzer"), stub_client(clients, "iam")
    roles = [f"arn:aws:iam::{ACCOUNT}:role/r{i}" for i in (1, 2, 3, 4)]
    aa.add_response("get_analyzer", {"analyzer": summary()}, {"analyzerName": "unused"})
    iam.add_response("get_account_authorization_details", {"RoleDetailList": [], "UserDetailList": [],
                                                           "GroupDetailList": [], "Policies": []}, {"Filter": ANY})
    throttled(aa, "list_findings_v2")
    aa.add_response("list_findings_v2", {"findings": [listed(f"f{i}", "UnusedIAMRole", resource=r)
                                                      for i, r in enumerate(roles, 1)]}, None)
    role_finding = [{"unusedIamRoleDetails": {"lastAccessed": T - dt.timedelta(days=120)}}]
    aa.add_response("get_finding_v2", {**listed("f1", "UnusedIAMRole", resource=roles[0]),
                                       "findingDetails": role_finding}, {"analyzerArn": ANALYZER, "id": "f1"})
    for _ in range(5):  # Retry.ATTEMPTS: then only this principal fails
        aa.add_client_error("get_finding_v2", "ServiceUnavailableException", "try later", 503,
                            expected_params={"analyzerArn": ANALYZER, "id": "f2"})
    aa.add_client_error("get_finding_v2", "ExpiredTokenException", "The security token included in the request is "
                        "expired", 400, expected_params={"analyzerArn": ANALYZER, "id": "f3"})
    args = build_parser(["usage"]).parse_args(["usage", "unused-access", "--analyzer", ANALYZER,
                                               "--out", str(tmp_path), "--deployment", "prod"])
    clock = FakeClock()
    assert run_unused_access(args, clients=clients, clock=clock) == 2
    aa.assert_no_pending_responses()
    err = capsys.readouterr().err
    assert clock.sleeps == [2.0, 2.0, 3.0, 4.5, 6.75]  # one throttle, then four waits between five 503s
    saved = json.loads((tmp_path / SUMMARY_FILE).read_text())
    assert saved["written"] == [f"{ACCOUNT}_role_r1.json"]
    assert json.loads((tmp_path / f"{ACCOUNT}_role_r1.json").read_text())["deployment"] == "prod"  # issue 21
    assert saved["failed"] == {roles[1]: "GetFindingV2: ServiceUnavailableException: try later",
                               roles[2]: "not read: the run stopped", roles[3]: "not read: the run stopped"}
    assert saved["stopped"] == "GetFindingV2: ExpiredTokenException: The security token included in the request " \
                               "is expired"
    assert "1 baseline(s) written" in err and "3 failed" in err and "stopped: GetFindingV2: ExpiredToken" in err
    assert "Traceback" not in err and "internal error" not in err


def test_the_commands_failure_lines_escape_aws_text(monkeypatch, tmp_path, capsys):
    """A principal's failure line on stderr carries AWS's error message: its control characters are made
    visible, as on every other line the command prints."""
    from iamgate.cli import build_parser
    from iamgate.commands._unused_access import run_unused_access
    aws_env(monkeypatch)
    clients = Clients("us-east-1")
    aa, iam = stub_client(clients, "accessanalyzer"), stub_client(clients, "iam")
    aa.add_response("get_analyzer", {"analyzer": summary()}, {"analyzerName": "unused"})
    iam.add_response("get_account_authorization_details", {"RoleDetailList": [], "UserDetailList": [],
                                                           "GroupDetailList": [], "Policies": []}, {"Filter": ANY})
    aa.add_response("list_findings_v2", {"findings": [listed("f1", "UnusedIAMRole")]}, None)
    aa.add_client_error("get_finding_v2", "ValidationException", "bad \x1b]0;owned\x07 id", 400,
                        expected_params={"analyzerArn": ANALYZER, "id": "f1"})
    args = build_parser(["usage"]).parse_args(["usage", "unused-access", "--analyzer", ANALYZER,
                                               "--out", str(tmp_path)])
    assert run_unused_access(args, clients=clients, clock=FakeClock()) == 2
    err = capsys.readouterr().err
    assert f"iamgate: {ROLE}: GetFindingV2: ValidationException" in err
    assert "\x1b" not in err and "\x07" not in err


def test_a_truncated_authorization_details_page_without_a_marker_is_not_taken_as_the_last(env):
    """Stopping there would leave the rest of the account's principals without a deployed grant."""
    reader, aa, iam, clock = env
    for _ in range(5):  # Retry.ATTEMPTS
        iam.add_response("get_account_authorization_details", dict(auth_details(), IsTruncated=True),
                         {"Filter": ANY})
    with pytest.raises(ua.PrincipalError, match="Marker"):
        reader.deployed()


def test_a_finding_of_an_odd_shape_fails_that_principal_only(monkeypatch):
    """As in the baseline job: what breaks while building one principal's baseline is that principal's
    error; the run goes on and the others get their baselines."""
    a = ua.Analyzer(ANALYZER, "unused", "ACCOUNT_UNUSED_ACCESS", "ACTIVE", 90, "2026-11-21T06:00:00Z", None)
    other = f"arn:aws:iam::{ACCOUNT}:role/other"

    class Reader:
        iam, clock = None, FakeClock()

        def findings(self, analyzer, accounts):
            return [listed("f1", "UnusedPermission"), listed("f2", "UnusedIAMRole", resource=other)]

        def finding(self, analyzer, fid):
            odd = [{"unusedPermissionDetails": {"serviceNamespace": "s3", "actions": ["GetObject"]}}]
            ok = [{"unusedIamRoleDetails": {}}]
            return {**listed(fid, "x"), "findingType": "UnusedPermission" if fid == "f1" else "UnusedIAMRole",
                    "findingDetails": odd if fid == "f1" else ok}

    got = ua.collect(Reader(), a, [], [], recommendations=False)
    assert [b.principal_arn for b in got.baselines] == [other]
    assert list(got.errors) == [ROLE] and "unexpected error: AttributeError" in got.errors[ROLE]
