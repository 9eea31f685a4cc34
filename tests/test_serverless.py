"""Serverless Framework: generated roles, variables, per-function roles, resources.Resources."""
from __future__ import annotations

from pathlib import Path

import pytest

from conftest import FIXTURES
from iamgate.sources.loaders import load_yaml
from iamgate.sources.policy_document import Unknown
from iamgate.sources import ScanOptions, Workspace, scan
from iamgate.sources.serverless_variables import Variables

SLS = FIXTURES / "serverless"


def extract(*names: str, **options):
    return scan(Workspace([str(SLS / n) for n in names], ScanOptions(**options)))


def by_id(result):
    return {p.id: p for p in result.principals}


def statements(principal):
    return {s.actions[0]: s for p in principal.policies for s in p.statements}


@pytest.fixture(scope="module")
def orders():
    return extract("orders")


def test_default_role_named_as_serverless_names_it(orders):
    role = by_id(orders)["IamRoleLambdaExecution"]
    assert role.source == "serverless" and role.kind == "role"
    assert role.name == "orders-prod-eu-west-1-lambdaRole"  # ${opt:stage, 'prod'}, ${opt:region, 'eu-west-1'}
    assert role.aliases == ("orders:ingest",)  # `report` has its own role
    assert [p.name for p in role.policies if not p.managed_arn] == ["prod-orders-lambda"]


def test_statements_keep_lines_and_resolve_self_sls_aws_and_cfn_functions(orders):
    st = statements(by_id(orders)["IamRoleLambdaExecution"])
    crud = st["dynamodb:GetItem"]
    assert crud.location.line == 11 and crud.location.file.endswith("orders/serverless.yml")
    assert crud.resources == ("${OrdersTable.Arn}", "arn:aws:dynamodb:eu-west-1:*:table/orders-prod")
    assert st["s3:GetObject"].resources == ("arn:aws:s3:::orders-prod-bucket/*",)  # nested ${self:...${sls:stage}}
    assert st["kms:Decrypt"].resources == ("arn:aws:kms:eu-west-1:123456789012:key/orders-prod",)  # ${file(...)}
    assert st["sns:Publish"].location.line == 28  # legacy provider.iamRoleStatements
    assert st["sqs:ReceiveMessage"].resources == ("${IngestQueue.Arn}",)  # the sqs event
    assert st["logs:PutLogEvents"].resources == (
        "arn:aws:logs:${AWS::Region}:${AWS::AccountId}:log-group:/aws/lambda/orders-prod*:*:*",)


def test_deploy_time_variables_are_unresolved_at_their_line(orders):
    notes = {(u.location.line, u.message.split(" cannot")[0]) for u in orders.unresolved}
    assert (20, "provider.iam.role.statements: ${ssm:/orders/parameter-arn}") in notes
    assert (30, "provider.iamRoleStatements: ${env:TOPIC_ARN}") in notes


def test_managed_policies_and_resources_section(orders):
    roles = by_id(orders)
    assert [p.managed_arn for p in roles["IamRoleLambdaExecution"].policies if p.managed_arn] == [
        "arn:aws:iam::aws:policy/AmazonSQSReadOnlyAccess"]
    assert roles["AuditRole"].name == "orders-prod-audit"
    assert not orders.errors


def test_stage_and_region_come_from_params_when_given():
    result = extract("orders", parameters={"stage": "qa", "region": "us-west-2"})
    assert by_id(result)["IamRoleLambdaExecution"].name == "orders-qa-us-west-2-lambdaRole"


def test_per_function_roles_with_inheritance_vpc_and_stream_events():
    result = extract("perfn")
    roles = by_id(result)
    charge = roles["ChargeDashcardIamRoleLambdaExecution"]
    assert charge.name == "billing-dev-charge-card-us-east-1-lambdaRole"  # defaults: stage dev, us-east-1
    st = statements(charge)
    assert "xray:PutTraceSegments" in st  # iamRoleStatementsInherit
    assert st["secretsmanager:GetSecretValue"].location.line == 18
    assert any("${opt:stage}" in u.message and u.location.line == 20 for u in result.unresolved)
    shared = roles["IamRoleLambdaExecution"]
    assert shared.aliases == ("billing:refund",)
    assert statements(shared)["dynamodb:GetRecords"].location.line == 24
    vpc = "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"
    assert all(vpc in [p.managed_arn for p in r.policies] for r in (charge, shared))


def test_existing_role_means_no_generated_role_and_a_note():
    result = extract("custom_role")
    assert not result.principals
    assert [u.location.line for u in result.unresolved] == [5]


def test_yaml_that_is_not_a_service_is_not_claimed():
    ws = Workspace([str(SLS / "not_a_service.yml")])
    scan(ws, only=["serverless"])
    assert not ws.is_claimed((SLS / "not_a_service.yml").resolve())


@pytest.mark.parametrize("text, expected", [
    ("${opt:stage, 'dev'}", "dev"),
    ("${sls:stage}-x", "prod-x"),
    ("${self:custom.a, 'fallback'}", "fallback"),
    ("${self:custom.n}", 3),
    ("arn:${AWS::Partition}:s3:::${self:service}", "arn:${AWS::Partition}:s3:::svc"),
    ("${self:custom.map.${sls:stage}}", "p"),
])
def test_variable_resolution(text, expected):
    doc = load_yaml("service: svc\nprovider:\n  name: aws\n  stage: prod\ncustom:\n  n: 3\n  map: {prod: p}\n")
    assert Variables(doc, Path("."), [Path(".").resolve()]).resolve(text) == expected


@pytest.mark.parametrize("text", ["${env:X}", "${ssm:/a}", "${cf:stack.out}", "${file(/etc/passwd)}",
                                  "${file(./handler.js):x}", "${self:custom.loop}", "${opt:other}"])
def test_unresolvable_variables_are_unknown(text, tmp_path):
    doc = load_yaml("service: svc\nprovider:\n  name: aws\ncustom:\n  loop: ${self:custom.loop}\n")
    value = Variables(doc, tmp_path, [tmp_path]).resolve(text)
    assert isinstance(value, Unknown)
