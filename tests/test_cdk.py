"""CDK cloud assemblies: construct paths, Fn::Join ARNs, Fn::ImportValue across stacks."""
from __future__ import annotations

import json

import pytest

from conftest import FIXTURES
from iamgate.sources import Workspace, scan

CDK_OUT = FIXTURES / "cdk" / "cdk.out"


@pytest.fixture(scope="module")
def result():
    return scan(Workspace([str(CDK_OUT)]))


def by_id(result):
    return {p.id: p for p in result.principals}


def statements(principal):
    return [s for p in principal.policies for s in p.statements]


def test_principals_are_named_by_construct_path_and_keep_the_logical_id(result):
    roles = by_id(result)
    assert set(roles) == {"HandlerServiceRoleFCDC14AE", "WorkerServiceRoleNoMeta", "ExporterRole"}
    handler = roles["HandlerServiceRoleFCDC14AE"]
    assert handler.source == "cdk" and handler.name is None
    assert handler.aliases == ("Consumer/Api/Handler/ServiceRole", "Consumer/Api/Handler/ServiceRole/Resource")
    # no aws:cdk:path metadata in the template: the manifest's logicalId metadata names it
    assert roles["WorkerServiceRoleNoMeta"].aliases[0] == "Consumer/Worker/ServiceRole"
    assert roles["WorkerServiceRoleNoMeta"].name == "consumer-worker"
    # newer CDK: the logicalId metadata is in the stack's additionalMetadataFile
    assert roles["ExporterRole"].aliases[0] == "Producer/Exporter/Role"


def test_default_policy_attached_by_ref_and_join_arns_resolved(result):
    handler = by_id(result)["HandlerServiceRoleFCDC14AE"]
    assert [p.managed_arn for p in handler.policies if p.managed_arn] == [
        "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"]  # Fn::Join with AWS::Partition
    logs = next(s for s in statements(handler) if s.actions == ("logs:PutLogEvents",))
    assert logs.resources == ("arn:aws:logs:${AWS::Region}:${AWS::AccountId}:log-group:/aws/lambda/handler:*",)
    assert logs.location.file.endswith("Consumer.template.json") and logs.location.line == 42


def test_import_value_resolved_from_the_exporting_stack(result):
    st = {s.actions[0]: s for s in statements(by_id(result)["HandlerServiceRoleFCDC14AE"])}
    assert st["s3:GetObject"].resources == ("arn:aws:s3:::static-bucket/*",)
    assert st["s3:PutObject"].resources == ("arn:aws:s3:::shared-bucket/uploads/*",)  # Export Name via StackName
    assert st["dynamodb:GetItem"].resources == ("${Producer.Table.Arn}", "${Producer.Table.Arn}/index/*")


def test_import_value_not_exported_in_the_assembly_is_reported_at_its_line(result):
    notes = [(u.location.file.rsplit("/", 1)[-1], u.location.line, u.message) for u in result.unresolved]
    assert ("Consumer.template.json", 40,
            "Fn::ImportValue not-exported-here: no stack in this cloud assembly exports it") in notes
    assert any(f == "manifest.json" and "Asserts.template.json" in m for f, _, m in notes)


def test_template_outside_the_assembly_is_a_located_error_and_never_read(result):
    assert [(e.file.rsplit("/", 1)[-1], e.line) for e in result.errors] == [("manifest.json", 42)]


def test_same_logical_id_in_two_stacks_stays_two_principals(tmp_path):
    out = tmp_path / "cdk.out"
    out.mkdir()
    role = {"Resources": {"Role1": {"Type": "AWS::IAM::Role", "Metadata": {"aws:cdk:path": "X/Role/Resource"}}}}
    arts = {}
    for stack in ("A", "B"):
        (out / f"{stack}.template.json").write_text(json.dumps(role).replace("X/", f"{stack}/"))
        arts[stack] = {"type": "aws:cloudformation:stack", "properties": {"templateFile": f"{stack}.template.json"}}
    (out / "manifest.json").write_text(json.dumps({"version": "48.0.0", "artifacts": arts}))
    result = scan(Workspace([str(tmp_path)]))
    assert sorted(p.aliases[0] for p in result.principals) == ["A/Role", "B/Role"]
    assert {p.source for p in result.principals} == {"cdk"}


def test_a_manifest_json_that_is_not_a_cloud_assembly_is_left_alone(tmp_path):
    (tmp_path / "manifest.json").write_text('{"name": "chrome-extension", "version": "1"}')
    result = scan(Workspace([str(tmp_path)]))
    assert not result.principals and not result.errors
