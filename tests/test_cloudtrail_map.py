"""CloudTrail event -> IAM action mapping (data/cloudtrail_mapping.json)."""
from __future__ import annotations

import pytest

from iamgate.usage._ct_agg import attribute
from iamgate.usage._ct_map import (ACTIONS, AMBIGUOUS, NO_IAM, PERMISSIONLESS, UNMAPPED, EventMapper,
                                   is_access_denied, mapping_table)
from iamgate.usage._ct_read import request_detail


@pytest.fixture(scope="module")
def mapper(catalog):
    return EventMapper(catalog)


@pytest.mark.parametrize("source,name,expected", [
    ("s3.amazonaws.com", "ListObjects", ("s3:listbucket",)),
    ("s3.amazonaws.com", "HeadBucket", ("s3:listbucket",)),
    ("s3.amazonaws.com", "HeadObject", ("s3:getobject",)),
    ("s3.amazonaws.com", "CopyObject", ("s3:putobject", "s3:getobject")),
    ("s3.amazonaws.com", "UploadPart", ("s3:putobject",)),
    ("s3.amazonaws.com", "DeleteBucketMetricsConfiguration", ("s3:putmetricsconfiguration",)),
    ("s3.amazonaws.com", "DeleteBucketCors", ("s3:putbucketcors",)),
    ("s3.amazonaws.com", "GetBucketCors", ("s3:getbucketcors",)),
    ("lambda.amazonaws.com", "CreateFunction20150331", ("lambda:createfunction",)),
    ("lambda.amazonaws.com", "UpdateFunctionConfiguration20150331v2", ("lambda:updatefunctionconfiguration",)),
    ("cloudfront.amazonaws.com", "UpdateDistribution2014_01_31", ("cloudfront:updatedistribution",)),
    ("kms.amazonaws.com", "ReEncrypt", ("kms:reencryptfrom", "kms:reencryptto")),
    ("monitoring.amazonaws.com", "PutMetricAlarm", ("cloudwatch:putmetricalarm",)),
    ("email.amazonaws.com", "SendEmail", ("ses:sendemail",)),
    ("pricelist.amazonaws.com", "GetProducts", ("pricing:getproducts",)),
    ("rdsdata.amazonaws.com", "ExecuteStatement", ("rds-data:executestatement",)),
    ("ec2.amazonaws.com", "DescribeInstances", ("ec2:describeinstances",)),
    ("ec2.amazonaws.com", "ImportSnapshot", ("ec2:importsnapshot",)),
])
def test_event_maps_to_catalog_actions(mapper, source, name, expected):
    m = mapper.map(source, name, "AwsApiCall")
    assert m.kind == ACTIONS, m
    assert m.actions == expected


def test_version_suffix_is_stripped_only_from_dates(mapper):
    rx = mapper.suffix_re
    assert rx.sub("", "GetDistribution2020_05_31") == "GetDistribution"
    for name in ("DescribeEC2", "CopyFromS3", "ListObjectsV2", "GetSessionV2", "AssociateVPCWithHostedZone"):
        assert rx.sub("", name) == name


def test_permissionless_and_non_api_events(mapper):
    assert mapper.map("sts.amazonaws.com", "GetCallerIdentity", "AwsApiCall").kind == PERMISSIONLESS
    assert mapper.map("signin.amazonaws.com", "ConsoleLogin", "AwsConsoleSignIn").kind == NO_IAM
    assert mapper.map("kms.amazonaws.com", "RotateKey", "AwsServiceEvent").kind == NO_IAM


def test_unknown_action_is_unmapped_not_dropped(mapper):
    m = mapper.map("ec2.amazonaws.com", "PutBucketVersioning", "AwsApiCall")
    assert m.kind == UNMAPPED and "ec2:putbucketversioning" in m.reason
    assert mapper.map(None, "CreateUser").kind == UNMAPPED


def test_partiql_needs_one_action_chosen_by_the_statement(mapper):
    m = mapper.map("dynamodb.amazonaws.com", "ExecuteStatement", "AwsApiCall")
    assert m.kind == AMBIGUOUS and "dynamodb:partiqlselect" in m.actions
    assert request_detail(b'{"statement": "SELECT * FROM \\"t\\""}') == "SELECT"
    assert request_detail(b'{"transactItems": [{"put": {"tableName": "t"}}, {"delete": {}}]}') == "delete,put"
    assert mapper.by_request("dynamodb.amazonaws.com", "ExecuteStatement")["SELECT"] == "dynamodb:PartiQLSelect"
    assert ("dynamodb.amazonaws.com", "TransactWriteItems") in mapper.detail_events()


@pytest.mark.parametrize("code,denied", [
    ("AccessDenied", True), ("AccessDeniedException", True), ("Client.UnauthorizedOperation", True),
    ("UnauthorizedOperation", True), ("NoSuchKey", False), ("ThrottlingException", False), (None, False)])
def test_access_denied_family(code, denied):
    assert is_access_denied(code) is denied


def test_every_curated_entry_cites_a_known_source(catalog):
    table = mapping_table()
    sources = set(table["sources"])
    entries = [e for names in table["event_names"].values() for e in names.values()]
    for key in ("event_name_patterns", "permissionless", "no_iam_action", "no_iam_event_types",
                "access_denied_error_codes"):
        entries.extend(table[key])
    entries.extend(table["event_sources"].values())
    assert all(e.get("source") in sources for e in entries)
    for names in table["event_names"].values():
        for e in names.values():
            assert all(a.lower() in catalog for a in e["actions"]), e
            assert all(a.lower() in catalog for a in (e.get("by_request") or {}).values()), e


@pytest.mark.parametrize("identity,expected", [
    (("AssumedRole", "arn:aws:sts::1:assumed-role/app/s", "arn:aws:iam::1:role/team/app", None),
     ("principal", "arn:aws:iam::1:role/team/app")),
    (("AssumedRole", "arn:aws:sts::1:assumed-role/app/s", None, None), ("principal", "arn:aws:iam::1:role/app")),
    (("IAMUser", "arn:aws:iam::1:user/bob", None, None), ("principal", "arn:aws:iam::1:user/bob")),
    (("AssumedRole", "arn:aws:sts::1:assumed-role/AWSServiceRoleForECS/x",
      "arn:aws:iam::1:role/aws-service-role/ecs.amazonaws.com/AWSServiceRoleForECS", None),
     ("service-linked-role", "arn:aws:iam::1:role/aws-service-role/ecs.amazonaws.com/AWSServiceRoleForECS")),
    (("AWSService", None, None, "lambda.amazonaws.com"), ("aws-service", "lambda.amazonaws.com")),
    ((None, None, None, None), ("no-identity", "record without userIdentity")),
])
def test_principal_attribution(identity, expected):
    assert attribute(*identity) == expected
