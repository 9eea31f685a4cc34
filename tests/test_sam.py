"""SAM: the roles the transform generates, policy templates from aws-sam-translator, Globals, events."""
from __future__ import annotations

import json

import pytest

from conftest import FIXTURES, run_cli
from iamgate.sources import ScanOptions, Workspace, scan
from iamgate.sources.cloudformation.sam import SamSource
from iamgate.formats.json import expanded

SAM = FIXTURES / "sam"
BASIC = "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"


def extract(name: str, **options):
    return scan(Workspace([str(SAM / name)], ScanOptions(**options)))


def by_id(result):
    return {p.id: p for p in result.principals}


def managed(principal):
    return [p.managed_arn for p in principal.policies if p.managed_arn]


def statements(principal):
    return [s for p in principal.policies for s in p.statements]


@pytest.fixture(scope="module")
def app():
    return extract("app.yaml")


def test_sam_template_is_claimed_by_the_sam_source_with_generated_role_ids(app):
    roles = by_id(app)
    assert set(roles) == {"OrdersFunctionRole", "BrokenFunctionRole", "FlowRole", "FlowNightlyRole"}
    assert all(p.source == "sam" and p.kind == "role" for p in app.principals)
    assert roles["OrdersFunctionRole"].aliases == ("OrdersFunction",)
    assert roles["OrdersFunctionRole"].location.line == 23


def test_implicit_role_gets_the_managed_policies_sam_attaches(app):
    assert managed(by_id(app)["OrdersFunctionRole"]) == [
        BASIC,
        "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",  # Globals: Tracing: Active
        "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole",  # VpcConfig
        "arn:aws:iam::aws:policy/AmazonSQSReadOnlyAccess",  # a managed policy by name
        "arn:aws:iam::123456789012:policy/custom",  # by ARN
        "arn:aws:iam::aws:policy/service-role/AWSLambdaSQSQueueExecutionRole",  # the SQS event
    ]
    # Tracing: Disabled overrides the global; no event, no VPC
    assert managed(by_id(app)["BrokenFunctionRole"]) == [BASIC]


def test_managed_policies_missing_from_the_cache_are_unresolved_notes_on_the_principal(app):
    notes = [u for u in app.unresolved if u.principal_id == "OrdersFunctionRole"]
    custom = "arn:aws:iam::123456789012:policy/custom"
    assert any(custom in u.message and "managed-policies fetch" in u.message for u in notes)
    assert not any(BASIC in u.message for u in notes)  # AWS managed: read from iamgate's bundle
    assert all(u.location.file.endswith("app.yaml") for u in notes)
    basic = next(p for p in by_id(app)["OrdersFunctionRole"].policies if p.managed_arn == BASIC)
    assert basic.managed_origin == "bundle" and basic.statements


def test_policy_templates_expand_with_resolved_parameters(app):
    role = by_id(app)["OrdersFunctionRole"]
    pols = {p.name: p for p in role.policies}
    crud = pols["OrdersFunctionRolePolicy0"].statements[0]
    assert "dynamodb:PutItem" in crud.actions and crud.location.line == 30
    assert crud.resources == ("arn:aws:dynamodb:${AWS::Region}:${AWS::AccountId}:table/${Table}",
                              "arn:aws:dynamodb:${AWS::Region}:${AWS::AccountId}:table/${Table}/index/*")
    s3 = pols["OrdersFunctionRolePolicy1"].statements[0]
    assert s3.resources == ("arn:aws:s3:::orders-prod", "arn:aws:s3:::orders-prod/*")  # !Sub with a parameter
    assert pols["OrdersFunctionRolePolicy2"].statements[0].actions == ("cloudwatch:PutMetricData",)
    # an inline document keeps its own line; Fn::If with a true condition picks the template
    assert pols["OrdersFunctionRolePolicy5"].statements[0].actions == ("kms:Decrypt",)
    assert pols["OrdersFunctionRolePolicy6"].statements[0].actions == ("sns:Publish",)
    assert pols["OrdersFunctionRolePolicy6"].statements[0].location.line == 43


def test_fn_if_false_branch_with_no_value_drops_the_policy():
    result = extract("app.yaml", parameters={"Stage": "dev", "Extra": "q"})
    names = [p.name for p in by_id(result)["OrdersFunctionRole"].policies]
    assert "OrdersFunctionRolePolicy6" not in names
    assert "OrdersFunctionRolePolicy5" in names


def test_role_given_means_no_generated_role(app):
    assert "GivenRoleFunctionRole" not in by_id(app)
    assert not any("AmazonS3FullAccess" in str(p.policies) for p in app.principals)


