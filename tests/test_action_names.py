"""Actions in AWS's own case for people (text, Markdown, annotations, SARIF messages, fix summaries);
the JSON report keeps its lowercase keys, the machine contract."""
from __future__ import annotations

import json
import textwrap
from importlib import resources

import jsonschema
import pytest

from iamgate.reference.catalog import action_names
from iamgate.config import Config
from iamgate.formats import FORMATS
from iamgate.formats.json import expanded
from iamgate.pipeline import analyse

from test_fix_minimal import ROLE_YAML

TEMPLATE = ROLE_YAML + """\
                  - Effect: Allow
                    Action: [ec2:describeinstances, sqs:SendMessage, EC2:TERMINATEINSTANCES]
                    Resource: "*"
    """
BASELINE = {"schema": "iamgate.baseline/v1", "principal_arn": "arn:aws:iam::111122223333:role/orders-a",
            "window": {"start": "2026-08-24T00:00:00Z", "end": "2026-11-22T00:00:00Z"},
            "sources": [{"kind": "cloudtrail", "events": 10, "files": 1}],
            "used": {"sqs:sendmessage": {"count": 1, "signals": ["cloudtrail"]}}}
READABLE = ("ec2:DescribeInstances", "ec2:TerminateInstances")


@pytest.fixture
def report(tmp_path, monkeypatch):
    (tmp_path / "t.yaml").write_text(textwrap.dedent(TEMPLATE))
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "a.json").write_text(json.dumps(BASELINE))
    monkeypatch.chdir(tmp_path)
    return analyse(["t.yaml"], ["b"], Config())


def test_the_helper_writes_aws_case_and_leaves_what_the_catalog_does_not_know():
    assert action_names(["ec2:describeinstances", "S3:GETOBJECT", "madeup:DoThing", "s3:Get*", "*"]) == [
        "ec2:DescribeInstances", "s3:GetObject", "madeup:DoThing", "s3:Get*", "*"]


@pytest.mark.parametrize("fmt", ["text", "markdown", "github", "sarif"])
def test_human_formats_write_aws_case(report, fmt):
    out = FORMATS.get(fmt)().render(report)
    if fmt == "sarif":  # messages for people; the machine-readable properties keep the report's keys
        results = json.loads(out)["runs"][0]["results"]
        out = "\n".join(r["message"]["text"] for r in results)
        keys = {a for r in results for a in r["properties"]["actions"]}
        assert {"ec2:describeinstances", "ec2:terminateinstances"} <= keys and all(a == a.lower() for a in keys)
    for action in READABLE:
        assert action in out, (fmt, action)
        assert action.lower() not in out, (fmt, action)


def test_json_keeps_lowercase_keys_and_stays_valid(report):
    doc = json.loads(FORMATS.get("json")().render(report))
    schema = json.loads(resources.files("iamgate").joinpath("data/schemas/report.schema.json").read_text())
    jsonschema.validate(doc, schema)
    assert doc["actions"] == sorted(doc["actions"]) and all(a == a.lower() for a in doc["actions"])
    doc = expanded(doc)
    (p,) = doc["principals"]
    assert p["actions"]["unused"] == ["ec2:describeinstances", "ec2:terminateinstances"]
    assert all(a == a.lower() for f in doc["findings"] for a in f["actions"])
