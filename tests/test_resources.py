"""Issue 23: resources in the usage baseline, the resource-scope check and the narrowed Resource.

Records follow the shapes of AWS's documented CloudTrail examples (S3 data events, KMS Decrypt, Secrets
Manager GetSecretValue, SSM GetParameter, DynamoDB data events, ...), cut to the fields CloudTrail writes."""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from iamgate import cli
from iamgate.formats.json import expanded
from iamgate.usage import baseline_format
from iamgate.usage._ct_res import BOUND, bounded, candidates, getters
from iamgate.usage.cloudtrail import CloudTrailUsage

ACCOUNT = "111122223333"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/orders-ingest"
KEY = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
SECRET = f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:prod/orders/db-AbCdEf"
TABLE = f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/Orders"


def record(source: str, name: str, params: dict | None, resources: list | None = None, data: bool = False,
           i: int = 0, region: str = "us-east-1") -> dict:
    r = {"eventVersion": "1.09", "eventTime": f"2026-11-0{1 + i % 9}T10:{i % 60:02d}:00Z",
         "eventSource": source, "eventName": name, "awsRegion": region, "sourceIPAddress": "203.0.113.10",
         "userAgent": "aws-sdk-java", "requestParameters": params, "responseElements": None,
         "requestID": f"req-{i}", "eventID": f"ev-{source}-{name}-{i}", "readOnly": True,
         "eventType": "AwsApiCall", "managementEvent": not data, "recipientAccountId": ACCOUNT,
         "eventCategory": "Data" if data else "Management",
         "userIdentity": {"type": "AssumedRole", "principalId": "AROAEXAMPLE:session",
                          "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/orders-ingest/session", "accountId": ACCOUNT,
                          "sessionContext": {"sessionIssuer": {"type": "Role", "principalId": "AROAEXAMPLE",
                                                               "arn": ROLE, "accountId": ACCOUNT,
                                                               "userName": "orders-ingest"}}}}
    if resources is not None:
        r["resources"] = resources
    return r


def scenario() -> list[dict]:
    """The issue's case: 40 objects under one prefix, one key, one secret, one parameter, one table."""
    out = []
    for i in range(40):
        k = f"exports/2026/11/part-{i:04d}.csv"
        out.append(record("s3.amazonaws.com", "GetObject",
                          {"bucketName": "orders-exports", "Host": "orders-exports.s3.us-east-1.amazonaws.com",
                           "key": k},
                          [{"type": "AWS::S3::Object", "ARN": f"arn:aws:s3:::orders-exports/{k}"},
                           {"accountId": ACCOUNT, "type": "AWS::S3::Bucket", "ARN": "arn:aws:s3:::orders-exports"}],
                          data=True, i=i))
    out.append(record("kms.amazonaws.com", "Decrypt",
                      {"encryptionAlgorithm": "SYMMETRIC_DEFAULT",
                       "encryptionContext": {"aws:s3:arn": "arn:aws:s3:::orders-exports"}},
                      [{"accountId": ACCOUNT, "type": "AWS::KMS::Key", "ARN": KEY}], i=1))
    out.append(record("secretsmanager.amazonaws.com", "GetSecretValue", {"secretId": SECRET}, i=2))
    out.append(record("ssm.amazonaws.com", "GetParameter", {"name": "/orders/prod/endpoint", "withDecryption": True},
                      i=3))
    out.append(record("dynamodb.amazonaws.com", "GetItem",
                      {"tableName": "Orders", "key": {"id": {"S": "42"}}, "consistentRead": True},
                      [{"accountId": ACCOUNT, "type": "AWS::DynamoDB::Table", "ARN": TABLE}], data=True, i=4))
    out.append(record("s3.amazonaws.com", "ListAllMyBuckets", {"Host": "s3.us-east-1.amazonaws.com"}, i=5))
    return out


def write_logs(root: Path, records: list[dict]) -> Path:
    d = root / "AWSLogs" / ACCOUNT / "CloudTrail" / "us-east-1" / "2026" / "11" / "01"
    d.mkdir(parents=True)
    (d / f"{ACCOUNT}_CloudTrail_us-east-1_20261101T1000Z_x.json.gz").write_bytes(
        gzip.compress(json.dumps({"Records": records}).encode()))
    return root