def test_policy_to_the_generated_role_by_ref_is_attached(app):
    role = by_id(app)["OrdersFunctionRole"]
    assert any(s.actions == ("ssm:GetParameter",) and s.location.line == 92 for s in statements(role))


def test_bad_policy_templates_are_located_errors_and_the_rest_goes_on(app):
    errors = {e.line: e.message for e in app.errors}
    assert "TableName" in errors[69]
    assert "NoSuchPolicyTemplate" in errors[70]
    broken = by_id(app)["BrokenFunctionRole"]
    assert [s.actions for p in broken.policies if not p.managed_arn for s in p.statements] == [("sqs:SendMessage*",)]


def test_state_machine_role_and_event_role(app):
    flow = by_id(app)["FlowRole"]
    assert statements(flow)[0].actions == ("lambda:InvokeFunction",)
    assert managed(flow) == []  # no basic execution policy for state machines
    nightly = by_id(app)["FlowNightlyRole"]
    assert statements(nightly)[0].actions == ("states:StartExecution",)


def test_policy_template_counts():
    source = SamSource()
    source.collect(Workspace([str(SAM / "app.yaml")]))
    assert source.stats["policy templates expanded"] == 5
    assert source.stats["policy templates with unresolved parameters"] == 1  # SQSSendMessagePolicy: !Ref Extra
    assert source.stats["policy templates invalid"] == 1
    assert source.stats["policy templates unknown"] == 1


def test_globals_events_dead_letter_queue_destinations_and_codedeploy():
    result = extract("globals_and_events.yaml")
    roles = by_id(result)
    fn = roles["StreamFunctionRole"]
    assert managed(fn) == [BASIC, "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
                           "arn:aws:iam::aws:policy/service-role/AWSLambdaKinesisExecutionRole"]
    actions = {a for s in statements(fn) for a in s.actions}
    assert {"sqs:SendMessage", "events:PutEvents", "sns:publish", "secretsmanager:GetSecretValue",
            "mq:DescribeBroker"} <= actions
    dlq = next(s for s in statements(fn) if s.actions == ("sqs:SendMessage",))
    assert dlq.location.line == 6  # the Globals entry
    # IgnoreGlobals: [Tracing]; DurableConfig swaps the basic policy
    assert managed(roles["UntracedRole"]) == [
        "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicDurableExecutionRolePolicy"]
    assert managed(roles["CodeDeployServiceRole"]) == [
        "arn:aws:iam::aws:policy/service-role/AWSCodeDeployRoleForLambda"]
    assert not result.errors


def test_invalid_globals_is_a_located_error_and_roles_are_still_generated():
    result = extract("bad_globals.yaml")
    assert [(e.line, "Policies" in e.message) for e in result.errors] == [(2, True)]
    assert [p.id for p in result.principals] == ["FnRole"]


def test_managed_policy_from_the_cache_is_expanded(tmp_path):
    cache = tmp_path / "cache" / "aws" / "service-role"
    cache.mkdir(parents=True)
    (cache / "AWSLambdaBasicExecutionRole.json").write_text(json.dumps({"arn": BASIC, "document": {
        "Statement": [{"Effect": "Allow", "Action": "logs:PutLogEvents", "Resource": "*"}]}}))
    result = extract("bad_globals.yaml", managed_policy_dir=str(tmp_path / "cache"))
    assert [s.actions for s in statements(result.principals[0])] == [("logs:PutLogEvents",)]
    assert not result.unresolved


def test_plain_cloudformation_is_left_to_the_cloudformation_source(tmp_path):
    (tmp_path / "plain.yaml").write_text("Resources:\n  R:\n    Type: AWS::IAM::Role\n")
    result = scan(Workspace([str(tmp_path)]))
    assert [p.source for p in result.principals] == ["cloudformation"]


def test_check_end_to_end_on_a_sam_template():
    e2e = SAM / "e2e"
    proc = run_cli("check", str(e2e / "infra"), "--baselines", str(e2e / "baseline.json"),
                   "--managed-policies", str(e2e / "cache"), "--fail-on", "medium", "--format", "json")
    assert proc.returncode == 1, proc.stderr
    report = expanded(json.loads(proc.stdout))
    assert [p["id"] for p in report["principals"]] == ["IngestFunctionRole"]
    unused = sorted(a for f in report["findings"] if f["check"] == "unused-actions" for a in f["actions"])
    assert unused == ["dynamodb:describetable", "logs:createloggroup"]
