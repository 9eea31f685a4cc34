"""Rebuild iamgate/data/cloudtrail_resources.json: which CloudTrail record fields name the resource a
call was made on, and the ARN formats (from AWS's Service Authorization Reference) to build ARNs from them.

    python scripts/build_cloudtrail_resources.py ../shared/service-reference --date 2026-02-13

The curated part (RULES, RESOURCE_TYPES, each with the AWS page it comes from) is below; the ARN formats
are read from the reference's `Resources[].ARNFormats` for exactly the resource types the rules name.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "iamgate" / "data" / "cloudtrail_resources.json"
REFERENCE = "https://servicereference.us-east-1.amazonaws.com/v1/<prefix>/<prefix>.json"
RECORD_DOCS = "https://docs.aws.amazon.com/awscloudtrail/latest/userguide/cloudtrail-event-reference-record-contents.html"

# CloudTrail `resources[].type` -> (service reference prefix, resource type name). Types not listed here are
# matched by ARN against the action's own resource types.
RESOURCE_TYPES = {
    "AWS::S3::Bucket": ("s3", "bucket"),
    "AWS::S3::Object": ("s3", "object"),
    "AWS::KMS::Key": ("kms", "key"),
    "AWS::DynamoDB::Table": ("dynamodb", "table"),
    "AWS::IAM::Role": ("iam", "role"),
    "AWS::ECR::Repository": ("ecr", "repository"),
    "AWS::SSM::Parameter": ("ssm", "parameter"),
    "AWS::Lambda::Function": ("lambda", "function"),
    "AWS::SNS::Topic": ("sns", "topic"),
    "AWS::SQS::Queue": ("sqs", "queue"),
    "AWS::SecretsManager::Secret": ("secretsmanager", "Secret"),
    "AWS::Kinesis::Stream": ("kinesis", "stream"),
    "AWS::StepFunctions::StateMachine": ("states", "statemachine"),
    "AWS::Logs::LogGroup": ("logs", "log-group"),
}

# eventSource -> request fields. A rule builds one ARN of `type` from `vars` (format variable -> request
# field). `arn`: the field may hold the ARN itself. `prefix`: the value is cut after its first "/" and ends
# in "*" (S3 object keys). `strip`: a leading "/" is dropped. `suffix`: appended to a name (a secret's name
# is its ARN less AWS's random "-??????" suffix). `queue_url`: an SQS queue URL gives account and name.
# `when`: the rule needs another field to be present; `unless`: it applies only when that field is absent.
RULES = {
    "s3.amazonaws.com": {
        "doc": "https://docs.aws.amazon.com/AmazonS3/latest/userguide/cloudtrail-logging-understanding-s3-entries.html",
        "rules": [
            {"type": ["s3", "bucket"], "vars": {"BucketName": "bucketName"}},
            {"type": ["s3", "object"], "vars": {"BucketName": "bucketName", "ObjectName": "key"}, "prefix": "key"},
        ]},
    "dynamodb.amazonaws.com": {
        "doc": "https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/logging-using-cloudtrail.html",
        "rules": [{"type": ["dynamodb", "table"], "vars": {"TableName": "tableName"}, "arn": "tableName"}]},
    "sqs.amazonaws.com": {
        "doc": "https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-logging-using-cloudtrail.html",
        "rules": [{"type": ["sqs", "queue"], "vars": {"QueueName": "queueUrl"}, "queue_url": "queueUrl"}]},
    "sns.amazonaws.com": {
        "doc": "https://docs.aws.amazon.com/sns/latest/dg/sns-logging-using-cloudtrail.html",
        "rules": [{"type": ["sns", "topic"], "vars": {"TopicName": "topicArn"}, "arn": "topicArn"},
                  {"type": ["sns", "topic"], "vars": {"TopicName": "targetArn"}, "arn": "targetArn"}]},
    "kms.amazonaws.com": {
        "doc": "https://docs.aws.amazon.com/kms/latest/developerguide/logging-using-cloudtrail.html",
        "rules": [{"type": ["kms", "key"], "vars": {"KeyId": "keyId"}, "arn": "keyId", "unless_prefix": "alias/"},
                  {"type": ["kms", "alias"], "vars": {"Alias": "keyId"}, "only_prefix": "alias/"}]},
    "lambda.amazonaws.com": {
        "doc": "https://docs.aws.amazon.com/lambda/latest/dg/logging-using-cloudtrail.html",
        "rules": [{"type": ["lambda", "function"], "vars": {"FunctionName": "functionName"}, "arn": "functionName"}]},
    "secretsmanager.amazonaws.com": {
        "doc": "https://docs.aws.amazon.com/secretsmanager/latest/userguide/monitoring-cloudtrail.html",
        "rules": [{"type": ["secretsmanager", "Secret"], "vars": {"SecretId": "secretId"}, "arn": "secretId",
                   "suffix": "-??????"}]},
    "ssm.amazonaws.com": {
        "doc": "https://docs.aws.amazon.com/systems-manager/latest/userguide/monitoring-cloudtrail-logs.html",
        "rules": [{"type": ["ssm", "parameter"], "vars": {"ParameterNameWithoutLeadingSlash": "name"}, "arn": "name",
                   "strip": True},
                  {"type": ["ssm", "parameter"], "vars": {"ParameterNameWithoutLeadingSlash": "names"}, "arn": "names",
                   "strip": True}]},
    "logs.amazonaws.com": {
        "doc": "https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/logging_cw_api_calls.html",
        "rules": [{"type": ["logs", "log-group"], "vars": {"LogGroupName": "logGroupName"}},
                  {"type": ["logs", "log-stream"], "vars": {"LogGroupName": "logGroupName",
                                                            "LogStreamName": "logStreamName"}}]},
    "kinesis.amazonaws.com": {
        "doc": "https://docs.aws.amazon.com/streams/latest/dev/logging-using-cloudtrail.html",
        "rules": [{"type": ["kinesis", "stream"], "vars": {"StreamName": "streamName"}},
                  {"type": ["kinesis", "stream"], "vars": {"StreamName": "streamARN"}, "arn": "streamARN"}]},
    "states.amazonaws.com": {
        "doc": "https://docs.aws.amazon.com/step-functions/latest/dg/procedure-cloud-trail.html",
        "rules": [{"type": ["states", "statemachine"], "vars": {"StateMachineName": "stateMachineArn"},
                   "arn": "stateMachineArn"},
                  {"type": ["states", "execution"], "vars": {"ExecutionId": "executionArn"}, "arn": "executionArn"}]},
    "events.amazonaws.com": {
        "doc": "https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-logging-monitoring.html",
        "rules": [{"type": ["events", "event-bus"], "vars": {"EventBusName": "eventBusName"}, "arn": "eventBusName"},
                  {"type": ["events", "rule-on-default-event-bus"], "vars": {"RuleName": "name"},
                   "unless": "eventBusName"},
                  {"type": ["events", "rule-on-custom-event-bus"], "vars": {"EventBusName": "eventBusName",
                                                                            "RuleName": "name"}}]},
    "ecr.amazonaws.com": {
        "doc": "https://docs.aws.amazon.com/AmazonECR/latest/userguide/logging-using-cloudtrail.html",
        "rules": [{"type": ["ecr", "repository"], "vars": {"RepositoryName": "repositoryName"},
                   "account": "registryId"}]},
    "sts.amazonaws.com": {
        "doc": "https://docs.aws.amazon.com/IAM/latest/UserGuide/cloudtrail-integration.html",
        "rules": [{"type": ["sts", "role"], "vars": {"RoleNameWithPath": "roleArn"}, "arn": "roleArn"}]},
}


def arn_formats(folder: Path, wanted: set) -> dict:
    out = {}
    for prefix, name in sorted(wanted):
        data = json.loads((folder / f"{prefix}.json").read_text())
        for r in data.get("Resources", ()):
            if r.get("Name") == name:
                out[f"{prefix}:{name}"] = r["ARNFormats"][0]
                break
        else:
            raise SystemExit(f"{prefix}:{name}: no such resource type in {folder / (prefix + '.json')}")
    return out


def build(folder: Path, date: str) -> dict:
    wanted = {tuple(t) for t in RESOURCE_TYPES.values()} | {
        tuple(r["type"]) for e in RULES.values() for r in e["rules"]}
    return {
        "schema": "iamgate.cloudtrail-resources/v1",
        "description": "Where a CloudTrail record names the resource of the call: `resources[]` (ARN and type) and, "
                       "per eventSource, fields of `requestParameters`; ARNs are built with AWS's own ARN formats, "
                       "partition from the region, region `awsRegion`, account `recipientAccountId`.",
        "sources": [
            {"name": "AWS Service Authorization Reference (JSON)", "url": REFERENCE, "date": date,
             "used_for": "arn_formats (Resources[].ARNFormats)"},
            {"name": "CloudTrail record contents", "url": RECORD_DOCS, "used_for": "resources[] (ARN, type)"},
        ],
        "resource_types": {k: f"{p}:{n}" for k, (p, n) in sorted(RESOURCE_TYPES.items())},
        "event_sources": {src: {"doc": e["doc"], "rules": [{**r, "type": f"{r['type'][0]}:{r['type'][1]}"}
                                                             for r in e["rules"]]}
                          for src, e in sorted(RULES.items())},
        "arn_formats": arn_formats(folder, wanted),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path, help="a folder of <prefix>.json service reference files")
    ap.add_argument("--date", required=True, help="the day the reference was served")
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args(argv)
    data = build(a.folder, a.date)
    a.out.write_text(json.dumps(data, indent=1) + "\n")
    print(f"{a.out}: {len(data['event_sources'])} event sources, {len(data['arn_formats'])} ARN formats")
    return 0


if __name__ == "__main__":
    sys.exit(main())