def baseline_for(tmp_path, records, catalog, **kw):
    summary, errors = CloudTrailUsage([str(write_logs(tmp_path / "logs", records))], catalog=catalog, **kw).scan()
    assert errors == []
    return {b.principal_arn: b for b in summary.baselines}[ROLE]


def test_the_baseline_records_the_resources_each_action_was_used_on(tmp_path, catalog):
    b = baseline_for(tmp_path, scenario(), catalog)
    assert b.used["s3:getobject"].resources == ("arn:aws:s3:::orders-exports/exports/*",)
    assert b.used["s3:getobject"].count == 40
    assert b.used["kms:decrypt"].resources == (KEY,)
    assert b.used["secretsmanager:getsecretvalue"].resources == (SECRET,)
    assert b.used["ssm:getparameter"].resources == (f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/orders/prod/endpoint",)
    assert b.used["dynamodb:getitem"].resources == (TABLE,)
    assert b.used["s3:listallmybuckets"].resources == ()  # supports only `*`
    # written and read back in the one baseline format; an old baseline without them stays valid
    path = tmp_path / "b.json"
    baseline_format.write(b, path)
    again = baseline_format.load(path)
    assert again.used["kms:decrypt"].resources == (KEY,)
    old = json.loads(path.read_text())
    for u in old["used"].values():
        u.pop("resources", None)
    assert baseline_format.parse(old).used["kms:decrypt"].resources == ()


def test_without_resources_the_reader_counts_the_same(tmp_path, catalog):
    with_res = baseline_for(tmp_path / "a", scenario(), catalog)
    from iamgate.usage._ct_read import ReadOptions, scan_path
    files = list((tmp_path / "a" / "logs").rglob("*.json.gz"))
    plain = scan_path(str(files[0]), ReadOptions(resources=False))
    assert sum(c for c, _, _ in plain.counts.values()) == 45
    assert all(k[11] == () for k in plain.counts)
    assert with_res.used["s3:getobject"].count == 40


@pytest.mark.parametrize("source, name, params, resources, want", [
    ("s3.amazonaws.com", "ListObjects", {"bucketName": "logs-bucket", "prefix": "a/"}, None,
     [("bucket", "arn:aws:s3:::logs-bucket")]),
    ("s3.amazonaws.com", "PutObject", {"bucketName": "b", "key": "top.txt"}, None,
     [("bucket", "arn:aws:s3:::b"), ("object", "arn:aws:s3:::b/*")]),
    ("dynamodb.amazonaws.com", "DescribeTable", {"tableName": "Orders"}, None, [("table", TABLE)]),
    ("sqs.amazonaws.com", "SendMessage",
     {"queueUrl": "https://sqs.us-east-1.amazonaws.com/444455556666/orders-queue", "messageBody": "x"}, None,  # offline
     [("queue", "arn:aws:sqs:us-east-1:444455556666:orders-queue")]),
    ("sns.amazonaws.com", "Publish", {"topicArn": f"arn:aws:sns:us-east-1:{ACCOUNT}:orders-topic"}, None,
     [("topic", f"arn:aws:sns:us-east-1:{ACCOUNT}:orders-topic")]),
    ("kms.amazonaws.com", "GenerateDataKey", {"keyId": "alias/orders", "keySpec": "AES_256"},
     [{"accountId": ACCOUNT, "type": "AWS::KMS::Key", "ARN": KEY}],
     [("alias", f"arn:aws:kms:us-east-1:{ACCOUNT}:alias/orders"), ("key", KEY)]),
    ("kms.amazonaws.com", "DescribeKey", {"keyId": "1234abcd-12ab-34cd-56ef-1234567890ab"}, None, [("key", KEY)]),
    ("lambda.amazonaws.com", "GetFunction20150331v2", {"functionName": "orders-fn:prod"}, None,
     [("function", f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:orders-fn")]),
    ("secretsmanager.amazonaws.com", "GetSecretValue", {"secretId": "prod/orders/db"}, None,
     [("Secret", f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:prod/orders/db-??????")]),
    ("ssm.amazonaws.com", "GetParameters", {"names": ["/a/b", "c"], "withDecryption": False}, None,
     [("parameter", f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/a/b"),
      ("parameter", f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/c")]),
    ("logs.amazonaws.com", "CreateLogStream", {"logGroupName": "/aws/lambda/fn", "logStreamName": "s1"}, None,
     [("log-group", f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:/aws/lambda/fn"),
      ("log-stream", f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:/aws/lambda/fn:log-stream:s1")]),
    ("kinesis.amazonaws.com", "PutRecord", {"streamName": "clicks", "partitionKey": "k"}, None,
     [("stream", f"arn:aws:kinesis:us-east-1:{ACCOUNT}:stream/clicks")]),
    ("states.amazonaws.com", "StartExecution",
     {"stateMachineArn": f"arn:aws:states:us-east-1:{ACCOUNT}:stateMachine:orders", "input": "{}"}, None,
     [("statemachine", f"arn:aws:states:us-east-1:{ACCOUNT}:stateMachine:orders")]),
    ("events.amazonaws.com", "PutRule", {"name": "nightly", "scheduleExpression": "rate(1 day)"}, None,
     [("rule-on-default-event-bus", f"arn:aws:events:us-east-1:{ACCOUNT}:rule/nightly")]),
    ("events.amazonaws.com", "PutRule", {"name": "r", "eventBusName": "orders"}, None,
     [("event-bus", f"arn:aws:events:us-east-1:{ACCOUNT}:event-bus/orders"),
      ("rule-on-custom-event-bus", f"arn:aws:events:us-east-1:{ACCOUNT}:rule/orders/r")]),
    ("ecr.amazonaws.com", "BatchGetImage", {"repositoryName": "orders", "registryId": "444455556666"},
     [{"accountId": "444455556666", "ARN": "arn:aws:ecr:us-east-1:444455556666:repository/orders"}],
     [(None, "arn:aws:ecr:us-east-1:444455556666:repository/orders")]),
    ("sts.amazonaws.com", "AssumeRole",
     {"roleArn": f"arn:aws:iam::{ACCOUNT}:role/deployer", "roleSessionName": "s"},
     [{"accountId": ACCOUNT, "type": "AWS::IAM::Role", "ARN": f"arn:aws:iam::{ACCOUNT}:role/deployer"}],
     [("role", f"arn:aws:iam::{ACCOUNT}:role/deployer")]),
])
def test_each_mapped_service_names_its_resources(source, name, params, resources, want):
    fields, get = getters()[source]
    values = tuple(params.get(f) for f in fields)
    values = tuple(tuple(v) if isinstance(v, list) else v for v in values)
    found = tuple((r.get("ARN"), r.get("type")) for r in resources) if resources else None
    assert sorted(candidates(source, "us-east-1", ACCOUNT, values, found), key=lambda t: t[1]) == \
        sorted(want, key=lambda t: t[1])


def test_the_number_of_arns_per_action_is_bounded(tmp_path, catalog):
    records = [record("dynamodb.amazonaws.com", "DescribeTable", {"tableName": f"t-{i:03d}"}, i=i)
               for i in range(BOUND + 7)]
    u = baseline_for(tmp_path, records, catalog).used["dynamodb:describetable"]
    assert len(u.resources) == BOUND and u.resources_more == 7
    assert u.resources_prefix == f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/t-0"
    assert bounded(["a", "b"]) == (("a", "b"), 0, None)


def test_an_action_with_a_record_naming_no_resource_has_no_resource_data(tmp_path, catalog):
    records = [record("dynamodb.amazonaws.com", "DescribeTable", {"tableName": "Orders"}, i=0),
               record("dynamodb.amazonaws.com", "DescribeTable", None, i=1)]
    assert baseline_for(tmp_path, records, catalog).used["dynamodb:describetable"].resources == ()


CFN = """AWSTemplateFormatVersion: "2010-09-09"
Resources:
  OrdersTable:
    Type: AWS::DynamoDB::Table
    Properties:
      TableName: Orders
      BillingMode: PAY_PER_REQUEST
      AttributeDefinitions: [{AttributeName: id, AttributeType: S}]
      KeySchema: [{AttributeName: id, KeyType: HASH}]
  Role:
    Type: AWS::IAM::Role
    Properties:
      RoleName: orders-ingest
      AssumeRolePolicyDocument:
        Statement:
          - Effect: Allow
            Principal: {Service: lambda.amazonaws.com}
            Action: sts:AssumeRole
      Policies:
        - PolicyName: ingest
          PolicyDocument:
            Statement:
              - Effect: Allow
                Action: s3:GetObject
                Resource: "*"
              - Effect: Allow
                Action: kms:Decrypt
                Resource: "*"
              - Effect: Allow
                Action: secretsmanager:GetSecretValue
                Resource: "*"
              - Effect: Allow
                Action: ssm:GetParameter
                Resource: "*"
              - Effect: Allow
                Action: dynamodb:GetItem
                Resource: !GetAtt OrdersTable.Arn
              - Effect: Allow
                Action: s3:ListAllMyBuckets
                Resource: "*"
"""


def scan(tmp_path, name: str, text: str, catalog, records=None, exist_ok=False):
    infra = tmp_path / "infra"
    infra.mkdir(parents=True, exist_ok=exist_ok)
    (infra / name).write_text(text)
    b = baseline_for(tmp_path, records or scenario(), catalog)
    (tmp_path / "b").mkdir()
    baseline_format.write(b, tmp_path / "b" / "role.json")
    return infra / name


def run(capsys, *argv) -> tuple[int, str]:
    code = cli.main(list(argv))
    return code, capsys.readouterr().out


def test_check_names_the_used_arns_of_each_grant_on_star(tmp_path, catalog, capsys, monkeypatch):
    scan(tmp_path, "template.yaml", CFN, catalog)
    monkeypatch.chdir(tmp_path)
    _, out = run(capsys, "check", "infra", "--baselines", "b", "--format", "json")
    report = expanded(json.loads(out))
    found = {f["actions"][0]: f for f in report["findings"] if f["check"] == "resource-scope"}
    assert set(found) == {"s3:getobject", "kms:decrypt", "secretsmanager:getsecretvalue", "ssm:getparameter"}
    assert found["kms:decrypt"]["resources"] == [KEY]
    assert found["kms:decrypt"]["message"].startswith("kms:Decrypt on *, used on 1 key: " + KEY)
    assert found["kms:decrypt"]["severity"] == "medium"  # Write
    assert found["s3:getobject"]["severity"] == "low"  # Read
    assert found["s3:getobject"]["resources"] == ["arn:aws:s3:::orders-exports/exports/*"]
    assert "resources judged for 5 of 5 used actions" in json.dumps(report)
    _, sarif = run(capsys, "check", "infra", "--baselines", "b", "--format", "sarif")
    assert KEY in sarif


def test_fix_narrows_star_to_the_used_arns_or_a_reference(tmp_path, catalog, capsys, monkeypatch):
    path = scan(tmp_path, "template.yaml", CFN.replace("Action: dynamodb:GetItem\n                Resource: !GetAtt "
                                                       "OrdersTable.Arn", "Action: dynamodb:GetItem\n"
                                                       "                Resource: '*'"), catalog)
    monkeypatch.chdir(tmp_path)
    code, _ = run(capsys, "fix", "infra", "--baselines", "b", "--write")
    text = path.read_text()
    assert '- "arn:aws:s3:::orders-exports/exports/*"' in text
    assert f'- "{KEY}"' in text and f'- "{SECRET}"' in text
    assert "- !GetAtt OrdersTable.Arn" in text  # the table the template defines: referenced
    assert text.count('Resource: "*"') == 1  # s3:ListAllMyBuckets supports only `*`
    from iamgate.sources.loaders import load_yaml
    load_yaml(text)  # still a valid template
    _, out = run(capsys, "check", "infra", "--baselines", "b", "--format", "json")
    assert not [f for f in json.loads(out)["findings"] if f["check"] == "resource-scope"]


def test_a_resource_condition_or_a_star_only_action_is_left_alone(tmp_path, catalog, capsys, monkeypatch):
    text = CFN.replace("""                Action: kms:Decrypt
                Resource: "*"
""", """                Action: kms:Decrypt
                Resource: "*"
                Condition:
                  StringEquals:
                    aws:ResourceTag/app: orders
""")
    scan(tmp_path, "template.yaml", text, catalog)
    monkeypatch.chdir(tmp_path)
    _, out = run(capsys, "check", "infra", "--baselines", "b", "--format", "json")
    acts = {f["actions"][0] for f in expanded(json.loads(out))["findings"] if f["check"] == "resource-scope"}
    assert "kms:decrypt" not in acts and "s3:listallmybuckets" not in acts and "s3:getobject" in acts


CFN_JSON = {"Resources": {
    "Secret": {"Type": "AWS::SecretsManager::Secret", "Properties": {"Name": "prod/orders/db"}},
    "Role": {"Type": "AWS::IAM::Role", "Properties": {
        "AssumeRolePolicyDocument": {"Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                                                    "Action": "sts:AssumeRole"}]},
        "RoleName": "orders-ingest",
        "Policies": [{"PolicyName": "p", "PolicyDocument": {"Statement": [
            {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": "*"},
            {"Effect": "Allow", "Action": "ssm:GetParameter", "Resource": "*"}]}}]}}}}


def test_fix_in_cloudformation_json_references_the_secret_it_defines(tmp_path, catalog, capsys, monkeypatch):
    text = json.dumps(CFN_JSON, indent=2).replace('"RoleName"', '"Description": {"Fn::Sub": "${AWS::AccountId}"},\n'
                                                                 '        "RoleName"')
    path = scan(tmp_path, "template.json", text, catalog)
    monkeypatch.chdir(tmp_path)
    run(capsys, "fix", "infra", "--baselines", "b", "--write")
    doc = json.loads(path.read_text())
    st = doc["Resources"]["Role"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    assert st[0]["Resource"] == [{"Ref": "Secret"}]
    assert st[1]["Resource"] == [{"Fn::Sub": "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:"
                                             "parameter/orders/prod/endpoint"}]


TF = """data "aws_caller_identity" "current" {}

resource "aws_dynamodb_table" "orders" {
  name         = "Orders"
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "id"
  attribute {
    name = "id"
    type = "S"
  }
}

resource "aws_iam_role" "ingest" {
  name = "orders-ingest"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{ Effect = "Allow", Principal = { Service = "lambda.amazonaws.com" }, Action = "sts:AssumeRole" }]
  })
}

resource "aws_iam_role_policy" "ingest" {
  role = aws_iam_role.ingest.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Effect   = "Allow"
        Action   = "dynamodb:GetItem"
        Resource = "*"
      },
      {
        Effect   = "Allow"
        Action   = "kms:Decrypt"
        Resource = "*"
      },
    ]
  })
}

data "aws_iam_policy_document" "more" {
  statement {
    actions   = ["ssm:GetParameter"]
    resources = ["*"]
  }
}

resource "aws_iam_role_policy" "more" {
  role   = aws_iam_role.ingest.id
  policy = data.aws_iam_policy_document.more.json
}
"""


def test_fix_in_terraform_references_the_table_and_the_callers_account(tmp_path, catalog, capsys, monkeypatch):
    path = scan(tmp_path, "main.tf", TF, catalog)
    monkeypatch.chdir(tmp_path)
    run(capsys, "fix", "infra", "--baselines", "b", "--write")
    text = path.read_text()
    assert "Resource = [aws_dynamodb_table.orders.arn]" in text
    assert ('Resource = ["arn:aws:kms:us-east-1:${data.aws_caller_identity.current.account_id}:key/'
            '1234abcd-12ab-34cd-56ef-1234567890ab"]') in text
    assert ('resources = ["arn:aws:ssm:us-east-1:${data.aws_caller_identity.current.account_id}:'
            'parameter/orders/prod/endpoint"]') in text
    import hcl2
    hcl2.loads(text)


SAM = """Transform: AWS::Serverless-2016-10-31
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: orders-fn
      Runtime: python3.12
      Handler: app.handler
      CodeUri: src/
      Role: !GetAtt Role.Arn
  Role:
    Type: AWS::IAM::Role
    Properties:
      RoleName: orders-ingest
      AssumeRolePolicyDocument:
        Statement:
          - Effect: Allow
            Principal: {Service: lambda.amazonaws.com}
            Action: sts:AssumeRole
      Policies:
        - PolicyName: invoke
          PolicyDocument:
            Statement:
              - Effect: Allow
                Action: lambda:InvokeFunction
                Resource: "*"
"""


def test_fix_in_sam_references_the_function_it_defines(tmp_path, catalog, capsys, monkeypatch):
    records = scenario() + [record("lambda.amazonaws.com", "Invoke", {"functionName": "orders-fn"},
                                   [{"accountId": ACCOUNT, "type": "AWS::Lambda::Function",
                                     "ARN": f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:orders-fn"}], data=True)]
    path = scan(tmp_path, "template.yaml", SAM, catalog, records)
    monkeypatch.chdir(tmp_path)
    run(capsys, "fix", "infra", "--baselines", "b", "--write")
    assert "- !GetAtt Fn.Arn" in path.read_text()


def test_athena_returns_the_resources_too(tmp_path, catalog):
    """The query's resource columns, run on DuckDB over the scenario, served through a Stubber client."""
    from iamgate.usage import athena
    from test_athena import TABLE, duckdb_rows, stubbed_query
    logs = tmp_path / "json"
    logs.mkdir()
    (logs / "records.json").write_text(json.dumps(scenario()))
    sql = athena.build_query(TABLE, None, None)
    assert "resources[1].arn" in sql and "json_extract_scalar(requestparameters, '$.secretId')" in sql
    client, stub = stubbed_query(duckdb_rows(sql, logs))
    with stub:
        summary, errors = athena.AthenaUsage(TABLE, output="s3://r/", catalog=catalog, client=client).scan()
    assert errors == []
    b = {b.principal_arn: b for b in summary.baselines}[ROLE]
    assert b.used["s3:getobject"].resources == ("arn:aws:s3:::orders-exports/exports/*",)
    assert b.used["kms:decrypt"].resources == (KEY,)
    assert b.used["ssm:getparameter"].resources == (f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/orders/prod/endpoint",)
    local = baseline_for(tmp_path, scenario(), catalog)
    assert {a: u.resources for a, u in b.used.items()} == {a: u.resources for a, u in local.used.items()}


SPLIT_CFN = CFN.replace("""              - Effect: Allow
                Action: kms:Decrypt
                Resource: "*"
              - Effect: Allow
                Action: secretsmanager:GetSecretValue
                Resource: "*"
""", """              - Effect: Allow
                Action: [kms:Decrypt, secretsmanager:GetSecretValue, s3:ListAllMyBuckets]
                Resource: "*"
""")


def test_fix_splits_a_statement_whose_actions_need_different_resources(tmp_path, catalog, capsys, monkeypatch):
    path = scan(tmp_path, "template.yaml", SPLIT_CFN, catalog)
    monkeypatch.chdir(tmp_path)
    run(capsys, "fix", "infra", "--baselines", "b", "--write")
    from iamgate.sources.loaders import load_yaml
    doc = load_yaml(path.read_text())
    sts = doc["Resources"]["Role"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    by_action = {tuple(st["Action"]) if isinstance(st["Action"], list) else (st["Action"],): st["Resource"]
                 for st in sts}
    assert by_action[("kms:Decrypt",)] == [KEY]
    assert by_action[("secretsmanager:GetSecretValue",)] == [SECRET]
    # supports only `*`: keeps it, in a statement of its own
    assert {"Effect": "Allow", "Action": ["s3:ListAllMyBuckets"], "Resource": ["*"]} in sts
    _, out = run(capsys, "check", "infra", "--baselines", "b", "--format", "json")
    assert not [f for f in json.loads(out)["findings"] if f["check"] == "resource-scope"]


def test_fix_splits_in_cloudformation_json_and_terraform(tmp_path, catalog, capsys, monkeypatch):
    doc = json.loads(json.dumps(CFN_JSON))
    doc["Resources"]["Role"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"] = [
        {"Effect": "Allow", "Action": ["secretsmanager:GetSecretValue", "kms:Decrypt"], "Resource": "*"}]
    path = scan(tmp_path / "j", "template.json", json.dumps(doc, indent=2), catalog)
    monkeypatch.chdir(tmp_path / "j")
    run(capsys, "fix", "infra", "--baselines", "b", "--write")
    sts = json.loads(path.read_text())["Resources"]["Role"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    assert {st["Action"][0]: st["Resource"] for st in sts} == {"kms:Decrypt": [KEY],
                                                              "secretsmanager:GetSecretValue": [{"Ref": "Secret"}]}
    tf = TF.replace('Action   = "kms:Decrypt"', 'Action   = ["kms:Decrypt", "s3:GetObject"]').replace(
        'actions   = ["ssm:GetParameter"]', 'actions   = ["ssm:GetParameter", "s3:ListAllMyBuckets"]')
    path = scan(tmp_path / "t", "main.tf", tf, catalog)
    monkeypatch.chdir(tmp_path / "t")
    run(capsys, "fix", "infra", "--baselines", "b", "--write")
    text = path.read_text()
    import hcl2
    parsed = hcl2.loads(text)
    assert 'Action   = ["kms:Decrypt"]' in text and 'Action   = ["s3:GetObject"]' in text
    assert 'Resource = ["arn:aws:s3:::orders-exports/exports/*"]' in text
    assert 'actions   = ["s3:ListAllMyBuckets"]' in text and 'resources = ["*"]' in text
    assert parsed


def test_a_wildcard_arn_wider_than_the_used_ones_is_reported(tmp_path, catalog, capsys, monkeypatch):
    text = CFN.replace("Resource: !GetAtt OrdersTable.Arn", "Resource: arn:aws:dynamodb:*:*:table/*")
    scan(tmp_path, "template.yaml", text, catalog)
    monkeypatch.chdir(tmp_path)
    _, out = run(capsys, "check", "infra", "--baselines", "b", "--format", "json")
    found = {f["actions"][0]: f for f in expanded(json.loads(out))["findings"] if f["check"] == "resource-scope"}
    assert found["dynamodb:getitem"]["resources"] == [TABLE]
    assert "on arn:aws:dynamodb:*:*:table/*, used on 1 table" in found["dynamodb:getitem"]["message"]


def test_no_resource_data_means_no_finding(tmp_path, catalog, capsys, monkeypatch):
    """A baseline from policy generation (no resources) never yields a resource-scope finding."""
    scan(tmp_path, "template.yaml", CFN, catalog)
    path = tmp_path / "b" / "role.json"
    data = json.loads(path.read_text())
    for u in data["used"].values():
        u.pop("resources", None)
        u["signals"] = ["access-analyzer"]
    path.write_text(json.dumps(data))
    monkeypatch.chdir(tmp_path)
    _, out = run(capsys, "check", "infra", "--baselines", "b", "--format", "json")
    report = json.loads(out)
    assert not [f for f in report["findings"] if f["check"] == "resource-scope"]
    assert "resources judged for 0 of 5 used actions" in json.dumps(report)


def test_pr_suggestions_carry_the_narrowing(tmp_path, catalog, monkeypatch):
    from iamgate.config import Config
    from iamgate.fix.files import fix_files
    from iamgate.fix.plan import plan
    from iamgate.fix.suggestions import plan_suggestions
    from iamgate.pipeline import analyse
    path = scan(tmp_path, "template.yaml", CFN, catalog)
    monkeypatch.chdir(tmp_path)
    report = analyse(["infra"], ["b"], Config(), base=str(tmp_path))
    remediation = plan(report.results, catalog, Config())
    files, problems = fix_files(remediation, tmp_path)
    text = path.read_text()
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "kms:Decrypt" in t) + 1  # its Resource line
    sp = plan_suggestions(remediation, files, {"infra/template.yaml": [(line, line)]}, "k1", lambda f: f)
    assert len(sp.suggestions) == 1
    body = sp.suggestions[0].body
    assert f'- "{KEY}"' in body and "narrows `Resource: *` to the 1 resource(s)" in body
    assert "arn:aws:s3:::orders-exports/exports/*" in sp.details_diff  # the others: in the details diff
